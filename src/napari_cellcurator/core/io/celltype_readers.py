"""Readers for the celltype task: folders of class folders, full frames + point labels."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.io.images import IMAGE_SUFFIXES, read_image_chw
from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.io.names import readable
from napari_cellcurator.core.tasks.base import ReadOptions

DEFAULT_CROP = 48


def read_celltype_path(path: Path, options: ReadOptions) -> ItemSet:
    """Detect the layout of ``path`` and read it."""
    from napari_cellcurator.core.io.points import is_points_folder, read_points_folder

    path = Path(path)
    if is_points_folder(path):
        return read_points_folder(path, options)
    if path.is_dir() and any(p.is_dir() for p in path.iterdir()):
        return read_class_folders(path, options)
    raise InputError(path, "is not a recognised cell-type data layout",
                     "a folder of class folders <class>/*.tif|png|jpg, or images/ + "
                     "labels/<stem>.txt ('x y class' lines)")


def select_channels(arr: np.ndarray, channels: list[int] | None, path: Path) -> np.ndarray:
    """Keep ``channels`` of a (C, H, W) image, with a clear error when one is missing."""
    if channels is None:
        return arr
    bad = [c for c in channels if c >= arr.shape[0] or c < -arr.shape[0]]
    if bad:
        raise InputError(path, f"has {arr.shape[0]} channels; channels {bad} do not exist")
    return arr[channels]


def resize_chw(arr: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a (C, H, W) image to (C, size, size)."""
    if arr.shape[1:] == (size, size):
        return arr.astype(np.float32)
    from skimage.transform import resize

    return resize(arr.astype(np.float32), (arr.shape[0], size, size), order=1,
                  preserve_range=True, anti_aliasing=True).astype(np.float32)


def read_class_folders(root: Path, options: ReadOptions) -> ItemSet:
    """``root/<class>/*.tif|png|jpg`` → crops of one size, label = folder name."""
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files, labels, empty = [], [], []
    for d in class_dirs:
        found = sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        files += found
        labels += [d.name] * len(found)
        if not found:
            empty.append(d)
    if empty and files:  # a class without examples cannot be learnt: say so, read the rest
        warnings.warn(f"{readable(root)}: class folders without images are ignored: "
                      f"{[readable(d.name) for d in empty]}", InputWarning, stacklevel=2)
        class_dirs = [d for d in class_dirs if d not in empty]
    if not files:
        raise InputError(root, "contains no images in its class folders",
                         "<class>/*.tif|png|jpg")
    size = options.crop_size
    crops = []
    for f in files:
        arr = select_channels(read_image_chw(f), options.channels, f)
        if size is None:
            size = arr.shape[1] if arr.shape[1] == arr.shape[2] else DEFAULT_CROP
        crops.append(resize_chw(arr, size))
    n_ch = {c.shape[0] for c in crops}
    if len(n_ch) > 1:
        raise InputError(root, f"images have different channel counts {sorted(n_ch)}")
    # file names that are not UTF-8 (bytes on Linux) become \xNN text, see names.readable
    table = pd.DataFrame({
        "item_id": [readable(f"{lab}/{f.name}") for lab, f in zip(labels, files, strict=True)],
        "source": [readable(f) for f in files],
        "label": [readable(lab) for lab in labels],
    })
    crops = np.stack(crops)
    from napari_cellcurator.core.data.quality import apply_qc, crop_quality

    for col, values in crop_quality(crops, np.zeros(len(crops))).items():
        table[col] = values
    items = ItemSet(table, {"image": crops},
                    {"path": str(root), "classes": [readable(d.name) for d in class_dirs]})
    # pre-cut crops (imaging flow cytometry): QC counts only by default; dropping would
    # remove real, merely dim cells (extra {"qc": true} or a QCOptions dict turns it on)
    return apply_qc(items, options.extra.get("qc", False))


def __getattr__(name: str):
    # the GUI calls these through this module; they live in io/points.py
    if name in ("items_from_points", "items_from_labels_layer"):
        from napari_cellcurator.core.io import points

        return getattr(points, name)
    raise AttributeError(name)
