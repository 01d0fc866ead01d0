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

#: largest model input side read from crop folders: bigger crops are shrunk (a stride-2 stem
#: then works at 32 px, which keeps default training within minutes on a CPU)
MAX_INPUT = 64


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


def crops_of_one_size(raw: list[np.ndarray], options: ReadOptions
                      ) -> tuple[np.ndarray, dict]:
    """Bring ``(C, H, W)`` crops to one square input side; also return the settings used.

    Crops of one square size keep it (shrunk to :data:`MAX_INPUT` if larger). Crops of varying
    size (e.g. RGB JPEG crops cut around cells) are all scaled by ONE factor and centred on a
    square canvas padded with their border colour: cell size and aspect ratio, which are class
    cues (macrocytes, ovalocytes), survive; stretching each crop to the canvas would erase
    them. The settings are recorded in the model so new data are read the same way.
    """
    extra = options.extra or {}
    sides = np.array([c.shape[1:] for c in raw])
    same = len(np.unique(sides, axis=0)) == 1 and sides[0, 0] == sides[0, 1]
    # an explicit crop size without a fit is a model saved before fits existed: it resized
    fit = extra.get("fit") or ("resize" if same or options.crop_size else "canvas")
    if fit == "resize":
        size = int(options.crop_size or min(int(sides[0].max()), MAX_INPUT))
        return np.stack([resize_chw(c, size) for c in raw]), {"fit": "resize"}
    if fit != "canvas":
        raise InputError(None, f"unknown crop fit {fit!r}", "'resize' or 'canvas'")
    # the canvas holds 95 % of the crops whole; larger ones are shrunk to fit
    typical = float(np.percentile(sides.max(axis=1), 95))
    scale = float(extra.get("scale", min(1.0, MAX_INPUT / typical)))
    size = int(options.crop_size or min(MAX_INPUT, int(np.ceil(typical * scale))))
    out = np.stack([_on_canvas(c, scale, size) for c in raw])
    return out, {"fit": "canvas", "scale": round(scale, 6)}


def _on_canvas(arr: np.ndarray, scale: float, size: int) -> np.ndarray:
    """Scale a crop by ``scale`` (never beyond ``size``) and centre it on a square canvas."""
    from napari_cellcurator.core.data.crops import pad_to_square

    big = np.finfo(np.float32).max  # float64 pixels beyond float32 would become inf
    arr = np.clip(arr, -big, big) if arr.dtype == np.float64 else arr
    h, w = arr.shape[1:]
    f = min(scale, size / max(h, w))
    new_h, new_w = max(1, round(h * f)), max(1, round(w * f))
    if (new_h, new_w) != (h, w):
        from skimage.transform import resize

        arr = resize(arr.astype(np.float32), (arr.shape[0], new_h, new_w), order=1,
                     preserve_range=True, anti_aliasing=f < 1)
    square = pad_to_square(arr.astype(np.float32))
    if square.shape[1] == size:
        return square
    # pad the square to the canvas with its border colour (pad_to_square's median)
    canvas = np.empty((arr.shape[0], size, size), dtype=np.float32)
    border = np.concatenate([square[:, 0], square[:, -1], square[:, :, 0], square[:, :, -1]],
                            axis=1)
    # float64: the median averages two values, which can overflow float32 near its maximum
    canvas[:] = np.median(border.astype(np.float64), axis=1)[:, None, None]
    o = (size - square.shape[1]) // 2
    canvas[:, o:o + square.shape[1], o:o + square.shape[1]] = square
    return canvas


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
    raw = [select_channels(read_image_chw(f), options.channels, f) for f in files]
    n_ch = {c.shape[0] for c in raw}
    if len(n_ch) > 1:
        raise InputError(root, f"images have different channel counts {sorted(n_ch)}")
    crops, settings = crops_of_one_size(raw, options)
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
                    {"path": str(root), "classes": [readable(d.name) for d in class_dirs],
                     "read_settings": settings})
    # pre-cut crops (imaging flow cytometry): QC counts only by default; dropping would
    # remove real, merely dim cells (extra {"qc": true} or a QCOptions dict turns it on)
    return apply_qc(items, options.extra.get("qc", False))


def __getattr__(name: str):
    # the GUI calls these through this module; they live in io/points.py
    if name in ("items_from_points", "items_from_labels_layer"):
        from napari_cellcurator.core.io import points

        return getattr(points, name)
    raise AttributeError(name)
