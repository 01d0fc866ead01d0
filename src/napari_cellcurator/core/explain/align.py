"""Placing an explanation map over its item's pixels in the full frame (pure functions).

Convention (napari's): a layer with ``scale`` s and ``translate`` t puts the *centre* of data
pixel ``i`` at world ``t + i * s``; the pixel covers ``[t + (i - ½) s, t + (i + ½) s]``.
A crop of ``crop_h × crop_w`` source pixels starting at source pixel ``(y0, x0)`` (negative or
past the frame when the crop was padded at the border) is resized to the model input and the
map has the model input's shape, so one map pixel covers ``crop_h / map_h`` source pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _last2(values: Sequence[float] | None, default: float) -> tuple[float, float]:
    if values is None:
        return (default, default)
    v = [float(a) for a in values]
    if len(v) < 2:
        raise ValueError(f"need at least 2 values (y, x), got {values!r}")
    return (v[-2], v[-1])


def map_scale_translate(y0: float, x0: float, crop_shape: Sequence[int],
                        map_shape: Sequence[int], layer_scale: Sequence[float] | None = None,
                        layer_translate: Sequence[float] | None = None
                        ) -> tuple[tuple[float, float], tuple[float, float]]:
    """``scale`` and ``translate`` of a 2-D napari image layer showing the map over the crop.

    Parameters
    ----------
    y0, x0
        Source-pixel index of the crop's top-left pixel (may be negative at the frame edge).
    crop_shape
        ``(crop_h, crop_w)`` in source pixels (before any resize to the model input).
    map_shape
        Shape of the map; its last two axes are (H, W).
    layer_scale, layer_translate
        The source image layer's ``scale`` / ``translate``; their last two entries (y, x) are
        used, so a (T, Y, X) or (C, Y, X) layer works. Default 1 and 0.

    Returns
    -------
    scale, translate
        Two (y, x) tuples for the map layer.
    """
    sy, sx = _last2(layer_scale, 1.0)
    ty, tx = _last2(layer_translate, 0.0)
    ch, cw = int(crop_shape[-2]), int(crop_shape[-1])
    mh, mw = int(map_shape[-2]), int(map_shape[-1])
    fy, fx = ch / mh, cw / mw  # source pixels per map pixel
    # map pixel 0's left edge = the crop's left edge = source pixel y0's left edge (y0 - ½)
    scale = (sy * fy, sx * fx)
    translate = (ty + sy * (y0 - 0.5 + 0.5 * fy), tx + sx * (x0 - 0.5 + 0.5 * fx))
    return scale, translate


def world_bbox(shape: Sequence[int], scale: Sequence[float], translate: Sequence[float]
               ) -> np.ndarray:
    """World extent ``[[y_min, x_min], [y_max, x_max]]`` of the pixels of a 2-D layer."""
    s = np.asarray(_last2(scale, 1.0))
    t = np.asarray(_last2(translate, 0.0))
    n = np.asarray([shape[-2], shape[-1]], dtype=float)
    return np.stack([t - 0.5 * s, t + (n - 0.5) * s])


def clip_to_frame(map_: np.ndarray, y0: int, x0: int, crop_shape: Sequence[int],
                  frame_shape: Sequence[int]) -> tuple[np.ndarray, int, int, tuple[int, int]]:
    """Drop the part of a map that lies on padding outside the frame.

    Only exact when the map has the crop's size (no resize); otherwise the map is first
    cut in map pixels that overlap the frame, which may keep a partial pixel.

    Returns
    -------
    map, y0, x0, crop_shape
        The kept map and the placement of what it covers, ready for
        :func:`map_scale_translate`.
    """
    ch, cw = int(crop_shape[-2]), int(crop_shape[-1])
    mh, mw = map_.shape[-2], map_.shape[-1]
    fh, fw = int(frame_shape[-2]), int(frame_shape[-1])
    top, left = max(0, -y0), max(0, -x0)
    bottom, right = max(0, y0 + ch - fh), max(0, x0 + cw - fw)
    r0 = int(np.floor(top * mh / ch))
    r1 = int(np.ceil((ch - bottom) * mh / ch))
    c0 = int(np.floor(left * mw / cw))
    c1 = int(np.ceil((cw - right) * mw / cw))
    kept = map_[..., r0:r1, c0:c1]
    ny0 = y0 + r0 * ch / mh
    nx0 = x0 + c0 * cw / mw
    new_crop = (int(round((r1 - r0) * ch / mh)), int(round((c1 - c0) * cw / mw)))
    return kept, int(round(ny0)), int(round(nx0)), new_crop


__all__ = ["clip_to_frame", "map_scale_translate", "world_bbox"]
