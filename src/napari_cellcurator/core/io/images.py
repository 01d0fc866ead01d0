"""Reading single images (TIFF, PNG, JPEG) as channel-first float arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_cellcurator.core.errors import InputError

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
        raise InputError(path, f"cannot be read as an image ({type(exc).__name__}: {exc})") from None
    arr = np.asarray(arr)
    if arr.dtype.kind not in "uif" or arr.size == 0:
        raise InputError(path, f"has unsupported pixel type {arr.dtype} or no pixels")
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim == 3:
        if arr.shape[-1] <= 4 and arr.shape[0] > 4:
            return np.moveaxis(arr, -1, 0)
        return arr
    raise InputError(path, f"has shape {arr.shape}", "a 2-D image or a 3-D multichannel image")
