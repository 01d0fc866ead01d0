"""Cell-type crops stored as arrays: an .npz (MedMNIST / Keras exports) or an HDF5 file, from
real Jurkat cells; layouts, channels, bad content, the CLI round trip."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from _celltype_helpers import cli_train_tiny, jurkat_cells

from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.tasks import ReadOptions, get_task

TASK = get_task("celltype")


# ---- (e) arrays in an .npz (MedMNIST / Keras-style exports) ---------------------------------
def _jurkat_arrays(shared_data: Path, n: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Real Jurkat cells, channels last as MedMNIST stores them, and integer labels."""
    cells, labels = [], []
    for k, cls in enumerate(("G1", "G2")):
        arrs = jurkat_cells(shared_data, cls, offset + n)[offset:]
        cells += [np.moveaxis(a, 0, -1) for a in arrs]
        labels += [k] * len(arrs)
    return np.stack(cells), np.array(labels, dtype=np.uint8)[:, None]


def _medmnist(path: Path, shared_data: Path) -> Path:
    tr, va, te = (_jurkat_arrays(shared_data, n, off) for n, off in ((6, 0), (3, 6), (2, 9)))
    np.savez(path, train_images=tr[0], train_labels=tr[1], val_images=va[0],
             val_labels=va[1], test_images=te[0], test_labels=te[1],
             class_names=np.array(["G1", "G2"]))
    return path


def test_npz_medmnist_layout_keeps_the_split_and_names_the_classes(shared_data, tmp_path):
    from napari_cellcurator.core.data.splits import hash_split

    npz = _medmnist(tmp_path / "jurkat.npz", shared_data)
    with pytest.warns(InputWarning, match="#test"):
        items = TASK.read_many([npz])
    assert len(items) == 18 and set(items.table["label"]) == {"G1", "G2"}
    train_idx, val_idx = hash_split(items.table, TASK.hyper.val_fraction)
    assert set(items.table.loc[val_idx, "split"]) == {"val"}
    assert set(items.table.loc[train_idx, "split"]) == {"train"}
    # channels last → (C, H, W) with the pixels unchanged (first G1 cell)
    first = tifffile.imread(sorted((shared_data / "celltype" / "jurkat_ifc" / "G1")
                                   .glob("*.tif"))[0])
    np.testing.assert_array_equal(items.arrays["image"][0], first.astype(np.float32))
    test = TASK.read_many([f"{npz}#test"])
    assert len(test) == 4 and list(test.table["item_id"][:2]) == ["test/0", "test/1"]


def test_npz_keras_layout_grey_images_and_text_labels(shared_data, tmp_path):
    x, y = _jurkat_arrays(shared_data, 5)
    names = np.array(["G1", "G2"])[y[:, 0]]
    np.savez(tmp_path / "k.npz", x_train=x[..., 0], y_train=names, x_test=x[:2, ..., 0],
             y_test=names[:2])
    with pytest.warns(InputWarning):
        items = TASK.read_many([tmp_path / "k.npz"])
    assert items.arrays["image"].shape == (10, 1, 40, 40)
    assert list(items.table["label"]) == list(names)


def test_npz_channels_select_and_unlabelled(shared_data, tmp_path):
    x, _ = _jurkat_arrays(shared_data, 3)
    np.savez(tmp_path / "u.npz", images=np.moveaxis(x, -1, 1))  # (N, C, H, W), no labels
    items = TASK.read_many([tmp_path / "u.npz"], ReadOptions(channels=[0, 2]))
    assert items.arrays["image"].shape == (6, 2, 40, 40)
    assert items.table["label"].isna().all()


@pytest.mark.parametrize(("arrays", "message"), [
    ({"images": np.array([np.zeros(2), np.zeros(3)], dtype=object)}, "pickle"),
    ({"images": np.zeros((4, 8, 8)), "labels": np.zeros((4, 3))}, "several labels"),
    ({"images": np.zeros((4, 8, 8)), "labels": np.zeros(3)}, "4 images"),
    ({"labels": np.zeros(3)}, "no image array"),
    ({"images": np.zeros((4, 8, 8)), "labels": np.array([0, 1, 2, 0]),
      "classes": np.array(["a", "b"])}, "label 2 has no name"),
    ({"images": np.zeros((4, 8, 8)), "labels": np.array([0, 0.5, 1, 0])}, "whole numbers"),
])
def test_npz_bad_content_is_one_error_naming_the_file(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(InputError, match=message) as err:
        TASK.read_many([path])
    assert str(path) in str(err.value)


def test_npz_unknown_set_and_missing_file(shared_data, tmp_path):
    npz = _medmnist(tmp_path / "j.npz", shared_data)
    with pytest.raises(InputError, match="no 'holdout' set"):
        TASK.read_many([f"{npz}#holdout"])
    with pytest.raises(InputError, match="does not exist"):
        TASK.read_many([tmp_path / "none.npz"])
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="broken.npz"):
        TASK.read_many([tmp_path / "broken.npz"])


def test_npz_cli_train_then_evaluate_and_predict_the_test_set(shared_data, tmp_path):
    import json

    import pandas as pd

    from napari_cellcurator._reader import detect_task
    from napari_cellcurator.cli import main

    npz = _medmnist(tmp_path / "jurkat.npz", shared_data)
    assert detect_task(npz) == "celltype" and detect_task(f"{npz}#test") == "celltype"
    assert detect_task(tmp_path / "missing.npz#test") is None
    out, pred = tmp_path / "m", tmp_path / "p.csv"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        assert cli_train_tiny(npz, out) == 0
        assert main(["evaluate", "--model", str(out), "--data", f"{npz}#test"]) == 0
        assert main(["predict", "--model", str(out), "--data", f"{npz}#test", "--out",
                     str(pred), "--device", "cpu"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["classes"] == ["G1", "G2"]
    assert cfg["metrics"]["n_val"] == 6 and cfg["metrics"]["n_train"] == 12
    assert len(pd.read_csv(pred)) == 4


def test_hdf5_crops_read_like_the_npz_and_are_told_from_a_movie(shared_data, tmp_path):
    """The same real cells as an HDF5 file, a group per set (``train/images``...), class names
    as strings: the items of the .npz; auto-detected as celltype (a movie .h5 is not)."""
    h5py = pytest.importorskip("h5py")
    from napari_cellcurator._reader import detect_task

    npz = _medmnist(tmp_path / "jurkat.npz", shared_data)
    h5 = tmp_path / "jurkat.h5"
    with np.load(npz) as arrays, h5py.File(h5, "w") as fh:
        for split in ("train", "val", "test"):
            fh[f"{split}/images"] = arrays[f"{split}_images"]
            fh[f"{split}/labels"] = arrays[f"{split}_labels"]
        fh["class_names"] = np.array([b"G1", b"G2"])
    with pytest.warns(InputWarning, match="#test"):
        from_npz = TASK.read_many([npz])
    with pytest.warns(InputWarning, match="#test"):
        from_h5 = TASK.read_many([h5])
    assert list(from_h5.table["label"]) == list(from_npz.table["label"])
    assert list(from_h5.table["split"]) == list(from_npz.table["split"])
    np.testing.assert_array_equal(from_h5.arrays["image"], from_npz.arrays["image"])
    assert len(TASK.read_many([f"{h5}#test"])) == 4
    movie = tmp_path / "movie.h5"
    with h5py.File(movie, "w") as fh:
        fh["data"] = np.zeros((20, 32, 32), np.uint16)
    assert detect_task(h5) == "celltype" and detect_task(f"{h5}#test") == "celltype"
    assert detect_task(movie) is None  # napari opens it as a movie image
    unlabelled = tmp_path / "to_predict.h5"
    with h5py.File(unlabelled, "w") as fh:
        fh["images"] = np.zeros((3, 40, 40, 2), np.uint16)
    crops = TASK.read_many([unlabelled])  # the task given: crops without labels, to predict
    assert len(crops) == 3 and crops.table["label"].isna().all()
