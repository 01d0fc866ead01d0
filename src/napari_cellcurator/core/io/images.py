"""Reading single images (TIFF, PNG, JPEG) as channel-first float arrays."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.io.names import readable

IMAGE_SUFFIXES = {".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp"}


def read_image_chw(path: str | Path) -> np.ndarray:
    """Read an image file as ``(C, H, W)``.

    TIFFs may be ``(C, H, W)``, ``(H, W, C)`` (C ≤ 4, last axis) or ``(H, W)``; RGB(A) files become
    3 (4) channels. Raises :class:`InputError` naming the file when it cannot be decoded.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            arr = tifffile.imread(path)
        else:
            from PIL import Image

            with Image.open(path) as im:
                arr = np.asarray(im)
    except Exception as exc:  # decoders raise many unrelated types on corrupt files
        raise InputError(path, f"cannot be read as an image ({type(exc).__name__}: {exc})",
                         "a TIFF, PNG or JPEG image") from None
    arr = np.asarray(arr)
    if arr.size == 0:  # tifffile returns an empty array for some corrupt files
        raise InputError(path, "has no pixels (empty or corrupt image file)",
                         "a TIFF, PNG or JPEG image")
    if arr.dtype.kind not in "uif":
        raise InputError(path, f"has unsupported pixel type {arr.dtype}",
                         "integer or floating-point pixels")
    arr = _finite(arr, path)
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim == 3:
        if arr.shape[-1] <= 4 and arr.shape[0] > 4:
            return np.moveaxis(arr, -1, 0)
        return arr
    raise InputError(path, f"has shape {arr.shape}", "a 2-D image or a 3-D multichannel image")


def _finite(arr: np.ndarray, path: Path) -> np.ndarray:
    """NaN pixels (masked regions of float TIFFs) → 0 and ±inf → the finite extremes, with a
    warning: one such image must not turn every training loss into NaN."""
    if arr.dtype.kind != "f":
        return arr
    bad = ~np.isfinite(arr)
    if not bad.any():
        return arr
    finite = arr[~bad]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    warnings.warn(f"{readable(path)}: {int(bad.sum())} NaN/inf pixels replaced "
                  "(NaN by 0, inf by the image's finite extremes)", InputWarning, stacklevel=3)
    return np.nan_to_num(arr, nan=0.0, posinf=hi, neginf=lo)
