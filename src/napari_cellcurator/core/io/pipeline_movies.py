"""Movies as calcium-imaging pipelines leave them: HDF5, CaImAn ``.mmap``, Suite2p ``.bin``.

Each opener returns ``(raw, axes)`` for :class:`napari_cellcurator.core.io.movies.Movie`,
``raw`` being read lazily (an h5py dataset, a memory map), never the whole movie.

- HDF5 (``.h5``/``.hdf5``; CaImAn's motion-corrected output, Inscopix/miniscope exports): the
  3-D+ numeric dataset called ``mov``/``data``/``images``... or else the largest one.
- NWB (``.nwb`` without segmentation, as DANDI holds raw recordings): the largest
  TwoPhotonSeries / OnePhotonSeries / ImageSeries ``data``.
- CaImAn memory map (``*_d1_512_d2_512_d3_1_order_C_frames_3000_.mmap``): float32 pixels ×
  frames in the order the name says, pixels in Fortran order of (d1, d2, d3).
- Suite2p registered binary (``data.bin``, ``data_raw.bin``): int16 frames of ``Ly × Lx``
  read from the plane's ``ops.npy`` (or Suite2p 1.x's ``settings.npy``...) beside it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from napari_cellcurator.core.errors import InputError

#: dataset names movies go by in HDF5 files (CaImAn ``mov``, Suite2p/h5py ``data``...)
MOVIE_NAMES = ("mov", "data", "movie", "images", "imaging", "frames", "y")
_CAIMAN_NAME = re.compile(r"_d1_(\d+)_d2_(\d+)_d3_(\d+)_order_([CF])_frames_(\d+)_?\.mmap$",
                          re.IGNORECASE)


def open_pipeline_movie(path: Path, expected: str):
    """``(raw, axes)`` of a pipeline movie at ``path`` (a suffix of
    :data:`~napari_cellcurator.core.io.movies.PIPELINE_SUFFIXES`)."""
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return open_hdf5_movie(path, expected)
    if suffix == ".nwb":
        return open_nwb_movie(path)
    if suffix == ".mmap":
        return open_caiman_mmap(path, expected)
    return open_suite2p_binary(path, expected)


def _stacks(fh, h5py) -> list:
    """The numeric datasets of ≥ 3 dimensions in an open HDF5 file (movie candidates)."""
    found: list = []

    def collect(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.ndim >= 3 and obj.dtype.kind in "uifb":
            found.append(obj)

    fh.visititems(collect)
    return found


def holds_hdf5_movie(path: Path) -> bool:
    """Whether an HDF5 file holds a movie (a numeric dataset of ≥ 3 dimensions); an
    unreadable one raises :class:`InputError`."""
    from napari_cellcurator.core.io.hdf5 import import_h5py, open_hdf5

    h5py = import_h5py()
    with open_hdf5(path, "HDF5") as fh:
        return bool(_stacks(fh, h5py))


def open_hdf5_movie(path: Path, expected: str):
    """The movie dataset of an HDF5 file, as an h5py dataset (the file stays open with it)."""
    from napari_cellcurator.core.io.hdf5 import import_h5py, open_hdf5

    h5py = import_h5py()
    fh = open_hdf5(path, "HDF5")
    found = _stacks(fh, h5py)
    if not found:
        fh.close()
        raise InputError(path, "holds no numeric dataset of 3 or more dimensions", expected)
    named = [d for d in found if d.name.rsplit("/", 1)[-1].lower() in MOVIE_NAMES]
    dataset = max(named or found, key=lambda d: d.size)
    from napari_cellcurator.core.io.movies import guess_axes

    return dataset, guess_axes(dataset.shape, path)


def open_nwb_movie(path: Path):
    """The raw movie of an NWB file: its largest TwoPhotonSeries / OnePhotonSeries /
    ImageSeries ``data``, frames first (NWB orders the frame axes x, y: the frames may come
    out transposed, which candidate finding and tiling do not mind)."""
    from napari_cellcurator.core.io.hdf5 import open_hdf5
    from napari_cellcurator.core.io.nwb import movie_dataset

    fh = open_hdf5(path, "NWB (HDF5)", extra="nwb")
    try:
        data = movie_dataset(fh, path)
    except InputError:
        fh.close()
        raise
    return data, "tyx" if data.ndim == 3 else "tyxz"


def open_caiman_mmap(path: Path, expected: str):
    """A CaImAn memory-mapped movie as a (T, Z, Y, X) strided view of the file."""
    match = _CAIMAN_NAME.search(path.name)
    if match is None:
        raise InputError(path, "is a .mmap whose name does not give its shape", "CaImAn's "
                         "name pattern ..._d1_<rows>_d2_<cols>_d3_<planes>_order_<C|F>_frames_"
                         "<T>_.mmap")
    d1, d2, d3, order, frames = (int(g) if g.isdigit() else g.upper() for g in match.groups())
    pixels = d1 * d2 * d3
    flat = np.memmap(path, dtype=np.float32, mode="r")
    if flat.size != pixels * frames:
        raise InputError(path, f"holds {flat.size:,} float32 values; its name says "
                         f"{d1}×{d2}×{d3} pixels × {frames} frames = {pixels * frames:,}",
                         expected)
    item = flat.itemsize
    # pixel p = row + col·d1 + plane·d1·d2 (Fortran order); value (p, t) at p + t·pixels
    # for order F, at p·frames + t for order C
    pixel, frame = (item, pixels * item) if order == "F" else (frames * item, item)
    strides = (frame, d1 * d2 * pixel, pixel, d1 * pixel)
    view = np.lib.stride_tricks.as_strided(flat, shape=(frames, d3, d1, d2), strides=strides,
                                           writeable=False)
    return view, "tzyx"


def open_suite2p_binary(path: Path, expected: str):
    """Suite2p's int16 ``data.bin`` (T, Ly, Lx), its frame size from the plane's ops."""
    from napari_cellcurator.core.io.suite2p import plane_ops

    ops = plane_ops(path.parent)
    try:
        ly, lx = int(ops["Ly"]), int(ops["Lx"])
    except (KeyError, TypeError, ValueError):
        raise InputError(path, "has no ops.npy (or settings.npy) beside it giving Ly and Lx",
                         "a Suite2p plane folder's data.bin with its ops.npy") from None
    flat = np.memmap(path, dtype=np.int16, mode="r")
    if ly * lx == 0 or flat.size % (ly * lx):
        raise InputError(path, f"holds {flat.size:,} int16 values, not whole frames of "
                         f"{ly}×{lx} (Ly×Lx of its ops)", expected)
    return flat.reshape(-1, ly, lx), "tyx"
