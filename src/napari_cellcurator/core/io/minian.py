"""Minian results (one-photon miniscope CNMF, Dong et al. 2022) → :class:`RoiSet`.

Minian's ``save_minian`` writes each variable as its own xarray dataset in zarr, in one
folder (``minian/``): ``A.zarr`` (footprints, dims ``unit_id × height × width``), ``C.zarr``
(denoised calcium traces, ``unit_id × frame``), and usually ``S``, ``b``, ``f``, ``b0``,
``c0`` and ``max_proj.zarr`` (the maximum projection, ``height × width``). Each store is a
zarr group holding the variable under its own name plus its coordinate arrays (``unit_id``…);
dimension names are in ``_ARRAY_DIMENSIONS`` (zarr v2) or ``dimension_names`` (zarr v3).

Traces: ``C + YrA`` when the residuals ``YrA.zarr`` lie beside (Minian saves them in its
intermediate folder), else the denoised ``C``; there is no neuropil (CNMF models the
background). Minian has no cell / not-cell labels: the units are candidates to curate.
Write-back adds ``iscell_curated.zarr`` (``unit_id``) to the folder, which Minian's
``open_minian`` merges into the dataset like any other variable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.rois import RoiSet

#: the stores a Minian results folder needs
REQUIRED = ("A.zarr", "C.zarr")
#: the variable write-back adds (a boolean per unit)
CURATED = "iscell_curated"


def minian_folder(path: Path) -> Path | None:
    """The Minian results folder ``path`` is, or one of whose stores it is (``A.zarr``)."""
    path = Path(path)
    for folder in (path, path.parent):
        if folder.is_dir() and all((folder / name).is_dir() for name in REQUIRED):
            return folder
    return None


def _variable(folder: Path, name: str, dims: tuple[str, ...], required: bool = True):
    """``(values, unit ids or None)`` of variable ``name``, axes ordered as ``dims``."""
    import zarr

    store = folder / f"{name}.zarr"
    if not store.is_dir():
        if required:
            raise InputError(folder, f"has no {name}.zarr", "Minian results (A.zarr, C.zarr)")
        return None, None
    try:
        group = zarr.open_group(str(store), mode="r")
        array = group[name]
        names = tuple(getattr(array.metadata, "dimension_names", None)
                      or array.attrs.get("_ARRAY_DIMENSIONS") or ())
        if sorted(names) != sorted(dims):
            raise InputError(store, f"variable {name} has dimensions {names or 'unnamed'}",
                             f"dimensions {dims} as Minian writes them")
        values = np.transpose(np.asarray(array[...]), [names.index(d) for d in dims])
        units = np.asarray(group["unit_id"][...]) if "unit_id" in dims else None
    except (KeyError, ValueError, OSError) as exc:  # not a zarr group of that variable
        raise InputError(store, f"could not be read as Minian's {name}: {exc}",
                         "a zarr store written by Minian's save_minian") from exc
    return values, units


def _aligned(values: np.ndarray, units: np.ndarray, order: np.ndarray, store: Path):
    """Rows of ``values`` in the unit order ``order``."""
    where = {int(u): i for i, u in enumerate(units)}
    missing = [int(u) for u in order if int(u) not in where]
    if missing:
        raise InputError(store, f"has no rows for units {missing[:5]}", "the units of A.zarr")
    return values[[where[int(u)] for u in order]]


def _footprints(folder: Path) -> tuple[list[tuple], np.ndarray, tuple[int, int]]:
    """``(ypix, xpix, weight)`` of every unit of ``A.zarr``, the unit ids and the frame shape."""
    footprints_3d, units = _variable(folder, "A", ("unit_id", "height", "width"))
    fps = []
    for k, image in enumerate(footprints_3d):
        ypix, xpix = np.nonzero(image > 0)
        if len(ypix) == 0:
            raise InputError(folder / "A.zarr", f"unit {int(units[k])} has an empty footprint",
                             "units with at least one pixel")
        fps.append((ypix, xpix, image[ypix, xpix].astype(np.float32)))
    return fps, units, tuple(footprints_3d.shape[1:])


def minian_geometry(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 3)`` centroid y, x and pixel count of every unit in ``A.zarr`` now (as the reader
    places them: the items' ``y``, ``x``, ``npix``) and the units' ids."""
    from napari_cellcurator.core.data.roi_images import footprint_geometry

    fps, units, _ = _footprints(Path(folder))
    return footprint_geometry(fps), np.asarray(units, np.int64)


def read_minian(path: Path, extra: dict | None = None) -> RoiSet:
    """Read a Minian results folder (or any store in it) as unlabelled ROI candidates.

    Item ids are ``<parent>/<folder>:unit<unit_id>``: labels follow a unit when others are
    dropped or merged in Minian later, and the recording's folder tells sessions apart (every
    Minian output folder is called ``minian``).
    """
    folder = minian_folder(path)
    if folder is None:
        raise InputError(path, "is not a Minian results folder", "a folder with A.zarr and "
                         "C.zarr written by Minian's save_minian")
    fps, units, shape = _footprints(folder)
    c, c_units = _variable(folder, "C", ("unit_id", "frame"))
    traces = _aligned(c, c_units, units, folder / "C.zarr").astype(np.float32)
    residuals, r_units = _variable(folder, "YrA", ("unit_id", "frame"), required=False)
    if residuals is not None and residuals.shape[1] == traces.shape[1]:
        traces = traces + _aligned(residuals, r_units, units, folder / "YrA.zarr")
    background, _ = _variable(folder, "max_proj", ("height", "width"), required=False)
    if background is not None and background.shape != shape:
        background = None
    named = folder.expanduser().resolve()  # ids the same however the path was typed
    columns = {"unit_id": units.astype(np.int64),
               "item_id": [f"{named.parent.name}/{named.name}:unit{int(u)}" for u in units]}
    return RoiSet(fps, traces, shape, folder, "minian", columns=columns,
                  mean_image=None if background is None else background.astype(np.float32),
                  meta={"n_frames": int(traces.shape[1])})


def write_minian_curated(folder: Path, unit_ids: np.ndarray, is_cell: np.ndarray) -> Path:
    """Write ``iscell_curated.zarr`` (one boolean per unit, coordinate ``unit_id``) into the
    Minian folder, as ``save_minian`` would write a variable; returns its path.

    Written to a temporary store and renamed into place, so a failure leaves any earlier
    curation intact.
    """
    import shutil

    import zarr

    from napari_cellcurator.core.store.atomic import replace_dir

    target = Path(folder) / f"{CURATED}.zarr"
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    group = zarr.open_group(str(tmp), mode="w", zarr_format=2)
    for name, values in ((CURATED, np.asarray(is_cell, bool)),
                         ("unit_id", np.asarray(unit_ids, np.int64))):
        # no fill value: xarray would read a False (the fill) as missing
        array = group.create_array(name, shape=values.shape, dtype=values.dtype,
                                   fill_value=None)
        array[...] = values
        array.attrs["_ARRAY_DIMENSIONS"] = ["unit_id"]
    zarr.consolidate_metadata(str(tmp))
    return replace_dir(tmp, target)
