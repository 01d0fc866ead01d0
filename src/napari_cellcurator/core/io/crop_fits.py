"""Crops of many sizes → one model input: the fits a celltype model records and reuses.

``pixel`` (crops of one size: the pixel scale is kept; crops of another size are
centre-cropped or padded), ``canvas`` (crops of varying size: one scale for all, centred on a
padded square) and ``resize`` (stretched; models saved before fits existed).
"""

from __future__ import annotations

import warnings

import numpy as np

from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.tasks.base import ReadOptions

#: largest model input side read from crop folders: bigger crops are shrunk (a stride-2 stem
#: then works at 32 px, which keeps default training within minutes on a CPU)
MAX_INPUT = 64


def resize_chw(arr: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a ``(C, H, W)`` image to ``(C, size, size)`` (float32)."""
    from napari_cellcurator.core.data import crops  # imports torch: not at reader import

    return crops.resize_chw(arr, size)


def crops_of_one_size(raw: list[np.ndarray], options: ReadOptions, where: str = "crops"
                      ) -> tuple[np.ndarray, dict]:
    """Bring ``(C, H, W)`` crops to one square input side; also return the settings used.

    Crops of one square size keep it (shrunk to :data:`MAX_INPUT` if larger) and record the
    ``pixel`` fit: new crops of another size (another export of the same instrument: IDEAS
    crops of 66 px for a model trained on 40 px ones) are brought to the same pixel scale and
    centre-cropped or padded, not stretched, which would change the cells' size. Crops of
    varying size (e.g. RGB JPEG crops cut around cells) are all scaled by ONE factor and
    centred on a square canvas padded with their border colour: cell size and aspect ratio,
    which are class cues (macrocytes, ovalocytes), survive; stretching each crop to the canvas
    would erase them. The settings are recorded in the model so new data are read the same way.
    ``where`` (the data path) names the crops in warnings.
    """
    extra = options.extra or {}
    sides = np.array([c.shape[1:] for c in raw])
    same = len(np.unique(sides, axis=0)) == 1 and sides[0, 0] == sides[0, 1]
    # an explicit crop size without a fit is a model saved before fits existed: it resized
    fit = extra.get("fit") or ("resize" if options.crop_size else "pixel" if same
                               else "canvas")
    if fit == "resize":
        size = int(options.crop_size or min(int(sides[0].max()), MAX_INPUT))
        return np.stack([resize_chw(c, size) for c in raw]), {"fit": "resize"}
    if fit == "pixel":
        return _at_pixel_scale(raw, options, where)
    if fit != "canvas":
        raise InputError(None, f"unknown crop fit {fit!r}", "'pixel', 'resize' or 'canvas'")
    # the canvas holds 95 % of the crops whole; larger ones are shrunk to fit
    typical = float(np.percentile(sides.max(axis=1), 95))
    scale = float(extra.get("scale", min(1.0, MAX_INPUT / typical)))
    size = int(options.crop_size or min(MAX_INPUT, int(np.ceil(typical * scale))))
    out = np.stack([_on_canvas(c, scale, size) for c in raw])
    return out, {"fit": "canvas", "scale": round(scale, 6)}


def _at_pixel_scale(raw: list[np.ndarray], options: ReadOptions, where: str
                    ) -> tuple[np.ndarray, dict]:
    """The ``pixel`` fit: crops of the recorded side are resized to the input exactly as in
    training; crops of any other size are scaled by the training crops' factor, then
    centre-cropped or padded with their border colour (the cell stays the size it was)."""
    extra = options.extra or {}
    if options.crop_size is None:  # training: the crops are all one square side
        side = int(raw[0].shape[-1])
        size = min(side, MAX_INPUT)
        scale = size / side
    else:
        size = int(options.crop_size)
        scale = float(extra.get("scale", 1.0))
        side = round(size / scale)
    out = np.empty((len(raw), raw[0].shape[0], size, size), dtype=np.float32)
    other = 0
    for i, crop in enumerate(raw):
        if crop.shape[1:] == (side, side):
            out[i] = resize_chw(crop, size)
        else:
            out[i] = centre_fit(crop, scale, size)
            other += 1
    if other:
        warnings.warn(f"{where}: {other} of {len(raw)} crops are not {side}×{side} px like the "
                      f"training crops (the model's, or the first data path's): brought "
                      f"to their pixel scale and "
                      f"centre-cropped or padded to {size} px (read option fit='resize' "
                      f"stretches them instead)", InputWarning, stacklevel=4)
    return out, {"fit": "pixel", "scale": round(scale, 6)}


def centre_fit(arr: np.ndarray, scale: float, size: int) -> np.ndarray:
    """Scale a ``(C, H, W)`` crop by ``scale``, then centre-crop or pad (with the median of
    its border) each axis to ``size``."""
    arr = _as_float32(arr)
    if scale != 1.0:
        from skimage.transform import resize

        h, w = arr.shape[1:]
        arr = resize(arr, (arr.shape[0], max(1, round(h * scale)), max(1, round(w * scale))),
                     order=1, preserve_range=True, anti_aliasing=scale < 1).astype(np.float32)
    h, w = arr.shape[1:]
    y0, x0 = max(0, (h - size) // 2), max(0, (w - size) // 2)
    arr = arr[:, y0:y0 + size, x0:x0 + size]
    if arr.shape[1:] == (size, size):
        return arr
    from napari_cellcurator.core.data.crops import pad_centred

    return pad_centred(arr, size)


def _on_canvas(arr: np.ndarray, scale: float, size: int) -> np.ndarray:
    """Scale a crop by ``scale`` (never beyond ``size``) and centre it on a square canvas."""
    from napari_cellcurator.core.data.crops import pad_centred, pad_to_square

    arr = _as_float32(arr)
    h, w = arr.shape[1:]
    f = min(scale, size / max(h, w))
    new_h, new_w = max(1, round(h * f)), max(1, round(w * f))
    if (new_h, new_w) != (h, w):
        from skimage.transform import resize

        arr = resize(arr.astype(np.float32), (arr.shape[0], new_h, new_w), order=1,
                     preserve_range=True, anti_aliasing=f < 1)
    square = pad_to_square(arr.astype(np.float32))
    return square if square.shape[1] == size else pad_centred(square, size)


def _as_float32(arr: np.ndarray) -> np.ndarray:
    big = np.finfo(np.float32).max  # float64 pixels beyond float32 would become inf
    return (np.clip(arr, -big, big) if arr.dtype == np.float64 else arr).astype(np.float32)
