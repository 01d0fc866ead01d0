"""Opening HDF5 files (CaImAn results, NWB, movies, crops) with h5py, an optional dependency."""

from __future__ import annotations

from pathlib import Path

from napari_cellcurator.core.errors import InputError


def import_h5py(extra: str = "caiman"):
    """h5py, with an install hint (the package extra ``extra`` brings it) when it is missing."""
    try:
        import h5py
    except ImportError:
        raise InputError(None, "reading HDF5 files (CaImAn, NWB, .h5 movies or crops) needs "
                         "h5py",
                         f"`pip install napari-cellcurator[{extra}]` or `pip install h5py`"
                         ) from None
    return h5py


def open_hdf5(path: Path, kind: str, extra: str = "caiman"):
    """``h5py.File(path, "r")``, or one :class:`InputError` naming the file as a ``kind``."""
    h5py = import_h5py(extra)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise InputError(path, f"is not a readable {kind} file ({exc})") from None
