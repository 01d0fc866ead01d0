"""CaImAn results HDF5 (``cnm.save(...)``) → :class:`RoiSet`.

CaImAn stores the sparse footprint matrix ``estimates/A`` (pixels × components, CSC, pixels in
Fortran order of ``dims``) as a group with ``data``, ``indices``, ``indptr`` and ``shape``;
``estimates/C`` (components × frames), optional ``estimates/YrA`` residuals, ``dims`` and the
accepted / rejected indices ``estimates/idx_components`` / ``idx_components_bad`` (the string
``'NoneType'`` when unset).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.hdf5 import open_hdf5
from napari_cellcurator.core.io.rois import RoiSet

SUFFIXES = (".hdf5", ".h5")


def _dataset(group, key: str):
    """Array at ``key`` or None when absent or CaImAn's 'NoneType' placeholder."""
    if key not in group:
        return None
    value = group[key][()]
    if isinstance(value, bytes | str):
        return None
    if isinstance(value, np.ndarray) and value.dtype.kind in "SOU":
        return None
    return np.asarray(value)


def _dims(fh, est, path: Path) -> tuple[int, int]:
    """Frame (height, width): ``dims`` at the root, in ``estimates``, in ``params/data``
    (CaImAn keeps copies in all three), else the shape of the ``Cn`` image."""
    for group, key in ((fh, "dims"), (est, "dims"), (fh.get("params/data"), "dims")):
        dims = _dataset(group, key) if group is not None else None
        if dims is not None:
            break
    if dims is None:
        cn = _dataset(est, "Cn")
        dims = np.asarray(cn.shape) if cn is not None and cn.ndim == 2 else None
    if dims is None:
        raise InputError(path, "has no 'dims' (frame height and width)",
                         "dims = (height, width) as CaImAn saves it")
    dims = np.asarray(dims).ravel()
    if len(dims) == 3:
        raise InputError(path, f"holds 3-D (volumetric) results, dims {tuple(dims)}",
                         "2-D CaImAn results, one plane per file")
    if len(dims) != 2:
        raise InputError(path, f"has dims {tuple(dims)}", "dims = (height, width)")
    return int(dims[0]), int(dims[1])


def _footprints(a_group, dims: tuple[int, int], path: Path) -> list[tuple]:
    if not hasattr(a_group, "keys"):  # A saved dense (pixels × components)
        return _dense_footprints(a_group, dims, path)
    try:
        data = np.asarray(a_group["data"][()], np.float32)
        indices = np.asarray(a_group["indices"][()], np.int64)
        indptr = np.asarray(a_group["indptr"][()], np.int64)
        shape = tuple(int(v) for v in a_group["shape"][()])
    except KeyError as exc:
        raise InputError(path, f"estimates/A lacks {exc}", "data/indices/indptr/shape") from None
    if shape[0] != dims[0] * dims[1] or len(indptr) != shape[1] + 1:
        raise InputError(path, f"estimates/A shape {shape} does not fit dims {dims}")
    fps = []
    for k in range(shape[1]):
        rows = indices[indptr[k]:indptr[k + 1]]
        vals = data[indptr[k]:indptr[k + 1]]
        keep = vals > 0
        ypix, xpix = np.unravel_index(rows[keep], dims, order="F")  # CaImAn reshapes order='F'
        fps.append((ypix.astype(np.int64), xpix.astype(np.int64), vals[keep]))
    return fps


def _dense_footprints(dataset, dims: tuple[int, int], path: Path) -> list[tuple]:
    a = _dataset(dataset.parent, dataset.name.rsplit("/", 1)[-1])
    if a is None or a.ndim != 2 or a.shape[0] != dims[0] * dims[1]:
        raise InputError(path, f"estimates/A has shape {None if a is None else a.shape}, which "
                         f"does not fit dims {dims}", "(height × width, n_components)")
    fps = []
    for k in range(a.shape[1]):
        rows = np.flatnonzero(a[:, k] > 0)
        ypix, xpix = np.unravel_index(rows, dims, order="F")
        fps.append((ypix.astype(np.int64), xpix.astype(np.int64),
                    a[rows, k].astype(np.float32)))
    return fps


def is_caiman_results(path: Path) -> bool:
    """Whether the HDF5 file at ``path`` holds CaImAn results (an ``estimates`` group), not
    a movie (CaImAn's motion-corrected ``.h5``, say)."""
    with open_hdf5(Path(path), "HDF5") as fh:
        return "estimates" in fh


def caiman_geometry(path: Path) -> np.ndarray:
    """``(N, 3)`` centroid y, x and pixel count of every component of ``estimates/A``, as
    the reader places them (the items' ``y``, ``x``, ``npix``)."""
    from napari_cellcurator.core.data.roi_images import footprint_geometry

    with open_hdf5(Path(path), "HDF5 (CaImAn results)") as fh:
        if "estimates" not in fh or "A" not in fh["estimates"]:
            raise InputError(path, "has no estimates/A", "a CaImAn results file")
        est = fh["estimates"]
        fps = _footprints(est["A"], _dims(fh, est, Path(path)), Path(path))
    return footprint_geometry(fps)


def read_caiman(path: Path, extra: dict | None = None) -> RoiSet:
    """Read a CaImAn results file; labels from idx_components (cell) / _bad (not_cell)."""
    path = Path(path)
    with open_hdf5(path, "HDF5 (CaImAn results)") as fh:
        if "estimates" not in fh or "A" not in fh["estimates"] or "C" not in fh["estimates"]:
            raise InputError(path, "has no estimates/A and estimates/C", "a CaImAn results file")
        est = fh["estimates"]
        dims = _dims(fh, est, path)
        fps = _footprints(est["A"], dims, path)
        c = _dataset(est, "C")
        if c is None:
            raise InputError(path, "has no traces: estimates/C is empty ('NoneType')",
                             "results saved after CNMF fitting (cnm.fit, then cnm.save)")
        if c.ndim != 2 or c.shape[0] != len(fps):
            raise InputError(path, f"estimates/C has shape {c.shape} for "
                             f"{len(fps)} footprints", "(n_components, n_frames)")
        yra = _dataset(est, "YrA")
        traces = c + yra if yra is not None and yra.shape == c.shape else c
        good, bad = _dataset(est, "idx_components"), _dataset(est, "idx_components_bad")
        mean = _dataset(est, "Cn")
    n = len(fps)
    labels = None
    if good is not None or bad is not None:
        labels = [None] * n
        for idx, name in ((good, "cell"), (bad, "not_cell")):
            for i in np.asarray(idx if idx is not None else [], np.int64).ravel():
                if not 0 <= i < n:
                    raise InputError(path, f"component index {i} out of range 0..{n - 1}")
                labels[i] = name
    if mean is not None and mean.shape != dims:
        mean = None
    return RoiSet(fps, traces.astype(np.float32), dims, path, "caiman", labels=labels,
                  mean_image=None if mean is None else mean.astype(np.float32))
