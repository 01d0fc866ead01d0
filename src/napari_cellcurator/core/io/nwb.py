"""Neurodata Without Borders (NWB 2.x) optical physiology files → :class:`RoiSet`.

NWB is the archive format of DANDI and the Allen Institute and an export of Suite2p, CaImAn
(via NeuroConv) and most pipelines. A file holds segmentation results as ``PlaneSegmentation``
tables (ROIs as ``image_mask`` (N, H, W), or ragged ``pixel_mask`` (x, y, weight) /
``voxel_mask`` (x, y, z, weight) rows) and their traces as ``RoiResponseSeries`` (frames × ROIs)
inside ``Fluorescence`` / ``DfOverF`` containers, linked to the table by a region of row
indices. The file is read with h5py by ``neurodata_type`` (no pynwb needed), wherever the
writer put the groups, so Suite2p's ``processing/ophys`` and the Allen SDK's
``processing/ophys/image_segmentation/cell_specimen_table`` read alike.

Two writer conventions are checked rather than assumed: the NWB schema's pixel ``x`` is the
column, but Suite2p writes its row there (recognised by its ``Backgrounds_<plane>`` images or
by coordinates that only fit the reference image the other way round); image masks stored
transposed against the reference image are turned back. Image masks and reference images are
read as (rows, columns), as pynwb's examples and the Allen SDK store them; writers that follow
the schema's (x, y) axis names literally (NeuroConv stores (ROIs, width, height) and its images
alike) then come out transposed, masks and mean image together: patches and traces, and so
the classification, are the same; only the view is mirrored about the diagonal.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.io.hdf5 import open_hdf5
from napari_cellcurator.core.io.names import readable
from napari_cellcurator.core.io.rois import RoiSet, label_name

SUFFIXES = (".nwb",)
#: columns our write-back adds to each ROI table of ``<stem>_curated.nwb``
CURATED_COLUMN, CURATED_PROB_COLUMN = "iscell_curated", "prob_cell_curated"
#: PlaneSegmentation columns read as cell / not-cell (first match; our curated column first;
#: Suite2p ``iscell`` is (N, 2): flag and probability; the Allen SDK's ``valid_roi``)
LABEL_COLUMNS = (CURATED_COLUMN, "iscell", "is_cell", "accepted", "cell", "valid_roi",
                 "label")
#: words in the names of series that hold spikes or events rather than fluorescence
SPIKE_WORDS = ("deconv", "spk", "spike", "event")
#: names of reference images that are the recording's mean
MEAN_NAMES = ("meanimg", "mean", "mean_image", "average", "avg", "average_projection")


def _type(obj) -> str:
    value = obj.attrs.get("neurodata_type", b"")
    return value.decode() if isinstance(value, bytes) else str(value)


def _find(fh, neurodata_type: str) -> list:
    """Every group or dataset of ``neurodata_type`` in the file, in file order."""
    found: list = []
    fh.visititems(lambda _name, obj: found.append(obj) if _type(obj) == neurodata_type else None)
    return found


#: imaging series whose ``data`` is a movie (frames, x, y[, z])
MOVIE_TYPES = ("TwoPhotonSeries", "OnePhotonSeries", "ImageSeries")


def has_segmentation(path: Path) -> bool:
    """Whether the NWB file holds ROI segmentation (else it may hold only the raw movie)."""
    with open_hdf5(Path(path), "NWB (HDF5)", extra="nwb") as fh:
        return bool(_find(fh, "PlaneSegmentation"))


def movie_dataset(fh, path: Path):
    """The largest imaging series' ``data`` of an open NWB file (frames first), or an
    :class:`InputError` (series stored in external files have no data here)."""
    found = [s["data"] for kind in MOVIE_TYPES for s in _find(fh, kind)
             if "data" in s and s["data"].ndim >= 3 and s["data"].shape[0] > 0]
    if not found:
        raise InputError(path, "holds no imaging data (no TwoPhotonSeries, OnePhotonSeries or "
                         "ImageSeries with frames in the file) and no ROI segmentation "
                         "(PlaneSegmentation)",
                         "an NWB file with ophys segmentation or its raw movie")
    return max(found, key=lambda d: d.size)


def read_nwb(path: Path, extra: dict | None = None) -> list[RoiSet]:
    """ROI candidates of every plane segmentation in an NWB file, with their traces.

    Returns one :class:`RoiSet` per imaging plane (Suite2p's multi-plane ``voxel_mask``
    tables are split by plane). Labels come from an ``iscell``-like column when present.
    """
    path = Path(path)
    with open_hdf5(path, "NWB (HDF5)", extra="nwb") as fh:
        tables = _find(fh, "PlaneSegmentation")
        if not tables:
            raise InputError(path, "holds no ROI segmentation (no PlaneSegmentation table)",
                             "an NWB file with ophys ImageSegmentation results")
        series = _find(fh, "RoiResponseSeries")
        sets = [s for table in tables for s in _read_table(fh, table, series, path, len(tables))]
    if not sets:
        raise InputError(path, "has PlaneSegmentation tables but no fluorescence traces for "
                         "them (RoiResponseSeries)", "traces of the ROIs in the same file")
    return sets


def _read_table(fh, table, series: list, path: Path, n_tables: int) -> list[RoiSet]:
    name = table.name.rsplit("/", 1)[-1]
    linked = [s for s in series if _region_table(fh, s) == table.name]
    if not linked:
        warnings.warn(f"{readable(path)}: ROI table {name} has no traces and is not read",
                      InputWarning, stacklevel=3)
        return []
    main, neuropil = _pick_series(linked)
    rows = np.asarray(main["rois"][()], np.int64).ravel()
    n_rows = table_rows(table)
    if len(rows) == 0 or rows.min() < 0 or rows.max() >= n_rows or len(set(rows)) < len(rows):
        raise InputError(path, f"{main.name}/rois does not name distinct rows of the "
                         f"{n_rows}-ROI table {name}", "row indices 0..n-1, each once")
    traces = _series_data(main, len(rows), path)
    if neuropil is not None:
        neuropil = _aligned(neuropil, rows, traces.shape, path)
    ref = _reference_image(table)
    masks, planes = _masks(table, rows, ref, path)
    ids = np.asarray(table["id"][()]).ravel() if "id" in table else np.arange(n_rows)
    labels = _labels(table, rows)
    sets = []
    for plane in sorted(set(planes)):
        keep = [i for i, p in enumerate(planes) if p == plane]
        prefix = name if n_tables > 1 else ""
        if len(set(planes)) > 1:
            prefix = f"{prefix}plane{plane}" if not prefix else f"{prefix}:plane{plane}"
        sets.append(_roiset(path, [masks[i] for i in keep], traces[keep],
                            None if neuropil is None else neuropil[keep],
                            None if labels is None else [labels[i] for i in keep],
                            [ids[rows[i]] for i in keep], [rows[i] for i in keep], prefix,
                            ref, table))
    return sets


def table_geometry(path: Path, table_name: str) -> np.ndarray:
    """``(rows, 3)`` centroid y, x and pixel count of every row of the ROI table
    ``table_name`` in the NWB file now, as the reader places them (the items' ``y``, ``x``,
    ``npix``); rows of planes are not told apart (write-back addresses rows)."""
    from napari_cellcurator.core.data.roi_images import footprint_geometry

    path = Path(path)
    with open_hdf5(path, "NWB (HDF5)", extra="nwb") as fh:
        if table_name not in fh:
            raise InputError(path, f"has no ROI table {table_name} any more",
                             "the NWB file the ROIs were read from")
        table = fh[table_name]
        masks, _ = _masks(table, np.arange(table_rows(table)), _reference_image(table), path)
    return footprint_geometry(masks)


def table_rows(table) -> int:
    """Rows of the PlaneSegmentation group ``table`` (the length of its mask column)."""
    for key in ("image_mask", "pixel_mask_index", "voxel_mask_index"):
        if key in table:
            return len(table[key])
    return 0


def _roiset(path: Path, masks: list, traces: np.ndarray, neuropil, labels, ids: list,
            rows: list, prefix: str, ref: np.ndarray | None, table) -> RoiSet:
    fov = _fov_shape(masks, ref, table)
    stem = f"{path.stem}:{prefix}" if prefix else path.stem
    return RoiSet(
        masks, traces, fov, path, "nwb", labels=labels, neuropil=neuropil,
        mean_image=ref if ref is not None and ref.shape == fov else None,
        # ids from the table's ROI ids: stable when the file is re-exported with fewer ROIs
        columns={"nwb_id": np.asarray(ids, np.int64),
                 "item_id": [f"{stem}:{int(i)}" for i in ids],
                 # where the write-back puts each decision
                 "nwb_table": table.name, "nwb_row": np.asarray(rows, np.int64)},
        meta={"n_frames": int(traces.shape[1]), "nwb_table": table.name})


def _region_table(fh, series) -> str | None:
    """Name of the table a RoiResponseSeries' ``rois`` region points to."""
    rois = series.get("rois")
    ref = None if rois is None else rois.attrs.get("table")
    if ref is None:
        return None
    try:
        return fh[ref].name
    except (ValueError, KeyError, TypeError):
        return None


def _pick_series(linked: list) -> tuple:
    """(traces, neuropil or None): raw fluorescence (minus its neuropil series) before an
    already corrected one (the Allen SDK's, used as it is), demixed traces, then ΔF/F;
    spikes and events never. ``s.name`` is the HDF5 path, so container names count."""
    def words(s) -> str:
        return (s.name + " " + _type(s.parent)).lower()

    neuropil = [s for s in linked if "neuropil" in words(s)]
    others = [s for s in linked if "neuropil" not in words(s)]
    if not others:
        return neuropil[0], None

    def rank(s) -> int:
        w, fluorescence = words(s), _type(s.parent) == "Fluorescence"
        if any(k in w for k in SPIKE_WORDS):  # Suite2p's "Deconvolved" sits in Fluorescence
            return 5
        if "corrected" in w:  # the Allen SDK: F minus its own neuropil estimate
            return 1
        if fluorescence and not any(k in w for k in ("dff", "demix")):
            return 0  # raw F, with the neuropil subtracted as for every other format
        return 2 if fluorescence else 3 if _type(s.parent) == "DfOverF" else 4

    main = sorted(others, key=rank)[0]
    if "corrected" in words(main) or _type(main.parent) == "DfOverF":
        return main, None
    return main, (neuropil[0] if neuropil else None)


def _series_data(series, n_rois: int, path: Path) -> np.ndarray:
    """(ROIs, frames) traces from NWB's (frames, ROIs) ``data``."""
    data = np.asarray(series["data"][()], np.float32)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2:
        raise InputError(path, f"{series.name}/data has shape {data.shape}", "(frames, ROIs)")
    if data.shape[1] == n_rois:
        return np.ascontiguousarray(data.T)
    if data.shape[0] == n_rois:  # written ROIs first against the schema
        return data
    raise InputError(path, f"{series.name}/data has shape {data.shape} for {n_rois} ROIs",
                     "(frames, ROIs), one column per row of its rois region")


def _aligned(series, rows: np.ndarray, shape: tuple, path: Path) -> np.ndarray | None:
    """Neuropil traces in the order of ``rows`` (None, with a warning, when they differ)."""
    their_rows = np.asarray(series["rois"][()], np.int64).ravel()
    data = _series_data(series, len(their_rows), path)
    where = {int(r): i for i, r in enumerate(their_rows)}
    if data.shape[1] != shape[1] or any(int(r) not in where for r in rows):
        warnings.warn(f"{readable(path)}: {series.name} does not cover the same ROIs and "
                      "frames as the fluorescence; traces are read without neuropil "
                      "subtraction", InputWarning, stacklevel=4)
        return None
    return data[[where[int(r)] for r in rows]]


def _reference_image(table) -> np.ndarray | None:
    """The recording's mean image: the table's reference images, else an ``Images``
    container beside it (Suite2p's ``Backgrounds_<plane>``), preferring a mean."""
    candidates = []
    holders = [table.get("reference_images")]
    holders += [g for g in _parents(table) if _type(g) == "Images"]
    for holder in holders:
        for key in (holder or {}):
            data = holder[key].get("data") if hasattr(holder[key], "keys") else holder[key]
            if data is not None and data.ndim == 2:
                candidates.append((key.lower() not in MEAN_NAMES, key, data))
    if not candidates:
        return None
    return np.asarray(sorted(candidates, key=lambda c: c[:2])[0][2][()], np.float32)


def _parents(table) -> list:
    """Groups beside the table's ImageSegmentation, i.e. in its processing module."""
    module = table.parent.parent if table.parent is not None else None
    if module is None or not hasattr(module, "values"):
        return []
    return [g for g in module.values() if hasattr(g, "keys")]


def _suite2p_written(table) -> bool:
    """Suite2p's NWB export: ``Backgrounds_<plane>`` images with meanImg and Vcorr."""
    return any(g.name.rsplit("/", 1)[-1].startswith("Backgrounds_") and "Vcorr" in g
               for g in _parents(table))


def _masks(table, rows: np.ndarray, ref, path: Path) -> tuple[list, list[int]]:
    """``(ypix, xpix, lam)`` and plane per row in ``rows``."""
    if "image_mask" in table:
        return _image_masks(table["image_mask"], rows, ref, path), [0] * len(rows)
    key = "pixel_mask" if "pixel_mask" in table else "voxel_mask" if "voxel_mask" in table else None
    if key is None or f"{key}_index" not in table:
        raise InputError(path, f"ROI table {table.name} has no image_mask, pixel_mask or "
                         "voxel_mask", "ROI masks in the PlaneSegmentation")
    flat = table[key][()]
    ends = np.asarray(table[f"{key}_index"][()], np.int64).ravel()
    starts = np.concatenate([[0], ends[:-1]])
    first, second = _pixel_axes(flat, ref, _suite2p_written(table))
    fps, planes = [], []
    for r in rows:
        part = flat[starts[r]:ends[r]]
        weight = part["weight"] if "weight" in part.dtype.names else np.ones(len(part))
        fps.append((np.asarray(part[first], np.int64), np.asarray(part[second], np.int64),
                    np.asarray(weight, np.float32)))
        planes.append(int(part["z"][0]) if key == "voxel_mask" and len(part) else 0)
    return fps, planes


def _pixel_axes(flat, ref, suite2p: bool) -> tuple[str, str]:
    """(row field, column field) of pixel masks: schema x = column, unless the writer is
    Suite2p or only the swapped reading fits the reference image."""
    if suite2p:
        return "x", "y"
    if ref is not None and len(flat):
        fits = int(flat["y"].max()) < ref.shape[0] and int(flat["x"].max()) < ref.shape[1]
        swapped = int(flat["x"].max()) < ref.shape[0] and int(flat["y"].max()) < ref.shape[1]
        if swapped and not fits:
            return "x", "y"
    return "y", "x"


def _image_masks(dataset, rows: np.ndarray, ref, path: Path) -> list:
    if dataset.ndim != 3:
        raise InputError(path, f"{dataset.name} has shape {dataset.shape}",
                         "(ROIs, height, width); 3-D masks are not supported")
    transpose = _transposed(dataset.shape[1:], ref)
    fps = []
    for r in rows:
        mask = np.asarray(dataset[int(r)], np.float32)
        mask = mask.T if transpose else mask
        ys, xs = np.nonzero(mask > 0)
        fps.append((ys.astype(np.int64), xs.astype(np.int64), mask[ys, xs]))
    return fps


def _transposed(mask_shape: tuple, ref: np.ndarray | None) -> bool:
    """Whether image masks are stored (width, height) against the reference image."""
    return (ref is not None and tuple(mask_shape) != ref.shape
            and tuple(mask_shape) == ref.shape[::-1])


def _fov_shape(masks: list, ref, table) -> tuple[int, int]:
    if "image_mask" in table:
        shape = tuple(table["image_mask"].shape[1:])
        return shape[::-1] if _transposed(shape, ref) else shape
    if ref is not None:
        return ref.shape
    ly = max((int(fp[0].max()) + 1 for fp in masks if len(fp[0])), default=1)
    lx = max((int(fp[1].max()) + 1 for fp in masks if len(fp[1])), default=1)
    return ly, lx


def _labels(table, rows: np.ndarray) -> list[str | None] | None:
    for key in LABEL_COLUMNS:
        if key in table and len(table[key]) == table_rows(table):
            values = np.asarray(table[key][()])
            values = values[:, 0] if values.ndim == 2 else values
            if values.dtype.kind in "SO":
                values = np.array([v.decode() if isinstance(v, bytes) else v for v in values],
                                  dtype=object)
            elif values.dtype.kind in "iu":  # our curated column: -1 = not scored
                values = np.where(values < 0, np.nan, values)
            return [label_name(values[int(r)]) for r in rows]
    return None


def set_column(table, name: str, values: np.ndarray, description: str) -> None:
    """Add (or replace) a column of a DynamicTable group opened with h5py ``r+``, as
    pynwb writes one (VectorData attributes, listed in ``colnames``)."""
    import uuid

    import h5py

    if name in table:
        del table[name]
    column = table.create_dataset(name, data=values)
    column.attrs.update({"neurodata_type": "VectorData", "namespace": "hdmf-common",
                         "object_id": str(uuid.uuid4()), "description": description})
    names = [c.decode() if isinstance(c, bytes) else str(c)
             for c in table.attrs.get("colnames", [])]
    if name not in names:
        names.append(name)
    table.attrs["colnames"] = np.array(names, dtype=h5py.string_dtype())


def write_nwb_curated(path: Path, tables: np.ndarray, rows: np.ndarray, is_cell: np.ndarray,
                      prob: np.ndarray) -> Path:
    """``<stem>_curated.nwb`` beside an NWB file: a copy whose ROI tables gain the columns
    ``iscell_curated`` (1 cell, 0 not cell, -1 not scored) and ``prob_cell_curated``.

    NWB files are archives (DANDI, lab servers): the user's file is only read. The copy opens
    in pynwb and reads back here with the curated labels. ``tables`` and ``rows`` give the
    ROI table (HDF5 path) and row of each decision.
    """
    import shutil

    from napari_cellcurator.core.io.hdf5 import import_h5py
    from napari_cellcurator.core.io.writeback import write_curated_copy

    h5py = import_h5py("nwb")
    path = Path(path)
    tables, rows = np.asarray(tables).astype(str), np.asarray(rows, np.int64)
    is_cell, prob = np.asarray(is_cell, bool), np.asarray(prob, np.float32)

    def write(tmp: Path) -> None:
        shutil.copyfile(path, tmp)
        with h5py.File(tmp, "r+") as fh:
            for name in sorted(set(tables)):
                group, pick = fh[name], tables == name
                flags = np.full(table_rows(group), -1, np.int8)
                flags[rows[pick]] = is_cell[pick]
                probs = np.full(len(flags), np.nan, np.float32)
                probs[rows[pick]] = prob[pick]
                set_column(group, CURATED_COLUMN, flags, "cell (1) / not cell (0) after "
                           "curation with napari-cellcurator; -1: not scored")
                set_column(group, CURATED_PROB_COLUMN, probs, "probability of cell (1 for "
                           "a person's label) after curation with napari-cellcurator")

    return write_curated_copy(path.with_name(f"{path.stem}_curated.nwb"), write)


def refuse_changed_nwb(path: Path, rows) -> None:
    """Refuse an NWB file whose ROI tables no longer hold the ROIs read (re-exported with
    another segmentation): the curated copy would put decisions on other cells' rows.
    ``rows``: the items read from ``path`` (``nwb_table``, ``nwb_row``, ``y``, ``x``, ``npix``).
    """
    from napari_cellcurator.core.io.writeback import refuse_changed_rois

    for name in sorted(set(rows["nwb_table"].astype(str))):
        part = rows[rows["nwb_table"].astype(str) == name]
        refuse_changed_rois(path, table_geometry(path, name), part, str(path),
                            "the NWB export", key="nwb_row")
