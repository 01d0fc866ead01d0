"""Traces of a Suite2p plane use the neuropil coefficient Suite2p was run with."""

from __future__ import annotations

import numpy as np
import pytest
from test_writeback_curation_safety import make_plane

from napari_cellcurator.core.io.safe_pickle import load_npy
from napari_cellcurator.core.tasks import ReadOptions, get_task

TASK = get_task("cellness")


def _traces(plane, **extra) -> np.ndarray:
    return TASK.read(plane, ReadOptions(extra=extra)).arrays["trace"]


@pytest.mark.parametrize("settings", [{"neucoeff": 0.3},  # Suite2p 0.x
                                      {"extraction": {"neuropil_coefficient": 0.3}}])  # 1.x
def test_the_runs_coefficient_is_used_unless_a_read_option_says_otherwise(tmp_path, settings):
    plane = make_plane(tmp_path / "plane0", np.array([[1, .9], [0, .2]]))
    default = _traces(plane)
    ops = load_npy(plane / "ops.npy")
    np.save(plane / "ops.npy", {**ops, **settings}, allow_pickle=True)
    np.testing.assert_allclose(_traces(plane), _traces(plane, neuropil_coef=0.3))
    assert not np.allclose(_traces(plane), default)  # 0.7 before
    np.testing.assert_allclose(_traces(plane, neuropil_coef=0.7), default)


def test_a_run_without_neuropil_subtraction_stays_without(tmp_path):
    plane = make_plane(tmp_path / "plane0", np.array([[1, .9], [0, .2]]))
    ops = load_npy(plane / "ops.npy")
    np.save(plane / "ops.npy", {**ops, "extraction": {"neuropil_coefficient": 0.0},
                                "neucoeff": 0.7}, allow_pickle=True)
    np.testing.assert_allclose(_traces(plane), _traces(plane, neuropil_coef=0.0))
