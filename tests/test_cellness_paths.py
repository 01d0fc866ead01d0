"""Paths users hand over for Suite2p results: a file inside the plane folder, the suite2p/ root
as write-back target (built from the real Suite2p 1.1.0 folders)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_cellcurator.core.tasks import get_task

TASK = get_task("cellness")
PLANES = {"movie_100x100x100": 34, "792757260_test_data": 15}


@pytest.fixture()
def two_planes(shared_data, tmp_path) -> Path:
    root = tmp_path / "rec" / "suite2p"
    for i, name in enumerate(PLANES):
        src = shared_data / "cellness" / "suite2p_1.1.0" / name / "plane0"
        shutil.copytree(src, root / f"plane{i}", ignore=shutil.ignore_patterns("data.bin"))
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return root


@pytest.mark.parametrize("name", ["stat.npy", "F.npy", "iscell.npy"])
def test_a_file_of_the_plane_reads_the_plane(two_planes, name):
    items = TASK.read_many([two_planes / "plane1" / name])
    assert len(items) == 15
    assert set(items.table["source"]) == {str(two_planes / "plane1")}


def test_write_back_to_the_suite2p_root_writes_every_plane(two_planes):
    items = TASK.read_many([two_planes])
    is_cell = np.arange(len(items)) % 3 == 0
    preds = pd.DataFrame({"item_id": items.table["item_id"],
                          "prediction": np.where(is_cell, "cell", "not_cell"),
                          "probability": np.full(len(items), 0.8),
                          "prob_cell": np.where(is_cell, 0.8, 0.2)})
    TASK.write_back(items, preds, two_planes)
    for plane in ("plane0", "plane1"):
        rows = (items.table["source"] == str(two_planes / plane)).to_numpy()
        np.testing.assert_array_equal(np.load(two_planes / plane / "iscell.npy")[:, 0],
                                      is_cell[rows])
