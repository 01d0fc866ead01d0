"""Writing explanation maps (``.npy``, ``.tif``, ``.zarr``) without partial files, and the
placement of an item in its source frame."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.metrics import jsonable as _jsonable
from napari_cellcurator.core.store.atomic import atomic_write, replace_dir

SUFFIXES = (".npy", ".tif", ".tiff", ".zarr")


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(path, f"unsupported output suffix {suffix or '(none)'!r}",
                         "a .npy, .tif or .zarr file name")
    return suffix


def write_map(path: str | Path, array: np.ndarray, attrs: dict | None = None) -> Path:
    """Write one map by suffix; a crash leaves the old file or the new one, never a part."""
    path = Path(path)
    suffix = _suffix(path)
    array = np.ascontiguousarray(array, dtype=np.float32)
    attrs = _jsonable(attrs or {})
    if suffix == ".npy":
        def write(p: Path) -> None:
            with open(p, "wb") as fh:  # a file handle: np.save(path) would append ".npy"
                np.save(fh, array)
        return atomic_write(path, write)
    if suffix in (".tif", ".tiff"):
        import tifffile

        return atomic_write(path, lambda p: tifffile.imwrite(
            p, array, description=json.dumps(attrs), metadata=None))
    return write_maps_zarr(path, 1, iter([array]), lambda: attrs, squeeze=True)


def write_maps_zarr(path: str | Path, n: int, maps: Iterator[np.ndarray],
                    attrs: Callable[[], dict], squeeze: bool = False) -> Path:
    """Write ``n`` maps of one shape into a zarr array ``(n, *shape)`` built in a hidden
    sibling folder and renamed into place when complete (``squeeze``: one map, no item axis).
    """
    import zarr

    path = Path(path)
    if path.suffix.lower() != ".zarr":
        raise InputError(path, "is not a .zarr path", "a folder name ending in .zarr")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        arr = None
        for i, m in enumerate(maps):
            m = np.asarray(m, dtype=np.float32)
            if arr is None:
                shape = m.shape if squeeze else (n, *m.shape)
                chunks = shape if squeeze else (1, *m.shape)
                arr = zarr.open_array(store=str(tmp / "data"), mode="w", shape=shape,
                                      chunks=chunks, dtype="float32")
            if m.shape != arr.shape[-m.ndim:]:
                raise InputError(path, f"map {i} has shape {m.shape}, the first had "
                                       f"{arr.shape[-m.ndim:]}")
            if squeeze:
                arr[...] = m
            else:
                arr[i] = m
        if arr is None:
            raise InputError(path, "no maps to write")
        arr.attrs.update(_jsonable(attrs()))
        replace_dir(tmp / "data", path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path



def item_placement(row, map_shape, prep: dict) -> dict[str, Any]:
    """Where an item sits in its source frame, from the columns its reader recorded.

    Recognised columns: ``y0``/``x0`` (crop origin) or ``y``/``x`` (centre; origin =
    round(centre) - size // 2), ``crop_h``/``crop_w`` or ``crop_size`` / ``size`` (the crop's
    side in frame pixels, as resized crops and mixture tiles record it; else the training
    crop size, else the map's shape), plus ``source`` and a frame index ``frame``/``t``/``t0``.
    Missing columns are simply absent from the result (class-folder crops have none).
    """
    get = row.get if hasattr(row, "get") else (lambda k, d=None: d)
    out: dict[str, Any] = {"map_shape": [int(s) for s in map_shape]}
    if get("source") is not None:
        out["source"] = str(get("source"))
    for key in ("frame", "t", "t0"):
        if _present(get(key)):
            out["frame"] = int(get(key))
            break
    size = next((get(k) for k in ("crop_size", "size") if _present(get(k))), None) or (
        prep.get("read_options", {}).get("crop_size") or map_shape[-1])
    ch = int(get("crop_h")) if _present(get("crop_h")) else int(size)
    cw = int(get("crop_w")) if _present(get("crop_w")) else int(size)
    if _present(get("y0")) and _present(get("x0")):
        y0, x0 = int(get("y0")), int(get("x0"))
    elif _present(get("y")) and _present(get("x")):
        y0, x0 = int(round(float(get("y")))) - ch // 2, int(round(float(get("x")))) - cw // 2
    else:
        return out
    from napari_cellcurator.core.explain.align import map_scale_translate

    scale, translate = map_scale_translate(y0, x0, (ch, cw), map_shape)
    out.update(y0=y0, x0=x0, crop_shape=[ch, cw], scale=list(scale), translate=list(translate))
    return out


def _present(value) -> bool:
    if value is None:
        return False
    try:
        return not np.isnan(float(value))
    except (TypeError, ValueError):
        return False
