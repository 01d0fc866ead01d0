"""Bad calcium-imaging input through the cellness task and the CLI: the package's error naming the
file, or — for odd but valid data (NaN/constant traces, empty or one-pixel footprints) — items
whose model inputs are all finite."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from _reliability_helpers import (
    assert_input_error,
    cli_fails,
    read_or_error,
    roi_stat,
    skip_unless_task,
    suite2p_plane,
)

from napari_cellcurator.cli import main
from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.tasks import ReadOptions, get_task

torch.set_num_threads(1)
TRAIN = ["--arch", "twobranch", "--epochs", "1", "--device", "cpu", "--init", "none",
         "--batch-size", "8"]


@pytest.fixture(autouse=True)
def _needs_task():
    skip_unless_task("cellness")


def model_inputs(items: ItemSet) -> dict:
    """What a model would be fed for every item (training preprocessing, with augmentation)."""
    task = get_task("cellness")
    prep = task.fit_preprocessing(items, ReadOptions())
    return task.make_batch(items, np.arange(len(items)), prep, True, np.random.default_rng(0))


def assert_model_ready(items) -> None:
    assert isinstance(items, ItemSet), items
    for key, x in model_inputs(items).items():
        assert torch.isfinite(x).all(), f"{key} has NaN/inf"


F = np.random.default_rng(1).normal(100, 5, (6, 60)).astype(np.float32)


# ---- broken Suite2p folders: InputError naming the file ----------------------------------------
@pytest.mark.parametrize("case, replace, culprit, words", [
    ("no F.npy", {"F.npy": None}, "", ["missing F.npy"]),
    ("F has fewer ROIs", {"F.npy": F[:4], "Fneu.npy": None}, "F.npy", ["(4, 60)", "6 ROIs"]),
    ("iscell has fewer ROIs", {"iscell.npy": np.ones((3, 2))}, "iscell.npy", ["3 rows"]),
    ("Fneu differs from F", {"Fneu.npy": F[:, :10]}, "Fneu.npy", ["differs"]),
    ("F is 1-D", {"F.npy": F[0], "Fneu.npy": None}, "F.npy", ["shape (60,)"]),
    ("F is 3-D", {"F.npy": F[None], "Fneu.npy": None}, "F.npy", ["shape (1, 6, 60)"]),
    ("F of strings", {"F.npy": np.full((6, 60), "x"), "Fneu.npy": None}, "F.npy", ["numeric"]),
    ("F complex", {"F.npy": F.astype(np.complex64), "Fneu.npy": None}, "F.npy", ["complex"]),
    ("0 frames", {"F.npy": F[:, :0], "Fneu.npy": F[:, :0]}, "F.npy", ["0 frames"]),
    ("stat not ROI dicts", {"stat.npy": np.zeros(6)}, "stat.npy", ["ROI dicts"]),
    ("stat without ypix", {"stat.npy": np.array([{"x": 1}] * 6, dtype=object)}, "stat.npy",
     ["no ypix"]),
    ("stat pixels not numbers", {"stat.npy": np.array([{"ypix": ["a"], "xpix": ["b"]}] * 6,
                                                      dtype=object)}, "stat.npy", ["not numbers"]),
    ("no ROIs", {"stat.npy": np.empty(0, object), "F.npy": F[:0], "Fneu.npy": None,
                 "iscell.npy": None}, "stat.npy", ["no ROIs"]),
    ("ROI outside the field of view", {"stat.npy": roi_stat([([5, 6], [5, 6])] * 5
                                                            + [([70, 71], [5, 6])])},
     "stat.npy", ["ROI 5", "outside", "64×64"]),
    ("negative pixel coordinates", {"stat.npy": roi_stat([([5, 6], [5, 6])] * 5
                                                         + [([-3, 1], [5, 6])])},
     "stat.npy", ["outside"]),
    ("iscell 3-D", {"iscell.npy": np.zeros((6, 2, 2))}, "iscell.npy", ["(6, 2, 2)"]),
    ("iscell of words", {"iscell.npy": np.full((6, 2), "yes")}, "iscell.npy", ["not numbers"]),
    ("corrupt F.npy", {"F.npy": b"\x93NUMPY\x01\x00garbage"}, "F.npy", ["not a valid .npy"]),
    ("truncated F.npy", {"F.npy": "truncate"}, "F.npy", ["unreadable"]),
    ("random bytes stat.npy", {"stat.npy": bytes(range(256))}, "stat.npy", []),
    ("ops Ly is text", {"ops.npy": np.array({"Ly": "abc", "Lx": 64}, dtype=object)}, "ops.npy",
     ["not integers"]),
])
def test_broken_suite2p_folder(case, replace, culprit, words, tmp_path):
    if isinstance(replace.get("F.npy"), str):
        import io

        buf = io.BytesIO()
        np.save(buf, F)
        replace = {**replace, "F.npy": buf.getvalue()[:300]}
    plane = suite2p_plane(tmp_path / "rec", **replace)
    result = read_or_error("cellness", [tmp_path / "rec"])
    assert_input_error(result, plane / culprit if culprit else plane, *words)


def test_missing_stat_npy(tmp_path):
    suite2p_plane(tmp_path / "rec", **{"stat.npy": None})
    (tmp_path / "rec" / "plane0" / "F.npy").unlink()
    assert_input_error(read_or_error("cellness", [tmp_path / "rec"]), tmp_path / "rec",
                       "not a Suite2p folder")


# ---- odd but valid: read, and the model only ever sees finite numbers --------------------------
def test_nan_and_inf_traces_are_cleaned(tmp_path):
    f = F.copy()
    f[0, 5:20] = np.nan
    f[1] = np.nan
    f[2, 7] = np.inf
    f[3, 9] = -np.inf
    suite2p_plane(tmp_path / "rec", **{"F.npy": f})
    items = read_or_error("cellness", [tmp_path / "rec"])
    assert_model_ready(items)


def test_constant_traces(tmp_path):
    suite2p_plane(tmp_path / "rec", **{"F.npy": np.full((6, 60), 7, np.float32),
                                       "Fneu.npy": np.zeros((6, 60), np.float32)})
    items = read_or_error("cellness", [tmp_path / "rec"])
    assert_model_ready(items)
    assert np.allclose(model_inputs(items)["trace"].numpy(), model_inputs(items)["trace"].numpy()
                       .mean(), atol=0.5)


def test_one_frame_recording(tmp_path):
    suite2p_plane(tmp_path / "rec", **{"F.npy": F[:, :1], "Fneu.npy": F[:, :1]})
    assert_model_ready(read_or_error("cellness", [tmp_path / "rec"]))


def test_empty_and_one_pixel_footprints(tmp_path):
    fps = [([], []), ([10], [12])] + [([20, 21, 20, 21], [30, 30, 31, 31])] * 4
    suite2p_plane(tmp_path / "rec", **{"stat.npy": roi_stat(fps)})
    items = read_or_error("cellness", [tmp_path / "rec"])
    assert_model_ready(items)
    image = np.asarray(items.arrays["image"])
    assert image[0].sum() == 0  # nothing to draw
    assert image[1, 1].sum() == 1  # the one-pixel mask has one pixel
    assert list(items.table["npix"][:2]) == [0, 1]


@pytest.mark.parametrize("name, movie, words", [
    ("image.tif", np.random.default_rng(0).random((32, 32)), ["2-D image"]),
    # a T×C×Y×X stack is read (channel 0), but there is nothing to find in zeros
    ("stack4d.tif", np.zeros((5, 2, 16, 16), np.float32), ["constant"]),
    ("one_frame.npy", np.zeros((1, 16, 16), np.float32), []),
    ("empty.npy", np.zeros((0, 16, 16), np.float32), []),
    ("corrupt.tif", b"II*\x00\x08\x00\x00\x00junk", []),
    ("corrupt.h5", b"\x89HDF\r\n\x1a\n" + bytes(40), ["HDF5"]),
    ("corrupt.json", b'[{"coo_rows": [1, 2}', ["JSON"]),
    ("empty.json", b"[]", ["ROI objects"]),
    ("short_shape.json", b'{"rois": [{"coo_rows": [0], "coo_cols": [0], "coo_data": [1], '
                         b'"image_shape": [4], "trace": [1, 2]}]}', []),
])
def test_broken_movie_and_roi_files(name, movie, words, tmp_path):
    path = tmp_path / name
    if isinstance(movie, bytes):
        path.write_bytes(movie)
    elif name.endswith(".tif"):
        tifffile.imwrite(path, movie, photometric="minisblack")
    else:
        np.save(path, movie)
    assert_input_error(read_or_error("cellness", [path]), path, *words)


def test_zarr_movie_with_missing_or_corrupt_chunks(tmp_path):
    """A missing chunk is zarr's fill value (not an error); a corrupt chunk is an InputError."""
    zarr = pytest.importorskip("zarr")
    path = tmp_path / "movie.zarr"
    z = zarr.open_array(str(path), mode="w", shape=(40, 32, 32), chunks=(10, 32, 32), dtype="f4")
    z[:] = np.random.default_rng(0).random((40, 32, 32), dtype=np.float32)
    chunks = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
                    and p.name not in ("zarr.json", ".zarray"))
    chunks[0].unlink()
    result = read_or_error("cellness", [path])
    assert isinstance(result, ItemSet) or "movie.zarr" in str(result)
    chunks[1].write_bytes(b"not a compressed chunk")
    assert_input_error(read_or_error("cellness", [path]), path)


# ---- the CLI: exit 2 and no half-written output ----------------------------------------------
def test_cli_train_and_predict_on_broken_folder_write_nothing(tmp_path, capsys):
    good = tmp_path / "good"
    suite2p_plane(good)
    bad = tmp_path / "bad"
    suite2p_plane(bad, **{"iscell.npy": np.ones((2, 2))})
    out = tmp_path / "model"
    cli_fails(["train", "--task", "cellness", "--data", str(bad), "--out", str(out), *TRAIN],
              capsys, "iscell.npy", "2 rows")
    assert not out.exists()
    assert main(["train", "--task", "cellness", "--data", str(good), "--out", str(out),
                 *TRAIN]) == 0
    pred = tmp_path / "pred.csv"
    cli_fails(["predict", "--model", str(out), "--data", str(bad), "--out", str(pred),
               "--device", "cpu"], capsys, "iscell.npy")
    assert not pred.exists()


def test_cli_trains_on_nan_traces(tmp_path, capsys):
    f = F.copy()
    f[:, ::7] = np.nan
    data = tmp_path / "rec"
    suite2p_plane(data, **{"F.npy": f})
    out = tmp_path / "model"
    assert main(["train", "--task", "cellness", "--data", str(data), "--out", str(out),
                 *TRAIN]) == 0
    assert (out / "config.json").is_file()
