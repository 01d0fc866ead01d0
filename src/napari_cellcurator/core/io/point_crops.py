"""Crops cut around points of a frame: reflect-padded at the border, their quality measured
at full resolution, resized to the model's input; and the per-frame background
normalisation of bright-field smears. Used by the points, annotation and napari-layer
readers (:mod:`.points`)."""

from __future__ import annotations

import numpy as np

from napari_cellcurator.core.data.quality import crop_quality
from napari_cellcurator.core.errors import InputError


def cut_crops(image_chw: np.ndarray, points_yx: np.ndarray, crop_size: int,
              input_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Square crops centred on points, reflect-padded at the border, optionally resized.

    Returns
    -------
    crops
        ``(N, C, S, S)`` with S = ``input_size`` or ``crop_size``; uint8 images stay uint8.
    outside
        Fraction of each crop that lay outside the image (0 = fully inside).
    """
    c, h, w = image_chw.shape
    pts = np.round(np.asarray(points_yx, dtype=np.float64).reshape(-1, 2)).astype(np.int64)
    half = crop_size // 2
    mode = "reflect" if min(h, w) > crop_size else "edge"  # reflect needs pad < image side
    padded = np.pad(image_chw, ((0, 0), (half, half), (half, half)), mode=mode)
    dtype = image_chw.dtype if image_chw.dtype == np.uint8 else np.float32
    crops = np.empty((len(pts), c, crop_size, crop_size), dtype=dtype)
    outside = np.zeros(len(pts), dtype=np.float32)
    for i, (y, x) in enumerate(pts):
        y0, x0 = int(np.clip(y, 0, h - 1)), int(np.clip(x, 0, w - 1))
        crops[i] = padded[:, y0:y0 + crop_size, x0:x0 + crop_size]
        ys, xs = np.arange(crop_size) + y - half, np.arange(crop_size) + x - half
        inside = ((ys >= 0) & (ys < h)).mean() * ((xs >= 0) & (xs < w)).mean()
        outside[i] = 1.0 - inside
    return _resized(crops, input_size or crop_size), outside


def _resized(crops: np.ndarray, size: int) -> np.ndarray:
    """``(N, C, S, S)`` crops at side ``size`` (bilinear; uint8 stays uint8)."""
    if crops.shape[-1] == size:
        return crops
    from napari_cellcurator.core.data.crops import resize_chw  # torch: not at reader import

    out = np.empty((*crops.shape[:2], size, size), dtype=crops.dtype)
    for i, crop in enumerate(crops):
        resized = resize_chw(crop, size)
        out[i] = np.round(resized) if crops.dtype == np.uint8 else resized
    return out


#: points per batch of full-resolution crops whose quality is measured before resizing
QC_BATCH = 256


def cut_crops_with_quality(image_chw: np.ndarray, points_yx: np.ndarray, crop_size: int,
                           input_size: int | None = None
                           ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """:func:`cut_crops` plus :func:`crop_quality` measured on the full-resolution crops.

    Sharpness is a property of the frame, not of the model's input: measured after
    resizing, a 32 px input called cells "defocused" that pass at 64 px (Chula RBC-12: 131
    vs 120 dropped), so the input size changed which cells were read. Crops are cut in
    batches of :data:`QC_BATCH` so the full-resolution copies stay small.
    """
    pts = np.asarray(points_yx, dtype=np.float64).reshape(-1, 2)
    size = input_size or crop_size
    crops, quality = [], []
    for start in range(0, max(len(pts), 1), QC_BATCH):
        native, outside = cut_crops(image_chw, pts[start:start + QC_BATCH], crop_size)
        quality.append(crop_quality(native, outside))
        crops.append(_resized(native, size))
    merged = {k: np.concatenate([q[k] for q in quality]) for k in quality[0]}
    return np.concatenate(crops), merged


BACKGROUND_LEVEL = 200.0  # bright-field background is scaled to this grey value (uint8 scale)


def normalise_frame(chw: np.ndarray) -> np.ndarray:
    """Scale each channel so the frame's background has the same brightness in every frame.

    Smears differ in stain and illumination from slide to slide; a model trained on some
    slides then sees a colour shift on new ones. Dividing by the per-channel median of the
    background (pixels outside the Otsu cell mask) removes that shift. Applied only to
    bright-field-like frames (bright background); fluorescence frames are returned unchanged.
    """
    from napari_cellcurator.core.data.proposals import foreground_mask

    arr = np.asarray(chw, dtype=np.float32)
    top = 255.0 if chw.dtype == np.uint8 else float(np.percentile(arr, 99.9)) or 1.0
    try:
        background = ~foreground_mask(chw)  # uint8 colour: green, as proposals
    except InputError:  # a flat frame: nothing to normalise
        return chw
    if background.sum() < 0.05 * background.size:
        return chw
    level = np.median(arr[:, background], axis=1)
    if level.min() < 0.2 * top:  # dark background (fluorescence): keep raw intensities
        return chw
    out = arr * (BACKGROUND_LEVEL * top / 255.0 / level)[:, None, None]
    if chw.dtype == np.uint8:
        return np.clip(np.round(out), 0, 255).astype(np.uint8)
    return out
