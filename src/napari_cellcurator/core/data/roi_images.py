"""ROI footprints → fixed-size patches centred on the ROI (the image input of cellness models).

Channels every format can provide (Suite2p ``lam``, CaImAn ``A``, Allen ``coo_data``, PCA/ICA
filters): 0 = footprint weights scaled to max 1, 1 = binary mask. Optional context channels
(e.g. the mean image) are cut at the same centre and scaled per patch.
"""

from __future__ import annotations

import numpy as np

#: Default patch side (native pixels: the ROI is not rescaled, its size is informative).
DEFAULT_PATCH = 32
FOOTPRINT_CHANNELS = ("footprint", "mask")


def roi_centre(ypix: np.ndarray, xpix: np.ndarray, lam: np.ndarray | None = None
               ) -> tuple[float, float]:
    """Weighted centroid (y, x) of a footprint (unweighted if weights are absent or zero)."""
    ypix = np.asarray(ypix, dtype=np.float64)
    xpix = np.asarray(xpix, dtype=np.float64)
    if len(ypix) == 0:
        return float("nan"), float("nan")
    w = np.ones_like(ypix) if lam is None else np.clip(np.asarray(lam, dtype=np.float64), 0, None)
    if w.sum() <= 0 or not np.isfinite(w).all():
        w = np.ones_like(ypix)
    return float((ypix * w).sum() / w.sum()), float((xpix * w).sum() / w.sum())


def footprint_geometry(footprints: list[tuple]) -> np.ndarray:
    """``(N, 3)`` centroid y, x (:func:`roi_centre`) and pixel count of each footprint — the
    ``y``, ``x``, ``npix`` of ROI items, which labels' anchors are compared with."""
    return np.array([[*roi_centre(*fp), len(fp[0])] for fp in footprints],
                    dtype=float).reshape(-1, 3)


def footprint_patch(ypix: np.ndarray, xpix: np.ndarray, lam: np.ndarray | None,
                    size: int = DEFAULT_PATCH, centre: tuple[float, float] | None = None
                    ) -> np.ndarray:
    """A (2, size, size) float32 patch: scaled footprint weights and binary mask.

    Pixels of the footprint outside the patch are dropped (large ROIs are cut, not shrunk).
    """
    out = np.zeros((2, size, size), dtype=np.float32)
    ypix = np.asarray(ypix, dtype=np.int64)
    xpix = np.asarray(xpix, dtype=np.int64)
    if len(ypix) == 0:
        return out
    lam = np.ones(len(ypix)) if lam is None else np.nan_to_num(np.asarray(lam, np.float64))
    cy, cx = centre if centre is not None else roi_centre(ypix, xpix, lam)
    oy, ox = int(round(cy)) - size // 2, int(round(cx)) - size // 2
    py, px = ypix - oy, xpix - ox
    keep = (py >= 0) & (py < size) & (px >= 0) & (px < size)
    peak = np.abs(lam).max()
    weights = lam / peak if peak > 0 else np.ones_like(lam)
    np.maximum.at(out[0], (py[keep], px[keep]), weights[keep].astype(np.float32))
    out[1, py[keep], px[keep]] = 1.0
    return out


def context_patch(image: np.ndarray | None, centre: tuple[float, float],
                  size: int = DEFAULT_PATCH) -> np.ndarray:
    """A (size, size) crop of ``image`` at ``centre``, zero outside, scaled to zero mean, unit
    std within the patch (zeros if ``image`` is None: a format without that context)."""
    out = np.zeros((size, size), dtype=np.float32)
    if image is None:
        return out
    cy, cx = centre
    oy, ox = int(round(cy)) - size // 2, int(round(cx)) - size // 2
    y0, x0 = max(oy, 0), max(ox, 0)
    y1, x1 = min(oy + size, image.shape[0]), min(ox + size, image.shape[1])
    if y1 <= y0 or x1 <= x0:
        return out
    crop = np.nan_to_num(np.asarray(image[y0:y1, x0:x1], dtype=np.float32))
    out[y0 - oy:y1 - oy, x0 - ox:x1 - ox] = crop
    std = crop.std()
    out[y0 - oy:y1 - oy, x0 - ox:x1 - ox] = (crop - crop.mean()) / (std if std > 0 else 1.0)
    return out


def roi_patches(footprints: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
                size: int = DEFAULT_PATCH, context: list[np.ndarray | None] | None = None
                ) -> np.ndarray:
    """Stack patches of many footprints → (N, 2 + len(context), size, size) float32.

    Parameters
    ----------
    footprints
        ``(ypix, xpix, lam)`` per ROI in field-of-view coordinates.
    size
        Patch side in pixels.
    context
        Optional full-frame images (e.g. mean image) added as extra channels.
    """
    context = context or []
    out = np.zeros((len(footprints), 2 + len(context), size, size), dtype=np.float32)
    for i, (ypix, xpix, lam) in enumerate(footprints):
        centre = roi_centre(ypix, xpix, lam)
        if not np.isfinite(centre[0]):
            continue
        out[i, :2] = footprint_patch(ypix, xpix, lam, size, centre)
        for c, img in enumerate(context):
            out[i, 2 + c] = context_patch(img, centre, size)
    return out
