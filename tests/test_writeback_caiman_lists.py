"""CaImAn write-back: the CaImAn GUI's own curation lists follow the decisions, its
'NoneType' placeholders stay, and a read-only results folder is one clear error."""

from __future__ import annotations

import numpy as np
import pytest
from test_writeback_curation_safety import make_caiman

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.writeback import write_caiman_idx

h5py = pytest.importorskip("h5py")


def test_accepted_and_rejected_lists_follow_the_decisions(tmp_path):
    results = make_caiman(tmp_path / "results.hdf5")
    with h5py.File(results, "r+") as fh:
        fh["estimates/accepted_list"] = np.array([0, 2])
        fh["estimates/rejected_list"] = np.array([1])
    write_caiman_idx(results, np.arange(3), np.array([False, True, True]))
    with h5py.File(results, "r") as fh:
        est = fh["estimates"]
        assert list(est["idx_components"][()]) == [1, 2]
        assert list(est["accepted_list"][()]) == [1, 2]
        assert list(est["rejected_list"][()]) == [0]


def test_nonetype_placeholders_are_left_alone(tmp_path):
    results = make_caiman(tmp_path / "results.hdf5")
    with h5py.File(results, "r+") as fh:
        fh["estimates/accepted_list"] = "NoneType"
    write_caiman_idx(results, np.arange(3), np.array([True, False, True]))
    with h5py.File(results, "r") as fh:
        assert fh["estimates/accepted_list"][()] in (b"NoneType", "NoneType")
        assert "rejected_list" not in fh["estimates"]
        assert list(fh["estimates/idx_components_bad"][()]) == [1]


def test_read_only_results_folder_is_one_clear_error(tmp_path, monkeypatch):
    """(os.access is asked: as root, chmod would not stop the writes.)"""
    from napari_cellcurator.core.io import writeback

    folder = tmp_path / "session"
    folder.mkdir()
    results = make_caiman(folder / "results.hdf5")
    monkeypatch.setattr(writeback.os, "access", lambda p, mode: False)
    with pytest.raises(InputError, match="read-only"):
        write_caiman_idx(results, np.arange(3), np.array([True, False, True]))
    assert sorted(p.name for p in folder.iterdir()) == ["results.hdf5"]  # no side file
