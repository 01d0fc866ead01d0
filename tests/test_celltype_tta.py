"""Celltype task: test-time augmentation (views, invariance, model config) and its loss."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from napari_cellcurator.core.data.crops import dihedral_views
from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.models.registry import build_model
from napari_cellcurator.core.tasks import ReadOptions, get_task
from napari_cellcurator.core.training import predict_logits


def _items(n: int = 6, c: int = 2, s: int = 16, seed: int = 0) -> ItemSet:
    rng = np.random.default_rng(seed)
    crops = rng.normal(100, 20, size=(n, c, s, s)).astype(np.float32)
    table = pd.DataFrame({"item_id": [f"i{i}" for i in range(n)], "source": "x",
                          "label": ["a", "b"] * (n // 2)})
    return ItemSet(table, {"image": crops}, {"path": "x"})


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("resnet", in_channels=2, n_outputs=2, input_size=16, width=8).eval()


@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_dihedral_views_are_distinct_transforms_of_the_batch(n):
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    views = dihedral_views(x, n)
    assert len(views) == n
    assert all(v.shape == x.shape for v in views)
    assert torch.equal(views[0], x)  # the identity comes first
    flat = {tuple(v.flatten().tolist()) for v in views}
    assert len(flat) == n  # no view repeated


def test_dihedral_views_refuse_other_counts():
    with pytest.raises(ValueError, match="n_views"):
        dihedral_views(torch.zeros(1, 1, 4, 4), 3)


def test_tta_prediction_is_invariant_to_rotating_and_flipping_the_input():
    task, model, items = get_task("celltype"), _model(), _items()
    prep = task.fit_preprocessing(items, ReadOptions(extra={"tta": 8}))
    base = predict_logits(task, model, items, prep)
    turned = _items()
    turned.arrays["image"] = np.ascontiguousarray(np.rot90(items.arrays["image"], 1, (2, 3))
                                                  [..., ::-1])
    assert torch.allclose(predict_logits(task, model, turned, prep), base, atol=1e-4)
    # without test-time views the same network does see the difference
    plain = predict_logits(task, model, turned, prep, tta=False)
    assert not torch.allclose(plain, predict_logits(task, model, items, prep, tta=False),
                              atol=1e-4)


def test_tta_equals_single_view_on_a_symmetric_input():
    task, model = get_task("celltype"), _model(1)
    items = _items()
    yy, xx = np.mgrid[:16, :16] - 7.5
    disc = (np.hypot(yy, xx) < 5).astype(np.float32) * 50 + 100  # D4-symmetric
    items.arrays["image"] = np.broadcast_to(disc, items.arrays["image"].shape).copy()
    prep = task.fit_preprocessing(_items(), ReadOptions(extra={"tta": 8}))
    tta = predict_logits(task, model, items, prep)
    assert tta.shape == (6, 2)
    assert torch.allclose(tta, predict_logits(task, model, items, prep, tta=False), atol=1e-4)


def test_default_tta_is_recorded_and_old_configs_predict_with_one_view():
    task, items = get_task("celltype"), _items()
    prep = task.fit_preprocessing(items, ReadOptions())
    assert prep["tta"] == task.TTA_VIEWS
    batch = task.make_batch(items, np.arange(3), prep, augment=False,
                            rng=np.random.default_rng(0))
    assert len(task.test_time_views(batch, prep)) == task.TTA_VIEWS
    old = {k: v for k, v in prep.items() if k != "tta"}
    assert len(task.test_time_views(batch, old)) == 1


def test_unknown_tta_count_is_an_input_error():
    with pytest.raises(InputError, match="tta"):
        get_task("celltype").fit_preprocessing(_items(), ReadOptions(extra={"tta": 3}))


def test_tta_survives_the_model_folder_round_trip(tmp_path):
    from napari_cellcurator.core.pipeline import predict_items
    from napari_cellcurator.core.store.modelio import ModelConfig, load_model, save_model

    task, model, items = get_task("celltype"), _model(2), _items()
    prep = task.fit_preprocessing(items, ReadOptions(extra={"tta": 2}))
    spec = {"in_channels": 2, "n_outputs": 2, "input_size": 16, "width": 8}
    config = ModelConfig(task="celltype", arch="resnet", model_spec=spec, classes=["a", "b"],
                         preprocessing=prep)
    save_model(tmp_path / "m", model, config)
    loaded, cfg = load_model(tmp_path / "m")
    assert cfg.preprocessing["tta"] == 2
    _, scores = predict_items(loaded, cfg, items, device="cpu")
    expected = torch.softmax(predict_logits(task, model, items, prep), dim=1).numpy()
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    # dask batch scoring (`cellcurator predict`) averages the same views
    from napari_cellcurator.core.batch import score_items

    batch_scores = score_items(str(tmp_path / "m"), items, "cpu", batch_size=4)
    np.testing.assert_allclose(batch_scores, expected, atol=1e-5)
    single = torch.softmax(predict_logits(task, model, items, prep, tta=False), dim=1).numpy()
    assert not np.allclose(batch_scores, single, atol=1e-5)


def test_training_loss_is_label_smoothed():
    task = get_task("celltype")
    certain = torch.tensor([[30.0, -30.0, -30.0]])
    target = torch.tensor([0])
    smoothed = task.loss(certain, target)
    # smoothing puts 0.1/3 of the target mass on each class: an over-confident right answer
    # still costs (≈ 2/3 · 0.1 · 60), unlike plain cross-entropy (≈ 0)
    assert torch.nn.functional.cross_entropy(certain, target) < 1e-6
    assert smoothed.item() == pytest.approx(2 / 3 * task.LABEL_SMOOTHING * 60, rel=1e-3)
    moderate = torch.tensor([[3.0, 0.0, 0.0]])
    assert task.loss(moderate, target) < smoothed  # the optimum is no longer infinite logits
