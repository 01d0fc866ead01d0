"""Few labels: does self-supervised pretraining help? (issue 10)

On real data (Jurkat imaging flow cytometry, label-free channels 0,2; Chula RBC-12 smear crops):
pretrain the celltype classifier's encoder on all items *without labels*
(:func:`napari_cellcurator.core.pretrain.pretrain`, autoencoder method), then fine-tune with 1 %,
5 % and 20 % of the labels (stratified, at least one item per class) from a random init and
from the pretrained init, several seeds, and score macro-F1 on a fixed held-out 30 % test split.
Also: NMI with the true classes of k-means on the pretrained (autoencoder) features vs k-means on
raw pixels of the same cells (the label-free clustering target).

Fine-tuning uses the product's own path (``prepare_training`` with ``init`` → ``fit``) with a
short schedule so the whole benchmark stays within minutes on 2 CPU cores.

    python bench/few_labels.py [--quick] [--out bench/results/few_labels.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = (REPO / ".." / "shared" / "data" / "celltype").resolve()
FRACTIONS = (0.01, 0.05, 0.20)
CHULA_CLASSES = ["normal", "macrocyte", "microcyte", "spherocyte", "target", "stomatocyte",
                 "ovalocyte", "teardrop", "burr", "schistocyte", "uncategorised", "hypochromia",
                 "elliptocyte"]


def read_jurkat():
    from napari_cellcurator.core.tasks import ReadOptions, get_task

    return get_task("celltype").read_many([DATA / "jurkat_ifc"], ReadOptions(channels=[0, 2]))


def read_chula(n_cells: int, crop: int = 48, size: int = 32, seed: int = 0):
    """Crops around the expert-labelled points of Chula RBC-12 (a random subset of cells)."""
    from skimage.io import imread
    from skimage.transform import resize

    from napari_cellcurator.core.io.items import ItemSet

    root = DATA / "chula_rbc12"
    rows = []
    for lab in sorted((root / "labels").glob("*.txt"), key=lambda p: int(p.stem)):
        for i, line in enumerate(lab.read_text().split("\n")):
            parts = line.split()
            if len(parts) == 3:
                rows.append((lab.stem, i, float(parts[0]), float(parts[1]), int(parts[2])))
    table = pd.DataFrame(rows, columns=["image", "i", "x", "y", "cls"])
    pick = np.sort(np.random.default_rng(seed).choice(len(table), n_cells, replace=False))
    table = table.iloc[pick].reset_index(drop=True)
    crops, half = [], crop // 2
    for name, grp in table.groupby("image", sort=False):
        img = imread(root / "images" / f"{name}.jpg").astype(np.float32)
        img = np.pad(img, ((half, half), (half, half), (0, 0)), mode="reflect")
        for r in grp.itertuples():
            y, x = int(round(r.y)) + half, int(round(r.x)) + half
            c = img[y - half:y + half, x - half:x + half].transpose(2, 0, 1)
            crops.append((r.Index, resize(c, (3, size, size), order=1, anti_aliasing=True)))
    crops = np.stack([c for _, c in sorted(crops, key=lambda t: t[0])]).astype(np.float32)
    items = pd.DataFrame({"item_id": [f"{a}/{b}" for a, b in zip(table.image, table.i,
                                                                  strict=True)],
                          "source": table.image, "label": [CHULA_CLASSES[c] for c in table.cls]})
    return ItemSet(items, {"image": crops}, {"classes": CHULA_CLASSES})


def stratified(labels: np.ndarray, pool: np.ndarray, frac: float, rng) -> np.ndarray:
    out = []
    for c in np.unique(labels[pool]):
        members = pool[labels[pool] == c]
        out.append(rng.choice(members, max(1, int(round(frac * len(members)))), replace=False))
    return np.sort(np.concatenate(out))


def finetune_f1(items, train_rows, test_rows, init: str | None, seed: int, epochs: int) -> float:
    from napari_cellcurator.core.pipeline import TrainRequest, predict_items, prepare_training
    from napari_cellcurator.core.store.modelio import ModelConfig
    from napari_cellcurator.core.training import TrainConfig, TrainingDone, fit

    torch.manual_seed(seed)
    req = TrainRequest(task="celltype", data=["bench"], seed=seed, init=init or "none")
    task, arch, classes, prep, spec, model, train, val, _ = prepare_training(
        req, items.subset(train_rows))
    cfg = TrainConfig(epochs=epochs, batch_size=32, lr=2e-3, seed=seed, max_steps_per_epoch=5)
    for update in fit(task, model, train, val, prep, classes, cfg, arch):
        if isinstance(update, TrainingDone):
            model = update.model
    test = items.subset(test_rows)
    all_classes = classes + [c for c in sorted(set(test.table["label"])) if c not in classes]
    config = ModelConfig(task="celltype", arch=arch, model_spec=spec, classes=classes,
                         preprocessing=prep)
    _, scores = predict_items(model, config, test, device="cpu")
    scores = np.pad(scores, ((0, 0), (0, len(all_classes) - len(classes))))
    return float(task.metrics(test.table, scores, all_classes)["macro_f1"])


def cluster_nmi(items, model_dir: str, k: int, seeds) -> dict:
    """NMI of k-means on autoencoder features vs on raw (standardised) pixels."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score as nmi

    from napari_cellcurator.core.clustering import iter_item_features
    from napari_cellcurator.core.data.crops import normalise_crops
    from napari_cellcurator.core.tasks import get_task

    gen = iter_item_features(get_task("celltype"), model_dir=model_dir, items=items,
                             device="cpu")
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        feats = stop.value.features
    y = items.table["label"].astype(str).to_numpy()
    crops = np.asarray(items.arrays["image"], dtype=np.float32)
    mean, std = crops.mean(axis=(0, 2, 3)), crops.std(axis=(0, 2, 3)) + 1e-6
    raw = normalise_crops(crops, mean, std).reshape(len(crops), -1)
    ae = [nmi(y, KMeans(k, n_init=4, random_state=s).fit_predict(feats)) for s in seeds]
    px = [nmi(y, KMeans(k, n_init=4, random_state=s).fit_predict(raw)) for s in seeds]
    return {"k": k, "autoencoder_features": ae, "raw_pixels": px,
            "autoencoder_mean": float(np.mean(ae)), "raw_pixels_mean": float(np.mean(px))}


def run_dataset(name: str, items, seeds, pre_epochs: int, ft_epochs: int, tmp: Path) -> dict:
    from napari_cellcurator.core.pretrain import pretrain

    labels = items.table["label"].astype(str).to_numpy()
    rng = np.random.default_rng(0)
    test = stratified(labels, np.arange(len(items)), 0.3, rng)
    pool = np.setdiff1d(np.arange(len(items)), test)
    t0 = time.perf_counter()
    pre_dir = tmp / f"{name}_pretrained"
    unlabelled = items.subset(np.arange(len(items)))
    unlabelled.table["label"] = None  # pretraining never sees a label
    summary = pretrain("celltype", "bench", pre_dir, epochs=pre_epochs, method="autoencoder",
                       device="cpu", items=unlabelled)
    pre_s = time.perf_counter() - t0
    print(f"[{name}] pretrained ({summary['method']}, {pre_epochs} epochs) in {pre_s:.0f}s",
          flush=True)
    out = {"n_items": len(items), "n_test": len(test), "pretraining": summary,
           "pretraining_seconds": pre_s, "fractions": {}}
    for frac in FRACTIONS:
        row = {}
        for init_name, init in (("random", None), ("pretrained", str(pre_dir))):
            f1s = []
            for seed in seeds:
                train_rows = stratified(labels, pool, frac, np.random.default_rng(100 + seed))
                f1s.append(finetune_f1(items, train_rows, test, init, seed, ft_epochs))
            row[init_name] = {"macro_f1": f1s, "mean": float(np.mean(f1s)),
                              "std": float(np.std(f1s)), "n_labelled": int(len(train_rows))}
        out["fractions"][str(frac)] = row
        print(f"[{name}] {frac:>5.0%} labels ({row['random']['n_labelled']} cells): "
              f"random {row['random']['mean']:.3f} ± {row['random']['std']:.3f}  "
              f"pretrained {row['pretrained']['mean']:.3f} ± {row['pretrained']['std']:.3f}",
              flush=True)
    k = len(set(labels))
    out["clustering"] = cluster_nmi(items, str(pre_dir), k, seeds)
    c = out["clustering"]
    print(f"[{name}] k-means k={k} NMI: autoencoder features {c['autoencoder_mean']:.3f} vs "
          f"raw pixels {c['raw_pixels_mean']:.3f}", flush=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "few_labels.json"))
    p.add_argument("--quick", action="store_true", help="1 seed, Jurkat only")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if not DATA.is_dir():
        print(f"shared data not found at {DATA}", file=sys.stderr)
        return 1
    seeds = [0] if a.quick else [0, 1, 2]
    t0 = time.perf_counter()
    results = {"targets": {"jurkat_5pct": "pretrained init beats random init in macro-F1",
                           "jurkat_clusters": "NMI(autoencoder clusters) > NMI(raw-pixel k-means)"},
               "seeds": seeds, "datasets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        results["datasets"]["jurkat_ch02"] = run_dataset("jurkat", read_jurkat(), seeds, 3, 10,
                                                         Path(tmp))
        if not a.quick:
            results["datasets"]["chula_rbc12"] = run_dataset("chula", read_chula(1800), seeds,
                                                             3, 10, Path(tmp))
    j = results["datasets"]["jurkat_ch02"]
    five = j["fractions"]["0.05"]
    results["verdict"] = {
        "jurkat_5pct_pretrained_beats_random": five["pretrained"]["mean"] > five["random"]["mean"],
        "jurkat_clusters_beat_raw_pixels":
            j["clustering"]["autoencoder_mean"] > j["clustering"]["raw_pixels_mean"],
    }
    results["seconds"] = time.perf_counter() - t0
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=2))
    print(json.dumps(results["verdict"]), f"total {results['seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
