"""Cold start without labels: autoencoders, clustering, self-supervised pretraining."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.models.registry import build_model
from napari_cellcurator.core.tasks import ReadOptions, get_task
from napari_cellcurator.core.training import EpochDone, StepDone, TrainConfig, TrainingDone

SIZE = 24


def _cell(rng: np.random.Generator, group: int) -> np.ndarray:
    """(2, S, S) synthetic cell: group 0 small disc, 1 large disc, 2 ring; random position."""
    yy, xx = np.mgrid[:SIZE, :SIZE].astype(np.float32)
    cy, cx = SIZE / 2 + rng.uniform(-2, 2, size=2)
    r = np.hypot(yy - cy, xx - cx)
    radius = (4.0, 8.0, 8.0)[group] * rng.uniform(0.9, 1.1)
    body = 1.0 / (1.0 + np.exp((r - radius) / 0.7))
    if group == 2:
        body = body - 1.0 / (1.0 + np.exp((r - radius * 0.55) / 0.7))
    img = np.stack([body * rng.uniform(0.8, 1.2), (r < radius).astype(np.float32) * 0.5])
    return img + rng.normal(0, 0.05, img.shape).astype(np.float32)


def planted(n_per_group: int = 30, seed: int = 0, labelled: bool = True) -> ItemSet:
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(3), n_per_group)
    images = np.stack([_cell(rng, g) for g in groups]).astype(np.float32)
    names = np.array(["small", "large", "ring"])[groups]
    table = pd.DataFrame({"item_id": [f"c{i}" for i in range(len(groups))],
                          "source": "synthetic", "label": names if labelled else None})
    return ItemSet(table, {"image": images}, {"classes": ["small", "large", "ring"]})


def _write_folder(root, items: ItemSet) -> None:
    import tifffile

    for i, (iid, lab) in enumerate(zip(items.table["item_id"], items.table["label"],
                                       strict=True)):
        (root / lab).mkdir(parents=True, exist_ok=True)
        img = (items.arrays["image"][i] * 10000 + 2000).clip(0, 65535).astype(np.uint16)
        tifffile.imwrite(root / lab / f"{iid}.tif", img)


def test_autoencoder_reconstructs_held_back_batch_better_than_mean_image():
    from napari_cellcurator.core.unsupervised import fit_autoencoder

    torch.manual_seed(0)
    task = get_task("celltype")
    items = planted(40, seed=1)
    train, held = items.subset(np.arange(0, 120, 2)), items.subset(np.arange(1, 120, 2)[:32])
    prep = task.fit_preprocessing(train, ReadOptions())
    model = build_model("ae_crops", shapes={"image": (2, SIZE, SIZE)}, latent_dim=16, width=8)
    updates = list(fit_autoencoder(task, model, train, held, prep,
                                   TrainConfig(epochs=15, batch_size=16, lr=3e-3)))
    assert any(isinstance(u, StepDone) for u in updates)
    assert sum(isinstance(u, EpochDone) for u in updates) == 15
    done = updates[-1]
    assert isinstance(done, TrainingDone)
    rng = np.random.default_rng(0)
    x_train = task.make_batch(train, np.arange(len(train)), prep, False, rng)["image"]
    x = task.make_batch(held, np.arange(len(held)), prep, False, rng)["image"]
    with torch.inference_mode():
        recon = done.model.eval()(image=x)["image"]
    mse = float(((recon - x) ** 2).mean())
    mean_mse = float(((x_train.mean(0, keepdim=True) - x) ** 2).mean())
    assert mse < 0.6 * mean_mse, (mse, mean_mse)
    assert done.model.encode(image=x).shape == (32, 16)


def test_autoencoders_for_every_input_kind_round_trip_shapes():
    cases = {"ae_roi": {"image": (2, 20, 20), "trace": (150,)},
             "ae_snippets": {"frames": (6, 17, 17)}, "ae_crops": {"image": (3, 33, 33)}}
    for name, shapes in cases.items():
        model = build_model(name, shapes=shapes, latent_dim=8)
        inputs = {k: torch.randn(3, *s) for k, s in shapes.items()}
        out = model(**inputs)
        assert {k: tuple(v.shape) for k, v in out.items()} == {k: (3, *s)
                                                                 for k, s in shapes.items()}
        assert model.encode(**inputs).shape == (3, 8)


def test_crop_autoencoder_encoder_is_weight_compatible_with_resnet():
    ae = build_model("ae_crops", shapes={"image": (2, 40, 40)}, latent_dim=32)
    clf = build_model("resnet", in_channels=2, n_outputs=7, input_size=40)
    own, st = clf.state_dict(), ae.state_dict()
    fitting = [k for k in own if k in st and st[k].shape == own[k].shape]
    assert set(own) - set(fitting) == {"head.2.weight", "head.2.bias"}


def test_clustering_recovers_planted_groups(tmp_path):
    from napari_cellcurator.core.clustering import cluster_items

    items = planted(30, seed=2)
    out = tmp_path / "clusters.csv"
    # K is given: whether silhouette picks 3 on 90 items after 8 epochs hinges on float
    # details (thread counts); choosing K is tested on clear blobs in
    # test_cluster_features_hdbscan_and_fixed_k. Here: do the learned features recover groups?
    table, result = cluster_items("celltype", "synthetic", str(out), k=3, items=items, epochs=8,
                                  device="cpu")
    assert result["k"] == 3, result
    assert result["ari"] > 0.8 and result["nmi"] > 0.8, result
    written = pd.read_csv(out)
    assert list(written.columns) == ["item_id", "cluster", "x", "y"]
    assert list(written["item_id"]) == list(items.table["item_id"])
    json.dumps(result)  # JSON-able
    majority = {v["label"] for v in result["majority_label"].values()}
    assert majority == {"small", "large", "ring"}


def test_cluster_features_hdbscan_and_fixed_k():
    from napari_cellcurator.core.clustering import agreement, cluster_features

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, size=(4, 5))
    truth = np.repeat(np.arange(4), 40)
    feats = centres[truth] + rng.normal(0, 0.5, size=(160, 5))
    labels, info = cluster_features(feats, k=4)
    assert info["k"] == 4 and agreement(truth, labels)["ari"] > 0.95
    labels, info = cluster_features(feats, method="hdbscan")
    assert info["k"] == 4 and agreement(truth, labels)["ari"] > 0.9
    auto, info = cluster_features(feats)
    assert info["k"] == 4
    assert agreement([None] * 160, auto)["nmi"] is None


def test_reusing_a_saved_autoencoder_gives_the_same_clusters(tmp_path):
    from napari_cellcurator.core.clustering import cluster_items

    items = planted(12, seed=3, labelled=False)
    ae_dir = tmp_path / "ae"
    t1, r1 = cluster_items("celltype", "x", None, k=3, items=items, epochs=2, model_dir=str(ae_dir),
                           device="cpu")
    assert r1["trained_autoencoder"] and (ae_dir / "config.json").is_file()
    assert r1["nmi"] is None
    t2, r2 = cluster_items("celltype", "x", None, k=3, items=items, model_dir=str(ae_dir),
                           device="cpu")
    assert not r2["trained_autoencoder"]
    np.testing.assert_allclose(t1[["x", "y"]].to_numpy(), t2[["x", "y"]].to_numpy(), atol=1e-4)
    from napari_cellcurator.core.errors import InputWarning

    with pytest.warns(InputWarning, match=r"channels \[0\] are not used"):  # the model's win
        cluster_items("celltype", "x", None, k=3, channels=[0], items=items,
                      model_dir=str(ae_dir), device="cpu")


@pytest.mark.parametrize("method", ["autoencoder", "contrastive"])
def test_pretrain_then_train_init_copies_encoder_weights(tmp_path, method):
    from napari_cellcurator.core.pipeline import TrainRequest, prepare_training, train
    from napari_cellcurator.core.pretrain import pretrain
    from napari_cellcurator.core.store.modelio import load_model, load_state_dict

    data = tmp_path / "cells"
    _write_folder(data, planted(6, seed=4))
    out = tmp_path / "pre"
    summary = pretrain("celltype", str(data), out, channels=[0, 1], epochs=1, method=method,
                       device="cpu")
    assert summary["method"] == method and np.isfinite(summary["final_loss"])
    model, cfg = load_model(out)
    assert (cfg.task, cfg.arch, cfg.classes) == ("celltype", "resnet", [])
    pre = load_state_dict(out)
    req = TrainRequest(task="celltype", data=[str(data)], channels=[0, 1], init=str(out))
    _, _, classes, _, _, fresh, *_ = prepare_training(req)
    assert sorted(classes) == ["large", "ring", "small"]  # the pretrained folder adds none
    state = fresh.state_dict()
    for name in ("stem.0.weight", "layer1.conv1.weight", "layer4.conv2.weight",
                 "layer4.bn2.running_mean"):
        assert torch.equal(state[name], pre[name]), name
    assert state["head.2.weight"].shape == (3, 256)
    # and a random init differs
    req2 = TrainRequest(task="celltype", data=[str(data)], channels=[0, 1], init="none")
    other = prepare_training(req2)[5].state_dict()
    assert not torch.equal(other["layer1.conv1.weight"], pre["layer1.conv1.weight"])
    saved = train(TrainRequest(task="celltype", data=[str(data)], channels=[0, 1],
                               init=str(out), epochs=1, out=str(tmp_path / "ft"), batch_size=8))
    assert saved.config.parent == str(out)


@pytest.mark.slow
def test_label_free_jurkat_autoencoder_clusters_beat_raw_pixel_kmeans(shared_data):
    """Channels 0,2 only, no labels used: NMI with the true phases, AE features vs raw pixels."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    from napari_cellcurator.core.clustering import cluster_items
    from napari_cellcurator.core.data.crops import normalise_crops

    task = get_task("celltype")
    items = task.read_many([shared_data / "celltype" / "jurkat_ifc"], ReadOptions(channels=[0, 2]))
    labels = items.table["label"].to_numpy()
    rng = np.random.default_rng(0)
    rows = np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == c),
                                              min(80, int((labels == c).sum())), replace=False)
                                   for c in np.unique(labels)]))
    cells = items.subset(rows)
    truth = cells.table["label"].to_numpy()
    unlabelled = cells.subset(np.arange(len(cells)))
    unlabelled.table["label"] = None
    table, result = cluster_items("celltype", "jurkat", None, k=7, items=unlabelled, epochs=25,
                                  device="cpu")
    nmi_ae = normalized_mutual_info_score(truth, table["cluster"])
    crops = np.asarray(cells.arrays["image"], dtype=np.float32)
    raw = normalise_crops(crops, crops.mean(axis=(0, 2, 3)), crops.std(axis=(0, 2, 3)))
    nmi_raw = np.mean([normalized_mutual_info_score(
        truth, KMeans(7, n_init=4, random_state=s).fit_predict(raw.reshape(len(raw), -1)))
        for s in range(3)])
    print(f"label-free Jurkat NMI: autoencoder {nmi_ae:.3f} vs raw pixels {nmi_raw:.3f}")
    assert result["nmi"] is None  # no labels were given to the clustering
    assert nmi_ae > nmi_raw


def test_cluster_command_detects_the_task_and_writes_the_table(jurkat_subset, tmp_path,
                                                               capsys):
    """`cellcurator cluster` end to end (it once crashed passing progress as an argument)."""
    from napari_cellcurator.cli import main

    out = tmp_path / "clusters.csv"
    assert main(["cluster", "--data", str(jurkat_subset), "--out", str(out), "--k", "3",
                 "--channels", "0,2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["k"] == 3
    table = pd.read_csv(out)
    assert len(table) == 36 and set(table["cluster"]) == {0, 1, 2}


SAMPLES = __import__("pathlib").Path(__file__).resolve().parents[1] / "src" / \
    "napari_cellcurator" / "sample_data"


@pytest.mark.parametrize(("task", "data"), [
    ("cellness", SAMPLES / "cellness_sim" / "plane0"),  # traces cut to random windows
    ("mixture", SAMPLES / "mixture" / "t98g_crop.tif"),  # a CNN with one output
])
def test_cluster_command_for_cellness_and_mixture(task, data, tmp_path, capsys):
    """Both crashed: augmented cellness traces are shorter than the decoder's output, and the
    mixture CNNs ignore ``n_outputs`` (their own snippet autoencoder is used instead)."""
    from napari_cellcurator.cli import main

    out = tmp_path / "clusters.csv"
    assert main(["cluster", "--task", task, "--data", str(data), "--out", str(out),
                 "--k", "2", "--json"]) == 0
    table = pd.read_csv(out)
    assert len(table) > 4 and set(table["cluster"]) == {0, 1}


def test_pretraining_cellness_works_and_mixture_is_refused(tmp_path):
    from napari_cellcurator.core.errors import InputError
    from napari_cellcurator.core.pretrain import pretrain

    done = pretrain("cellness", SAMPLES / "cellness_sim" / "plane0", tmp_path / "p",
                    epochs=1, device="cpu")
    assert done["final_loss"] is not None and (tmp_path / "p" / "config.json").is_file()
    with pytest.raises(InputError, match="output one proportion"):
        pretrain("mixture", SAMPLES / "mixture" / "manifest.csv", tmp_path / "m", epochs=1)
