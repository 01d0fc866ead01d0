"""Ultralytics' own YOLO layout, ``images/<split>/`` + ``labels/<split>/`` with data.yaml at
the root, read as the Roboflow export roots are: train + val, test held out."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_cellcurator._reader import detect_task
from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.tasks import ReadOptions, get_task

TASK = get_task("celltype")
NO_QC = ReadOptions(extra={"qc": False})
#: two boxes per frame: [x, y, w, h] of class 0 and class 1
BOXES = ((10, 12, 14, 14), (50, 30, 14, 14))
H, W = 60, 80
NAMES = "names: ['rbc', 'wbc']\n"


def _frame(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(path)


def _ultralytics(root: Path, yaml: str | None, splits=("train", "val", "test")) -> Path:
    """root/images/<split>/<split><k>.jpg, root/labels/<split>/<split><k>.txt, data.yaml."""
    for s, split in enumerate(splits):
        (root / "labels" / split).mkdir(parents=True)
        for k in range(2):
            _frame(root / "images" / split / f"{split}{k}.jpg", 10 * s + k)
            lines = [f"{j} {(x + w / 2) / W:.4f} {(y + h / 2) / H:.4f} {w / W:.4f} {h / H:.4f}"
                     for j, (x, y, w, h) in enumerate(BOXES)]
            (root / "labels" / split / f"{split}{k}.txt").write_text("\n".join(lines) + "\n")
    if yaml is not None:
        (root / "data.yaml").write_text(yaml)
    return root


def _read_quietly(root: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)
        return TASK.read(root, NO_QC)


@pytest.mark.parametrize("names", [NAMES, "names:\n  0: rbc\n  1: wbc\n"])
def test_an_ultralytics_root_reads_train_and_val_with_test_held_out(tmp_path, names):
    from napari_cellcurator.core.data.splits import hash_split

    yaml = f"path: .\ntrain: images/train\nval: images/val\ntest: images/test\n{names}"
    root = _ultralytics(tmp_path / "ds", yaml)
    assert detect_task(root) == "celltype"
    with pytest.warns(InputWarning) as record:
        items = TASK.read(root, NO_QC)
    messages = [str(w.message) for w in record if issubclass(w.category, InputWarning)]
    assert len(messages) == 1
    assert "2 frames of ['test'] are kept aside" in messages[0]
    assert f"--data {root / 'images' / 'test'}" in messages[0]
    assert set(items.table["label"]) == {"rbc", "wbc"}  # never 'train' / 'images' / ids
    assert len(items) == 8 and items.table["item_id"].is_unique
    assert items.table["item_id"].str.startswith(("train/", "val/")).all()
    train_idx, val_idx = hash_split(items.table, TASK.hyper.val_fraction)
    assert set(items.table.loc[val_idx, "split"]) == {"val"} and len(val_idx) == 4
    assert set(items.table.loc[train_idx, "split"]) == {"train"}


def test_the_held_out_test_folder_reads_on_its_own(tmp_path):
    root = _ultralytics(tmp_path / "ds", NAMES)
    test = _read_quietly(root / "images" / "test")
    assert len(test) == 4 and list(test.table["label"]) == ["rbc", "wbc"] * 2
    first = test.table.iloc[0]  # box centre (17, 19) → pixel (row 18.5, col 16.5)
    assert (first["y"], first["x"]) == pytest.approx((18.5, 16.5), abs=0.01)


@pytest.mark.parametrize("entries", [
    # a stale absolute path from another machine: the yaml's own folder is used
    "path: /content/datasets/ds\ntrain: images/fit\nval: [images/check]\n",
    "train: ../images/fit\nval: ../images/check\n",  # Roboflow's ../, which Ultralytics drops
    "path: images\ntrain: fit\nval: check\n",  # relative to path:
])
def test_the_folders_data_yaml_names_are_the_splits(tmp_path, entries):
    """Folders not named like splits, named by data.yaml."""
    root = _ultralytics(tmp_path / "ds", entries + NAMES, splits=("fit", "check"))
    items = _read_quietly(root)
    assert len(items) == 8 and set(items.table["label"]) == {"rbc", "wbc"}
    assert set(zip(items.table["item_id"].str.split("/").str[0], items.table["split"],
                   strict=True)) == {("fit", "train"), ("check", "val")}


def test_folder_names_are_used_when_data_yaml_names_none_that_exist(tmp_path):
    """Roboflow's ``../train/images`` entries copied into an Ultralytics layout; ``valid``."""
    root = _ultralytics(tmp_path / "ds", f"train: ../train/images\nval: ../valid/images\n{NAMES}",
                        splits=("train", "valid"))
    items = _read_quietly(root)
    assert set(items.table["split"]) == {"train", "val"} and len(items) == 8


def test_val_naming_the_train_folder_reads_it_once_as_train(tmp_path):
    root = _ultralytics(tmp_path / "ds", f"train: images/train\nval: images/train\n{NAMES}",
                        splits=("train",))
    items = _read_quietly(root)
    assert len(items) == 4 and set(items.table["split"]) == {"train"}


def test_a_split_without_its_labels_folder_names_it(tmp_path):
    root = _ultralytics(tmp_path / "ds", NAMES, splits=("train",))
    _frame(root / "images" / "val" / "v.jpg", 5)
    with pytest.raises(InputError, match=r"labels/val: is missing: the frames of images/val/"):
        TASK.read(root, NO_QC)


def test_a_broken_data_yaml_is_named(tmp_path):
    root = _ultralytics(tmp_path / "ds", "names: [rbc, wbc\n", splits=("train", "val"))
    with pytest.raises(InputError, match=r"data\.yaml: cannot be read as YOLO data\.yaml"):
        TASK.read(root, NO_QC)


def test_a_plain_images_labels_folder_with_data_yaml_is_still_one_folder(tmp_path):
    """``train: images`` (Ultralytics' smallest data set): frames directly in images/."""
    root = tmp_path / "ds"
    (root / "labels").mkdir(parents=True)
    _frame(root / "images" / "a.jpg", 0)
    (root / "labels" / "a.txt").write_text("1 0.2 0.3 0.1 0.1\n")
    (root / "data.yaml").write_text(f"train: images\nval: images\n{NAMES}")
    items = _read_quietly(root)
    assert list(items.table["label"]) == ["wbc"] and "split" not in items.table


def test_an_older_copy_named_by_an_absolute_path_is_not_read(tmp_path):
    """``path:`` and absolute entries name where the data set was made: the folder given
    (moved or copied since) is the one read."""
    old = _ultralytics(tmp_path / "old", None, splits=("fit",))
    entries = f"path: {old}\ntrain: images/fit\nval: {old / 'images' / 'fit'}\n"
    root = _ultralytics(tmp_path / "ds", entries + NAMES, splits=("fit",))
    items = _read_quietly(root)
    assert len(items) == 4 and set(items.table["split"]) == {"train"}
    assert items.table["frame"].str.startswith(str(root)).all()


def test_an_ultralytics_split_folder_of_large_frames_is_detected(tmp_path):
    from PIL import Image

    from napari_cellcurator._reader import detect_task

    (tmp_path / "ds" / "images" / "test").mkdir(parents=True)
    (tmp_path / "ds" / "labels" / "test").mkdir(parents=True)
    Image.fromarray(np.zeros((640, 640, 3), np.uint8)).save(tmp_path / "ds/images/test/a.jpg")
    (tmp_path / "ds/labels/test/a.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    assert detect_task(tmp_path / "ds" / "images" / "test") == "celltype"
    assert detect_task(tmp_path / "ds") == "celltype"
