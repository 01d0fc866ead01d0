"""Detection exports split into train/ valid/ test/ (Roboflow's COCO, YOLO and Pascal VOC
layouts) read as the boxes' cells, never as classes named after the splits; and the
celltype folder layouts the README documents found without ``--task``."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_cellcurator._reader import detect_task, unknown_format
from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.tasks import ReadOptions, get_task

TASK = get_task("celltype")
NO_QC = ReadOptions(extra={"qc": False})
SPLITS = ("train", "valid", "test")
#: two boxes per frame: [x, y, w, h] and their classes
BOXES = (((10, 12, 14, 14), "rbc"), ((50, 30, 14, 14), "wbc"))
H, W = 60, 80


def _frame(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(path)


def _coco_export(root: Path, splits=SPLITS) -> Path:
    """Roboflow COCO: <split>/_annotations.coco.json beside the frames (category 0 is
    Roboflow's unused super-category)."""
    for s, split in enumerate(splits):
        names = [f"{split}{k}.jpg" for k in range(2)]
        for k, name in enumerate(names):
            _frame(root / split / name, 10 * s + k)
        coco = {"images": [{"id": k, "file_name": n, "width": W, "height": H}
                           for k, n in enumerate(names)],
                "categories": [{"id": 0, "name": "cells"}, {"id": 1, "name": "rbc"},
                               {"id": 2, "name": "wbc"}],
                "annotations": [{"id": 10 * k + j, "image_id": k, "category_id": 1 + j,
                                 "bbox": list(BOXES[j][0])}
                                for k in range(len(names)) for j in range(2)]}
        (root / split / "_annotations.coco.json").write_text(json.dumps(coco))
    return root


def _yolo_export(root: Path) -> Path:
    """Roboflow YOLOv8: data.yaml + <split>/images, <split>/labels."""
    for s, split in enumerate(SPLITS):
        for k in range(2):
            _frame(root / split / "images" / f"{split}{k}.jpg", 10 * s + k)
            lines = [f"{j} {(x + w / 2) / W:.4f} {(y + h / 2) / H:.4f} {w / W:.4f} {h / H:.4f}"
                     for j, ((x, y, w, h), _) in enumerate(BOXES)]
            (root / split / "labels").mkdir(exist_ok=True)
            (root / split / "labels" / f"{split}{k}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\n"
                                    "test: ../test/images\nnc: 2\nnames: ['rbc', 'wbc']\n")
    return root


def _voc_export(root: Path) -> Path:
    """Roboflow Pascal VOC: <split>/<stem>.jpg with <stem>.xml beside it."""
    for s, split in enumerate(SPLITS):
        for k in range(2):
            _frame(root / split / f"{split}{k}.jpg", 10 * s + k)
            objects = "".join(
                f"<object><name>{cls}</name><bndbox><xmin>{x}</xmin><ymin>{y}</ymin>"
                f"<xmax>{x + w}</xmax><ymax>{y + h}</ymax></bndbox></object>"
                for (x, y, w, h), cls in BOXES)
            (root / split / f"{split}{k}.xml").write_text(
                f"<annotation><filename>{split}{k}.jpg</filename>{objects}</annotation>")
    return root


@pytest.mark.parametrize("export", [_coco_export, _yolo_export, _voc_export])
def test_an_export_root_reads_train_and_valid_boxes_with_test_held_out(tmp_path, export):
    from napari_cellcurator.core.data.splits import hash_split

    root = export(tmp_path / "export")
    assert detect_task(root) == "celltype"
    with pytest.warns(InputWarning, match=r"2 frames of \['test'\] are kept aside"):
        items = TASK.read(root, NO_QC)
    assert set(items.table["label"]) == {"rbc", "wbc"}  # never 'train' / 'valid' / 'images'
    assert len(items) == 8 and items.table["item_id"].is_unique
    assert items.table["item_id"].str.startswith(("train/", "valid/")).all()
    train_idx, val_idx = hash_split(items.table, TASK.hyper.val_fraction)
    assert set(items.table.loc[val_idx, "split"]) == {"val"} and len(val_idx) == 4
    assert set(items.table.loc[train_idx, "split"]) == {"train"}
    test = TASK.read(root / "test", NO_QC)  # the held-out split reads on its own
    assert len(test) == 4 and set(test.table["label"]) == {"rbc", "wbc"}


def test_an_export_without_test_reads_silently(tmp_path):
    root = _coco_export(tmp_path / "export", splits=("train", "valid"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)
        items = TASK.read(root, NO_QC)
    assert set(items.table["split"]) == {"train", "val"} and len(items) == 8


def test_a_broken_split_of_an_export_names_its_file(tmp_path):
    root = _coco_export(tmp_path / "export")
    (root / "valid" / "_annotations.coco.json").write_text('{"images": [')
    with warnings.catch_warnings(), pytest.raises(
            InputError, match=r"valid/_annotations\.coco\.json: is not valid JSON"):
        warnings.simplefilter("ignore", InputWarning)  # test/ held out
        TASK.read(root, NO_QC)


def test_one_voc_split_folder_reads_its_boxes_not_unlabelled_frames(tmp_path):
    folder = _voc_export(tmp_path / "export") / "train"
    assert detect_task(folder) == "celltype"  # napari and the CLI find it too
    items = TASK.read(folder, NO_QC)
    assert len(items) == 4 and list(items.table["label"]) == ["rbc", "wbc"] * 2
    first = items.table.iloc[0]  # VOC pixels start at 1: centre (17, 19) → (row 18, col 16)
    assert (first["y"], first["x"]) == (18.0, 16.0)


def test_split_names_are_never_read_as_classes(tmp_path):
    """train/ valid/ of frames without any annotation: an error, not classes 'train' and
    'valid' of whole frames."""
    for split in ("train", "valid"):
        for k in range(2):
            _frame(tmp_path / "d" / split / f"{k}.jpg", k)
    with pytest.raises(InputError, match=r"d: its folders \['train', 'valid'\] are split names"):
        TASK.read(tmp_path / "d", NO_QC)


def _crops(folder: Path, n: int = 3, size: int = 24) -> None:
    for i in range(n):
        _frame_sized(folder / f"c{i}.png", size, i)


def _frame_sized(path: Path, size: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(path)


def test_class_folders_with_images_in_sub_folders_are_detected(tmp_path):
    for cls in ("A", "B"):
        for donor in ("donor1", "donor2"):
            _crops(tmp_path / "sub" / cls / donor)
    assert detect_task(tmp_path / "sub") == "celltype"
    items = TASK.read(tmp_path / "sub", ReadOptions())
    assert set(items.table["label"]) == {"A", "B"} and len(items) == 12


def test_a_folder_of_crops_without_classes_is_detected(tmp_path):
    _crops(tmp_path / "unl")
    assert detect_task(tmp_path / "unl") == "celltype"


def test_a_folder_of_frames_is_not_taken_for_crops(tmp_path):
    """Large images in a folder are a movie's frames (mixture or cellness, with --task) or
    smears without labels: the task is asked for, and the message names the three."""
    for t in range(3):
        _frame_sized(tmp_path / "movie" / f"t{t}.tif", 512, t)
    assert detect_task(tmp_path / "movie") is None
    message = unknown_format(tmp_path / "movie")
    assert all(task in message for task in ("mixture", "cellness", "celltype"))


def test_a_folder_of_small_movies_is_not_taken_for_crops(tmp_path):
    import tifffile

    from napari_cellcurator._reader import detect_task

    for name in ("a", "b"):  # two time-lapse stacks of 96 px frames (a mixture folder)
        tifffile.imwrite(tmp_path / f"{name}.tif", np.zeros((20, 96, 96), np.uint8))
    assert detect_task(tmp_path) is None
    tifffile.imwrite(tmp_path / "c.tif", np.zeros((3, 32, 32), np.uint8))  # RGB-like: crops
    crops = tmp_path / "crops"
    crops.mkdir()
    tifffile.imwrite(crops / "c.tif", np.zeros((3, 32, 32), np.uint8))
    assert detect_task(crops) == "celltype"
