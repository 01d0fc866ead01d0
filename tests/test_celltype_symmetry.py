"""Augmentation that respects the acquisition: flips/turns only where the data look the same."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from napari_cellcurator.core.data.crops import (
    VIEW_SETS,
    augment_crops,
    dataset_symmetries,
    dihedral_transform,
    dihedral_views,
)
from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.tasks import ReadOptions, get_task


def _cells(n: int, lit_from_left: bool, seed: int = 0) -> np.ndarray:
    """(n, 2, 24, 24): a bright disc (channel 0) and, in channel 1, either a rim lit from the
    left (side scatter with a fixed optical axis) or a symmetric ring; random positions/noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:24, :24] - 11.5
    out = np.empty((n, 2, 24, 24), np.float32)
    for i in range(n):
        dy, dx = rng.normal(0, 1.0, 2)
        r = np.hypot(yy - dy, xx - dx)
        radius = rng.uniform(6, 9)
        out[i, 0] = (r < radius) * rng.uniform(80, 120)
        ring = np.exp(-((r - radius) ** 2) / 2)
        side = np.clip(-(xx - dx) / radius, 0, None) if lit_from_left else 1.0
        out[i, 1] = ring * side * rng.uniform(40, 60)
    return out + rng.normal(0, 5, out.shape).astype(np.float32)


def test_fixed_optical_axis_keeps_only_the_matching_flip():
    sym = dataset_symmetries(_cells(400, lit_from_left=True))
    # lit from the left: up-down mirror (turn 2 + mirror) keeps the image; left-right does not
    assert sym == [(0, False), (2, True)]


def test_orientation_free_cells_keep_all_eight():
    assert dataset_symmetries(_cells(400, lit_from_left=False)) == list(VIEW_SETS[8])


def test_too_few_crops_keep_all_eight():
    # 12 crops: the mean's own noise is as large as any structure, so nothing is restricted
    assert dataset_symmetries(_cells(12, lit_from_left=True)) == list(VIEW_SETS[8])


def test_dihedral_transform_matches_the_test_time_views():
    x = np.arange(2 * 3 * 5 * 5, dtype=np.float32).reshape(2, 3, 5, 5)
    views = dihedral_views(torch.from_numpy(x), 8)
    for (k, m), view in zip(VIEW_SETS[8], views, strict=True):
        np.testing.assert_array_equal(dihedral_transform(x, k, m), view.numpy())
    only = dihedral_views(torch.from_numpy(x), 8, allowed=[[2, True]])
    assert len(only) == 2  # the identity is always kept
    np.testing.assert_array_equal(only[1].numpy(), dihedral_transform(x, 2, True))


def test_whole_group_keeps_the_original_random_draws():
    """All eight allowed: the same draws as before symmetries existed (models reproduce)."""
    x = np.random.default_rng(0).normal(size=(16, 1, 6, 6)).astype(np.float32)
    rng = np.random.default_rng(3)
    expected = []
    for c in x:  # the original recipe: a quarter-turn count, then a mirror half of the time
        c = np.rot90(c, k=int(rng.integers(4)), axes=(1, 2))
        expected.append(c[:, :, ::-1] if rng.random() < 0.5 else c)
    out = augment_crops(x, np.random.default_rng(3), max_shift=0, noise=0.0)
    np.testing.assert_array_equal(out, np.stack(expected))
    listed = augment_crops(x, np.random.default_rng(3), max_shift=0, noise=0.0,
                           symmetries=[list(v) for v in VIEW_SETS[8]])
    np.testing.assert_array_equal(listed, out)


def test_augmentation_draws_only_allowed_transforms():
    x = np.random.default_rng(0).normal(size=(64, 1, 6, 6)).astype(np.float32)
    allowed = [(0, False), (2, True)]
    out = augment_crops(x, np.random.default_rng(1), max_shift=0, noise=0.0,
                        symmetries=[list(v) for v in allowed])
    seen = set()
    for before, after in zip(x, out, strict=True):
        match = [v for v in VIEW_SETS[8] if np.array_equal(dihedral_transform(before, *v), after)]
        assert match and match[0] in allowed
        seen.add(match[0])
    assert seen == set(allowed)  # both are drawn


def test_task_records_the_symmetries_when_asked_and_uses_all_by_default():
    crops = _cells(400, lit_from_left=True)
    table = pd.DataFrame({"item_id": [f"c{i}" for i in range(len(crops))], "source": "x",
                          "label": ["a", "b"] * (len(crops) // 2)})
    items = ItemSet(table, {"image": crops}, {"path": "x"})
    task = get_task("celltype")
    prep = task.fit_preprocessing(items, ReadOptions(extra={"symmetry": "auto"}))
    assert prep["augment"]["symmetries"] == [[0, False], [2, True]]
    default = task.fit_preprocessing(items, ReadOptions())
    assert len(default["augment"]["symmetries"]) == 8
    with pytest.raises(InputError, match="symmetry"):
        task.fit_preprocessing(items, ReadOptions(extra={"symmetry": "some"}))
