"""Audit: CaImAn results HDF5 as ``cnm.save()`` writes it (``recursively_save_dict_contents_
to_group``: sparse CSC ``estimates/A`` group, ``dims`` at the root and in ``estimates``,
``params/``, ``'NoneType'`` strings for None), built from the real Suite2p ROIs of an Allen
recording so the CaImAn reader can be checked against the Suite2p reader on the same cells."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.safe_pickle import load_npy
from napari_cellcurator.core.tasks import get_task

h5py = pytest.importorskip("h5py")
sparse = pytest.importorskip("scipy.sparse")
TASK = get_task("cellness")


@pytest.fixture(scope="module")
def plane(shared_data) -> Path:
    return shared_data / "cellness" / "suite2p_1.1.0" / "movie_100x100x100" / "plane0"


def _a_matrix(plane: Path) -> tuple[np.ndarray, tuple[int, int]]:
    """Dense (pixels × K) footprints, pixels in Fortran order as CaImAn keeps them."""
    ops = load_npy(plane / "ops.npy")
    dims = (int(ops["Ly"]), int(ops["Lx"]))
    stat = load_npy(plane / "stat.npy")
    a = np.zeros((dims[0] * dims[1], len(stat)), np.float64)
    for k, s in enumerate(stat):
        flat = np.ravel_multi_index((s["ypix"], s["xpix"]), dims, order="F")
        a[flat, k] = s["lam"]
    return a, dims


def write_caiman_like(path: Path, plane: Path, dense_a: bool = False, none_idx: bool = False,
                      dims_where: str = "root") -> int:
    """A results file laid out the way CaImAn's ``save_dict_to_hdf5`` writes it."""
    a, dims = _a_matrix(plane)
    f = np.load(plane / "F.npy")
    iscell = np.load(plane / "iscell.npy")
    good = np.flatnonzero(iscell[:, 0] > 0.5)
    bad = np.flatnonzero(iscell[:, 0] <= 0.5)
    csc = sparse.csc_matrix(a)
    with h5py.File(path, "w") as fh:
        if dims_where == "root":
            fh["dims"] = np.array(dims)
        fh["dview"] = "NoneType"
        fh["params/data/dims"] = np.array(dims)
        fh["params/data/fr"] = 30.0
        est = fh.create_group("estimates")
        if dims_where == "root":
            est["dims"] = np.array(dims)
        if dense_a:
            est["A"] = a
        else:
            est["A/data"] = csc.data
            est["A/indptr"] = csc.indptr
            est["A/indices"] = csc.indices
            est["A/shape"] = np.array(csc.shape)
        est["C"] = f.astype(np.float64)
        est["YrA"] = np.zeros_like(f, np.float64)
        est["S"] = np.zeros_like(f, np.float64)
        est["b"] = np.ones((dims[0] * dims[1], 1))
        est["f"] = np.ones((1, f.shape[1]))
        est["Cn"] = load_npy(plane / "ops.npy")["meanImg"].astype(np.float64)
        est["idx_components"] = "NoneType" if none_idx else good
        est["idx_components_bad"] = "NoneType" if none_idx else bad
        est["discarded_components"] = "NoneType"
    return len(good)


@pytest.mark.parametrize("name", ["results.hdf5", "results.h5", "RESULTS.HDF5"])
def test_caiman_file_reads_like_the_suite2p_folder(name, plane, tmp_path):
    path = tmp_path / name
    n_good = write_caiman_like(path, plane)
    items = TASK.read_many([path])
    ref = TASK.read_many([plane])
    assert len(items) == len(ref) == 34
    assert (items.table["label"] == "cell").sum() == n_good
    assert list(items.table["label"]) == list(ref.table["label"])
    np.testing.assert_allclose(items.table[["y", "x"]], ref.table[["y", "x"]], atol=1e-6)
    np.testing.assert_allclose(items.arrays["image"], ref.arrays["image"], atol=1e-5)
    assert items.meta["mean_image"].shape == (100, 100)


def test_dense_a_and_dims_only_under_params(plane, tmp_path):
    path = tmp_path / "dense.hdf5"
    write_caiman_like(path, plane, dense_a=True, dims_where="params")
    items = TASK.read_many([path])
    ref = TASK.read_many([plane])
    np.testing.assert_allclose(items.table[["y", "x"]], ref.table[["y", "x"]], atol=1e-6)


def test_no_component_evaluation_means_unlabelled(plane, tmp_path):
    path = tmp_path / "r.hdf5"
    write_caiman_like(path, plane, none_idx=True)
    items = TASK.read_many([path])
    assert len(items) == 34 and items.table["label"].isna().all()


def test_write_back_keeps_everything_else(plane, tmp_path):
    import pandas as pd

    path = tmp_path / "r.hdf5"
    write_caiman_like(path, plane)
    items = TASK.read_many([path])
    pred = pd.DataFrame({"item_id": items.table["item_id"],
                         "prediction": ["cell"] * 10 + ["not_cell"] * 24,
                         "probability": np.full(34, 0.9)})
    TASK.write_back(items, pred, path)
    with h5py.File(path, "r") as fh:
        assert list(fh["estimates/idx_components"][()]) == list(range(10))
        assert fh["estimates/A/data"].shape[0] > 0 and "params" in fh
    assert len(list(tmp_path.glob("r.bak-*.hdf5"))) == 1
    assert (TASK.read_many([path]).table["label"] == "cell").sum() == 10


def test_volumetric_and_broken_files_are_one_clear_error(plane, tmp_path):
    path = tmp_path / "vol.hdf5"
    write_caiman_like(path, plane)
    with h5py.File(path, "r+") as fh:
        del fh["dims"], fh["estimates/dims"], fh["params/data/dims"]
        fh["dims"] = np.array([10, 100, 10])
    with pytest.raises(InputError, match="3-D") as err:
        TASK.read_many([path])
    assert str(path) in str(err.value)
    trunc = tmp_path / "trunc.hdf5"
    shutil.copy(tmp_path / "vol.hdf5", trunc)
    trunc.write_bytes(trunc.read_bytes()[:2000])
    with pytest.raises(InputError) as err:
        TASK.read_many([trunc])
    assert str(trunc) in str(err.value)
    no_c = tmp_path / "noc.hdf5"
    write_caiman_like(no_c, plane)
    with h5py.File(no_c, "r+") as fh:
        del fh["estimates/C"]
        fh["estimates/C"] = "NoneType"
    with pytest.raises(InputError, match="estimates/C") as err:
        TASK.read_many([no_c])
    assert str(no_c) in str(err.value)


def test_empty_component_does_not_break_reading(plane, tmp_path):
    path = tmp_path / "r.hdf5"
    write_caiman_like(path, plane)
    a, dims = _a_matrix(plane)
    a[:, 3] = 0  # a component CaImAn emptied (all-zero column)
    csc = sparse.csc_matrix(a)
    with h5py.File(path, "r+") as fh:
        for key in ("data", "indices", "indptr"):
            del fh[f"estimates/A/{key}"]
            fh[f"estimates/A/{key}"] = getattr(csc, key)
    items = TASK.read_many([path])
    assert len(items) == 34 and np.isfinite(items.arrays["image"]).all()
