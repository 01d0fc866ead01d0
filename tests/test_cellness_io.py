"""Cellness readers, the restricted unpickler, PCA/ICA, simulator and write-back."""

from __future__ import annotations

import os
import pickle
from datetime import UTC
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_cellcurator.core.data.traces import centre_fit, resample, robust_normalise
from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.rois import footprints_to_labels
from napari_cellcurator.core.io.safe_pickle import load_npy
from napari_cellcurator.core.tasks import ReadOptions, get_task

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
S2P = DATA / "cellness" / "suite2p_1.1.0"
FISSA = DATA / "cellness" / "suite2p_0.x" / "fissa_example" / "plane0"
ALLEN = DATA / "cellness" / "allen_croissant" / "train_rois.json"
MINISCOPE = DATA / "calcium" / "miniscope_1p" / "miniscope_1p.tif"
SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "cellness_sim"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


@pytest.fixture
def task():
    return get_task("cellness")


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/cellcurator_pwned_by_test",))


def test_unpickler_refuses_malicious_object_array(tmp_path):
    marker = Path("/tmp/cellcurator_pwned_by_test")
    marker.unlink(missing_ok=True)
    arr = np.empty(1, dtype=object)
    arr[0] = {"ypix": np.arange(3), "evil": _Evil()}
    bad = tmp_path / "stat.npy"
    np.save(bad, arr, allow_pickle=True)
    with pytest.raises(InputError, match="stat.npy.*os|stat.npy.*posix|refused"):
        load_npy(bad)
    assert not marker.exists()


def test_unpickler_refuses_eval_and_reads_plain_objects(tmp_path):
    payload = pickle.dumps(np.array([{"a": eval}], dtype=object), protocol=3)
    f = tmp_path / "ops.npy"
    # a .npy header for a (1,) object array, then the pickle
    with open(f, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "|O", "fortran_order": False,
                                                  "shape": (1,)})
        fh.write(payload)
    with pytest.raises(InputError, match="builtins.eval"):
        load_npy(f)
    from datetime import datetime

    ok = {"x": np.arange(4, dtype=np.float32), "when": datetime.now(UTC), "s": {1, 2},
          "t": (1.5, "a", None, b"b")}
    good = tmp_path / "good.npy"
    np.save(good, np.array(ok, dtype=object), allow_pickle=True)
    back = load_npy(good)
    assert back["t"] == ok["t"] and back["when"] == ok["when"]
    np.testing.assert_array_equal(back["x"], ok["x"])


def test_numeric_npy_and_bad_file(tmp_path):
    f = tmp_path / "F.npy"
    np.save(f, np.ones((3, 4), np.float32))
    assert load_npy(f).shape == (3, 4)
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(InputError, match="junk.npy"):
        load_npy(tmp_path / "junk.npy")


@pytest.mark.parametrize("name,n", [("movie_100x100x100", 34), ("792757260_test_data", 15)])
def test_suite2p_1x(task, name, n):
    plane = need(S2P / name / "plane0")
    items = task.read(plane.parent, ReadOptions())  # the parent of plane0 works too
    assert len(items) == n
    assert items.arrays["image"].shape == (n, 2, 32, 32)
    assert items.arrays["trace"].shape == (n, 100)
    iscell = np.load(plane / "iscell.npy")
    assert (items.table["label"] == "cell").sum() == int(iscell[:, 0].sum())
    for col in ("y", "x", "npix", "suite2p_prob"):
        assert col in items.table
    part = items.meta["parts"][0] if "parts" in items.meta else items.meta
    assert part["mean_image"].shape == (100, 100)
    assert part["images"]["Vcorr"].shape == (100, 100)  # cropped Vcorr placed back


def test_suite2p_0x_and_labels_image(task):
    items = task.read(need(FISSA), ReadOptions())
    assert len(items) == 23 and items.arrays["trace"].shape == (23, 864)
    assert items.meta["suite2p_version"] == "0.x" and items.meta["mean_image"].shape == (176, 156)
    labels = footprints_to_labels(items)
    assert labels.shape == (176, 156) and labels.dtype == np.int32
    assert set(np.unique(labels)) - {0} == set(range(1, 24)) or labels.max() == 23
    # labels sit where the footprints are
    stat = load_npy(FISSA / "stat.npy")
    assert labels[stat[0]["ypix"], stat[0]["xpix"]].max() >= 1


def test_suite2p_missing_and_mismatched(tmp_path, task):
    plane = tmp_path / "plane0"
    plane.mkdir()
    stat = np.empty(2, dtype=object)
    for i in range(2):
        stat[i] = {"ypix": np.array([1, 2]), "xpix": np.array([3, 3]), "lam": np.ones(2)}
    np.save(plane / "stat.npy", stat, allow_pickle=True)
    with pytest.raises(InputError, match="missing F.npy"):
        task.read(plane, ReadOptions())
    np.save(plane / "F.npy", np.zeros((3, 10), np.float32))
    with pytest.raises(InputError, match="F.npy.*2 ROIs"):
        task.read(plane, ReadOptions())


def test_allen_json(task):
    items = task.read(need(ALLEN), ReadOptions())
    assert len(items) == 70
    assert items.table["label"].value_counts().to_dict() == {"not_cell": 35, "cell": 35}
    assert items.arrays["trace"].shape == (70, 200)
    # coordinates wrapped modulo 256 in the file are unwrapped: footprints stay in the patch
    mask = items.arrays["image"][:, 1]
    assert (mask.sum(axis=(1, 2)) / items.table["npix"]).min() > 0.7
    assert items.table["group"].nunique() > 30  # experiments kept apart in splits


def _write_caiman(path: Path, dims=(20, 24), k=3, t=50, good=(0, 2), bad=(1,),
                  centres=((5, 5), (10, 15), (15, 6))):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    a = np.zeros((dims[0] * dims[1], k), np.float32)
    for j, (cy, cx) in enumerate(centres[:k]):
        img = np.zeros(dims, np.float32)
        img[cy - 2:cy + 3, cx - 2:cx + 3] = 1 + j
        a[:, j] = img.ravel(order="F")  # CaImAn stores pixels in Fortran order
    indptr, indices, data = [0], [], []
    for j in range(k):
        nz = np.flatnonzero(a[:, j])
        indices += nz.tolist()
        data += a[nz, j].tolist()
        indptr.append(len(indices))
    with h5py.File(path, "w") as fh:
        fh["dims"] = np.array(dims)
        est = fh.create_group("estimates")
        est["A/data"] = np.array(data, np.float32)
        est["A/indices"] = np.array(indices, np.int32)
        est["A/indptr"] = np.array(indptr, np.int32)
        est["A/shape"] = np.array([dims[0] * dims[1], k])
        est["C"] = rng.random((k, t)).astype(np.float32)
        est["YrA"] = np.zeros((k, t), np.float32)
        est["idx_components"] = np.array(good)
        est["idx_components_bad"] = np.array(bad) if bad is not None else "NoneType"
    return centres


def test_caiman_read_and_write_back(tmp_path, task):
    f = tmp_path / "results.hdf5"
    centres = _write_caiman(f)
    items = task.read(f, ReadOptions())
    assert items.table["label"].tolist() == ["cell", "not_cell", "cell"]
    np.testing.assert_allclose(items.table[["y", "x"]].to_numpy(), centres)
    preds = pd.DataFrame({"item_id": items.table["item_id"],
                          "prediction": ["not_cell", "cell", "cell"],
                          "probability": [0.9, 0.8, 0.7]})
    task.write_back(items, preds, f)
    again = task.read(f, ReadOptions())
    assert again.table["label"].tolist() == ["not_cell", "cell", "cell"]
    assert list(tmp_path.glob("results.bak-*.hdf5"))
    # CaImAn run again while the items were open: its components in another order
    _write_caiman(f, centres=((15, 6), (10, 15), (5, 5)))
    before = f.read_bytes()
    with pytest.raises(InputError, match=r"results.hdf5.*changed since it was read.*CaImAn"):
        task.write_back(items, preds, f)
    assert f.read_bytes() == before


def test_caiman_none_placeholder_and_bad_file(tmp_path, task):
    f = tmp_path / "r.h5"
    _write_caiman(f, good=(0,), bad=None)
    labels = task.read(f, ReadOptions()).table["label"]
    assert labels.iloc[0] == "cell" and labels.iloc[1:].isna().all()
    (tmp_path / "x.hdf5").write_bytes(b"nope")
    with pytest.raises(InputError, match="x.hdf5"):
        task.read(tmp_path / "x.hdf5", ReadOptions())


def test_suite2p_write_back_round_trip(tmp_path, task):
    import shutil

    src = need(S2P / "792757260_test_data" / "plane0")
    plane = tmp_path / "plane0"
    shutil.copytree(src, plane)
    for p in plane.iterdir():
        p.chmod(0o644)
    original = np.load(plane / "iscell.npy")
    items = task.read(plane, ReadOptions())
    n = len(items)
    preds = pd.DataFrame({"item_id": items.table["item_id"],
                          "prediction": ["cell" if i % 2 else "not_cell" for i in range(n)],
                          "probability": np.full(n, 0.8),
                          "prob_cell": [0.8 if i % 2 else 0.2 for i in range(n)]})
    task.write_back(items, preds, plane)
    backups = list(plane.glob("iscell.bak-*.npy"))
    assert len(backups) == 1
    np.testing.assert_array_equal(np.load(backups[0]), original)
    new = np.load(plane / "iscell.npy", allow_pickle=False)  # our own test file
    assert new.shape == (n, 2) and new.dtype == np.float64
    np.testing.assert_array_equal(new[:, 0], np.arange(n) % 2)
    np.testing.assert_allclose(new[:, 1], np.where(np.arange(n) % 2, 0.8, 0.2))
    assert not list(plane.glob(".iscell*.tmp"))


def test_pcaica_on_miniscope(task):
    items = task.read(need(MINISCOPE), ReadOptions())
    n = len(items)
    assert 3 <= n <= 60
    assert items.table["label"].isna().all()
    npix = items.table["npix"].to_numpy()
    assert npix.min() >= 12 and np.median(npix) < 400  # blobs, not whole-frame components
    from skimage.measure import regionprops

    lab = footprints_to_labels(items)
    solidity = [r.solidity for r in regionprops(lab)]
    assert np.median(solidity) > 0.7  # compact
    assert np.isfinite(items.arrays["trace"]).all()


def test_pcaica_finds_simulated_cells():
    from napari_cellcurator.core.data.simulate_calcium import simulate_candidates

    sim, rois = simulate_candidates(3, shape=(64, 64), n_frames=200, n_cells=10)
    labels = rois.labels
    assert labels.count("cell") >= 4  # most active somata are recovered
    assert 0 < labels.count("not_cell")  # and some candidates are not somata
    z = robust_normalise(rois.traces) * 5
    cells = [i for i, lab in enumerate(labels) if lab == "cell"]
    assert np.median(z[cells].max(axis=1)) > 5  # cell traces have transients above noise


def test_movie_file_candidates_match_the_simulation_protocol(tmp_path, task):
    """A user's raw movie gives the items the shipped model learnt from: the same PCA/ICA
    candidates with the same neuropil-subtracted traces as :func:`simulate_candidates`."""
    import tifffile

    from napari_cellcurator.core.data.simulate_calcium import simulate_candidates
    from napari_cellcurator.core.io.rois import roiset_to_items

    sim, rois = simulate_candidates(0, shape=(64, 64), n_frames=150, n_cells=8)  # ICA seed 0
    movie_file = tmp_path / "recording.tif"
    tifffile.imwrite(movie_file, sim.movie.astype(np.float32))
    from_file = task.read(movie_file, ReadOptions())
    expected = roiset_to_items(rois, {})
    assert len(from_file) == len(expected) > 3
    assert from_file.meta.get("n_frames", 150) == 150
    np.testing.assert_allclose(from_file.arrays["trace"], expected.arrays["trace"],
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(from_file.arrays["image"], expected.arrays["image"],
                               rtol=1e-4, atol=1e-4)


def test_sample_data_reads(task):
    items = task.read(need(SAMPLE), ReadOptions())
    assert len(items) > 10
    assert set(items.table["label"]) == {"cell", "not_cell"}


def test_trace_helpers_robust():
    x = np.array([[1, 1, 1, 1.0], [np.nan, 2, np.nan, 4], [0, 0, 10, 0]])
    z = robust_normalise(x)
    assert np.isfinite(z).all() and (z[0] == 0).all()
    assert resample(x, 7).shape == (3, 7) and np.isfinite(resample(x, 7)).all()
    assert centre_fit(np.arange(10.0), 4).tolist() == [3, 4, 5, 6]
    assert centre_fit(np.arange(2.0) + 1, 6).tolist() == [0, 0, 1, 2, 0, 0]


def test_unknown_format(tmp_path, task):
    f = tmp_path / "a.csv"
    f.write_text("x")
    with pytest.raises(InputError, match="a.csv"):
        task.read(f, ReadOptions())
