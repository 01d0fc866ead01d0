"""Write cell / not-cell decisions back into the user's pipeline files.

- Suite2p: ``iscell.npy`` (N × 2 float64: 1/0, probability of cell), written atomically after
  keeping a timestamped copy of the original, so the Suite2p GUI opens the curated result;
  a multi-plane run's ``combined/iscell.npy`` is rebuilt from its planes the same way.
- CaImAn: ``estimates/idx_components`` / ``idx_components_bad`` rewritten in the HDF5 (on a
  copy, swapped in atomically, after a backup); a side ``.npz`` when the file is read-only.
- ROI masks beside a movie: a new label image ``<movie>_cells.tif`` keeping only the ROIs
  decided cells, with their original values (the user's mask file is never touched).
- An ImageJ ROI set beside a movie: a new ``<movie>_cells.zip`` holding the ``.roi`` records
  of the ROIs decided cells, byte for byte (the user's ``RoiSet.zip`` is never touched).
- NWB (:func:`.nwb.write_nwb_curated`): a copy ``<stem>_curated.nwb`` whose ROI tables gain
  ``iscell_curated`` and ``prob_cell_curated`` columns (the user's file is never touched).
- Neurofinder: ``regions/regions_cells.json`` beside ``regions.json``, the cells' regions
  (the user's file is never touched).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.io.safe_pickle import load_npy
from napari_cellcurator.core.store.atomic import atomic_write


def _timestamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S-%f")


def backup(path: Path) -> Path:
    """Copy ``path`` to ``<name>.bak-<timestamp><suffix>`` beside it; returns the copy."""
    path = Path(path)
    dest = path.with_name(f"{path.stem}.bak-{_timestamp()}{path.suffix}")
    shutil.copy2(path, dest)
    return dest


def decisions(items: ItemSet, predictions: pd.DataFrame, source: str
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROI indices, cell 0/1 and cell probability of the items read from ``source``."""
    table = items.table
    rows = table[table["source"].astype(str) == str(source)]
    pred = predictions.set_index(predictions["item_id"].astype(str))
    missing = sorted(set(rows["item_id"]) - set(pred.index))
    if missing:
        raise InputError(source, f"no prediction for items {missing[:3]}...")
    pred = pred.loc[rows["item_id"]]
    is_cell = (pred["prediction"].astype(str) == "cell").to_numpy()
    return (rows["roi_index"].to_numpy(dtype=np.int64), is_cell,
            _cell_probability(pred, rows, is_cell))


def _cell_probability(pred: pd.DataFrame, rows: pd.DataFrame, is_cell: np.ndarray
                      ) -> np.ndarray:
    """P(cell) per item: the model's for what the model decided; 1/0 for a person's
    decision; the file's own probability (Suite2p's second ``iscell`` column) for decisions
    still taken from the file, so a write-back changes only what was curated."""
    prob = _model_probability(pred, is_cell)
    if "suite2p_prob" in rows.columns:
        own = rows["suite2p_prob"].to_numpy(dtype=np.float64)
        keep = _decided_by_file(pred, model=not np.isnan(prob).all()) & ~np.isnan(own)
        prob[keep] = own[keep]
    return np.where(np.isnan(prob), is_cell.astype(np.float64), prob)


def _model_probability(pred: pd.DataFrame, is_cell: np.ndarray) -> np.ndarray:
    """P(cell) from the prediction table's ``prob_cell`` or ``probability`` (NaN where none:
    items a person or the file decided, see :func:`core.curation.curated_predictions`)."""
    if "prob_cell" in pred.columns:
        return np.array(pd.to_numeric(pred["prob_cell"], errors="coerce"), np.float64)
    if "probability" in pred.columns:
        p = pd.to_numeric(pred["probability"], errors="coerce").to_numpy(dtype=np.float64)
        return np.where(is_cell, p, 1 - p)
    return np.full(len(pred), np.nan)


def _decided_by_file(pred: pd.DataFrame, model: bool) -> np.ndarray:
    """Rows whose decision is the label read from the file (not a person's, not the
    model's). A bare model table (no ``curated_from``) with probabilities is the model's."""
    if "label_source" not in pred.columns or ("curated_from" not in pred.columns and model):
        return np.zeros(len(pred), bool)
    mask = np.array(pred["label_source"].astype(str) == "file", bool)
    if "curated_from" in pred.columns:
        mask &= (pred["curated_from"].astype(str) == "label").to_numpy()
    return mask


def write_suite2p_iscell(plane: Path, roi_index: np.ndarray, is_cell: np.ndarray,
                         prob: np.ndarray) -> Path:
    """Update ``plane/iscell.npy`` at ``roi_index`` (other ROIs keep their values).

    Everything is checked before the original is backed up and replaced (atomically).

    Raises
    ------
    InputError
        When ``iscell.npy``'s rows differ from ``stat.npy``'s ROIs, or an index is out of
        range.
    """
    plane = Path(plane)
    target = plane / "iscell.npy"
    n = len(load_npy(plane / "stat.npy"))
    if len(roi_index) and (roi_index.min() < 0 or roi_index.max() >= n):
        raise InputError(target, f"ROI index out of range for {n} ROIs")
    iscell = np.zeros((n, 2), np.float64)
    if target.is_file():
        old = np.asarray(load_npy(target), dtype=np.float64)
        old = old.reshape(len(old), -1) if old.ndim else old.reshape(1, 1)
        if len(old) != n:
            raise InputError(target, f"has {len(old)} rows but {plane / 'stat.npy'} has {n} "
                             "ROIs", f"{n} rows, one per ROI of the same Suite2p run")
        iscell[:, :min(old.shape[1], 2)] = old[:, :2]
        backup(target)
    iscell[roi_index, 0] = is_cell.astype(np.float64)
    iscell[roi_index, 1] = prob
    return _save_npy(target, iscell)


def refuse_changed_rois(file: Path, now: np.ndarray, table: pd.DataFrame, source: str,
                         pipeline: str, now_ids: np.ndarray | None = None,
                         key: str | None = None) -> None:
    """Refuse to write decisions over ROIs other than those the items were read from (the
    pipeline run again while the data was open): they would land on other cells.

    ``now``: ``(N, 3)`` centroid y, x and pixel count of the ROIs in ``file`` now, in ROI
    order (the items' ``key`` column, default ``roi_index``) or, with ``now_ids``, of the ids
    ``now_ids`` (matched with the items' ``key``, default ``mask_id``: label values of a
    mask image, Minian unit ids).

    Raises
    ------
    InputError
        When a decided ROI's centroid or size in ``file`` is not what was read.
    """
    from napari_cellcurator.core.anchors import has_geometry, moved

    rows = table[table["source"].astype(str) == str(source)]
    if not has_geometry(rows) or not len(rows):
        return
    if now_ids is None:
        index = rows[key or "roi_index"].to_numpy(dtype=np.int64)
    else:  # -1 for an id no longer in the file
        index = pd.Index(now_ids).get_indexer(rows[key or "mask_id"].to_numpy(dtype=np.int64))
    then = rows[["y", "x", "npix"]].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    inside = (index >= 0) & (index < len(now))
    now_rows = np.full_like(then, np.nan)  # a gone ROI: NaN, never in place
    now_rows[inside] = now[index[inside]]
    shifted = moved(then, now_rows)
    if shifted.any():
        raise InputError(file, f"changed since it was read: {int(shifted.sum())} ROI(s) are "
                         f"not where they were ({pipeline} run again?); nothing was written",
                         "load the data again, then write back (labels follow their cells)")


def _save_npy(target: Path, array: np.ndarray) -> Path:
    """Write ``array`` to ``target`` atomically (no pickles)."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a handle: np.save would append .npy to the temp name
            np.save(fh, array, allow_pickle=False)

    return atomic_write(target, write)


def update_combined(planes: list[Path]) -> list[Path]:
    """Rewrite Suite2p's ``combined/iscell.npy`` beside the plane folders written.

    The Suite2p GUI opens ``combined/`` for a multi-plane run, so after the planes were
    written it must follow: it becomes every plane's ``iscell.npy`` (all the planes beside
    the ones written) stacked in natural order (plane2 before plane10), after a backup, and
    atomically. When that cannot be done safely (its row count is not the planes' sum, a
    plane has no ``iscell.npy``) it is left as it is with an :class:`InputWarning` saying why.

    Returns
    -------
    list of Path
        The ``combined/iscell.npy`` files written.
    """
    from napari_cellcurator.core.io.suite2p import combined_folders

    written = []
    for combined in combined_folders(planes):
        path = _rebuild_combined(combined)
        if path is not None:
            written.append(path)
    return written


def _rebuild_combined(combined: Path) -> Path | None:
    from napari_cellcurator.core.io.suite2p import sibling_planes

    target = combined / "iscell.npy"
    siblings = sibling_planes(combined.parent)
    missing = [p.name for p in siblings if not (p / "iscell.npy").is_file()]
    if not target.is_file():
        return _not_updated(combined, "it has no iscell.npy")
    if missing:
        return _not_updated(combined, f"no iscell.npy in {', '.join(missing)}")
    parts = [_two_columns(load_npy(p / "iscell.npy")) for p in siblings]
    rows, total = len(np.asarray(load_npy(target))), sum(len(a) for a in parts)
    if rows != total:
        return _not_updated(combined, f"its iscell.npy has {rows} rows but the planes "
                            f"{', '.join(p.name for p in siblings)} have {total} together")
    backup(target)
    return _save_npy(target, np.concatenate(parts))


def _two_columns(iscell) -> np.ndarray:
    """A Suite2p ``iscell`` as N × 2 float64 (label, probability; a lone label column is
    its own probability)."""
    a = np.asarray(iscell, np.float64)
    a = a.reshape(len(a), -1)
    return a[:, :2] if a.shape[1] >= 2 else np.repeat(a[:, :1], 2, axis=1)


def _not_updated(combined: Path, why: str) -> None:
    import warnings

    from napari_cellcurator.core.errors import InputWarning

    warnings.warn(f"{combined}: not updated ({why}); the Suite2p GUI shows the old labels "
                  "there, open the plane folders instead", InputWarning, stacklevel=3)


#: CaImAn's GUI keeps its manual curation in these; where a file holds them (arrays, not
#: CaImAn's ``'NoneType'`` placeholder) they are rewritten with the same decisions
CAIMAN_GUI_LISTS = ("accepted_list", "rejected_list")


def write_caiman_idx(path: Path, roi_index: np.ndarray, is_cell: np.ndarray) -> Path:
    """Rewrite idx_components / idx_components_bad (and the CaImAn GUI's accepted_list /
    rejected_list where the file has them); side file ``<stem>.curated.npz`` if the HDF5 is
    read-only but its folder is not.

    Raises
    ------
    InputError
        When the folder cannot be written either (export a table instead).
    """
    from napari_cellcurator.core.io.hdf5 import import_h5py

    path = Path(path)
    good = np.sort(roi_index[is_cell]).astype(np.int64)
    bad = np.sort(roi_index[~is_cell]).astype(np.int64)
    if not os.access(path.parent, os.W_OK):
        raise InputError(path.parent, "is read-only: the curated CaImAn classification "
                         "cannot be written beside the results",
                         "`cellcurator export --out curated.csv` (a table anywhere)")
    if not os.access(path, os.W_OK):
        side = path.with_name(f"{path.stem}.curated.npz")
        return atomic_write(side, lambda tmp: _savez(tmp, good, bad))
    h5py = import_h5py()
    backup(path)

    def write(tmp: Path) -> None:
        shutil.copy2(path, tmp)
        with h5py.File(tmp, "r+") as fh:
            est = fh["estimates"]
            decisions = {"idx_components": good, "idx_components_bad": bad}
            decisions.update((k, v) for k, v in zip(CAIMAN_GUI_LISTS, (good, bad), strict=True)
                             if k in est and _is_array(est[k]))
            for key, arr in decisions.items():
                if key in est:
                    del est[key]
                est[key] = arr

    return atomic_write(path, write)


def write_cell_masks(mask_path: Path, movie_path: Path, mask_ids: np.ndarray,
                     is_cell: np.ndarray) -> Path:
    """``<movie stem>_cells.tif`` beside the movie: the label image with only the ROIs
    decided cells (values kept; ROIs not scored are kept too). A previous one is backed up."""
    import tifffile

    from napari_cellcurator.core.io.roi_masks import read_label_image

    labels = read_label_image(Path(mask_path))
    drop = np.asarray(mask_ids, dtype=np.int64)[~np.asarray(is_cell, dtype=bool)]
    labels[np.isin(labels, drop) | (labels < 0)] = 0  # negative = background, as when read
    dtype = np.uint16 if labels.max() < 2 ** 16 else np.uint32
    return _write_cells_file(Path(movie_path), ".tif", lambda tmp: tifffile.imwrite(
        tmp, labels.astype(dtype), photometric="minisblack"))


def _write_cells_file(movie_path: Path, suffix: str, write: Callable[[Path], None]
                      ) -> Path:
    """Atomically write ``<movie stem>_cells<suffix>`` beside the movie."""
    return write_curated_copy(movie_path.with_name(f"{movie_path.stem}_cells{suffix}"), write)


def write_curated_copy(target: Path, write: Callable[[Path], None]) -> Path:
    """Atomically write a new file ``target`` beside the user's data (never the data itself);
    a previous one is backed up first: it may hold an earlier curation."""
    if target.is_file():
        backup(target)
    return atomic_write(target, write)


def write_cell_rois(roi_path: Path, movie_path: Path, zip_index: np.ndarray,
                    names: list[str], is_cell: np.ndarray) -> Path:
    """``<movie stem>_cells.zip`` beside the movie: the ROI set's records of the cells only.

    Parameters
    ----------
    roi_path
        The user's ``RoiSet.zip`` (or ``.roi``) the items were read from; only read.
    movie_path
        The movie the items belong to (names the new file).
    zip_index, names
        Position in the set and name of every scored ROI (the ``zip_index`` and
        ``roi_name`` columns), checked against the set so a set edited since it was read
        cannot send the wrong ROIs.
    is_cell
        The decision per scored ROI.

    Returns
    -------
    Path
        The zip written (atomically; a previous one is backed up), records unchanged and in
        the set's order, so Fiji's ROI Manager opens it as the curated set.
    """
    from napari_cellcurator.core.io.imagej_rois import parse_rois, read_roi_records, roi_names

    roi_path, movie_path = Path(roi_path), Path(movie_path)
    records = read_roi_records(roi_path)
    now = roi_names(parse_rois(roi_path, records), records)
    zip_index = np.asarray(zip_index, dtype=np.int64)
    if any(k >= len(now) or now[k] != name for k, name in zip(zip_index, names, strict=True)):
        raise InputError(roi_path, "changed since its ROIs were read",
                         "the same ROI set; read the movie again before writing back")
    keep = sorted(zip_index[np.asarray(is_cell, dtype=bool)].tolist())
    return _write_cells_file(movie_path, ".zip",
                             lambda tmp: _write_zip(tmp, [records[k] for k in keep]))


def _write_zip(tmp: Path, records: list[tuple[str, bytes]]) -> None:
    import zipfile

    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in records:
            zf.writestr(name, data)


def _write_movie_rois(items: ItemSet, source: str, fmt: str, roi_file: Path,
                      idx: np.ndarray, is_cell: np.ndarray) -> Path:
    """The cells-only copy of the ROIs beside a movie (label image or ImageJ ROI set)."""
    rows = items.table[items.table["source"].astype(str) == source].set_index("roi_index")
    if fmt == "masks":
        from napari_cellcurator.core.data.roi_images import footprint_geometry
        from napari_cellcurator.core.io.roi_masks import (
            footprints_from_label_image,
            read_label_image,
        )

        footprints, ids = footprints_from_label_image(read_label_image(roi_file))
        refuse_changed_rois(roi_file, footprint_geometry(footprints), items.table, source,
                             "the segmentation", ids)
        return write_cell_masks(roi_file, Path(source), rows.loc[idx, "mask_id"].to_numpy(),
                                is_cell)
    return write_cell_rois(roi_file, Path(source), rows.loc[idx, "zip_index"].to_numpy(),
                           [str(n) for n in rows.loc[idx, "roi_name"]], is_cell)


def _write_regions(items: ItemSet, source: str, regions_path: Path, idx: np.ndarray,
                   is_cell: np.ndarray) -> Path:
    """``regions_cells.json`` beside a Neurofinder ``regions.json``: the cells' regions."""
    from napari_cellcurator.core.io.neurofinder import (
        CELLS_NAME,
        cell_regions,
        regions_geometry,
    )

    refuse_changed_rois(regions_path, regions_geometry(regions_path), items.table, source,
                         "the regions file rewritten", key="region_index")
    rows = items.table[items.table["source"].astype(str) == source].set_index("roi_index")
    kept = cell_regions(regions_path, rows.loc[idx, "region_index"].to_numpy(), is_cell)
    text = json.dumps(kept) + "\n"
    return write_curated_copy(regions_path.with_name(CELLS_NAME),
                               lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _is_array(node) -> bool:
    """An HDF5 dataset of numbers (CaImAn saves a None attribute as the string 'NoneType')."""
    return hasattr(node, "dtype") and node.dtype.kind in "iuf" and node.ndim == 1


def _savez(tmp: Path, good: np.ndarray, bad: np.ndarray) -> None:
    with open(tmp, "wb") as fh:
        np.savez(fh, idx_components=good, idx_components_bad=bad)


def write_back(items: ItemSet, predictions: pd.DataFrame, target: Path | None = None) -> Path:
    """Write predictions of Suite2p / CaImAn / movie + ROIs items back to their files.

    Returns the last file written. ``target`` restricts writing to that source (default:
    every source in the table).
    """
    parts = items.meta.get("parts", [items.meta])
    fmts = {str(p.get("path")): p.get("format") for p in parts}
    masks = {str(p.get("path")): p.get("mask_path") for p in parts}
    sources = sorted(set(items.table["source"].astype(str)))
    if target is not None:
        # the target is one source or a folder above several (a suite2p/ root of its planes)
        sources = [s for s in sources if Path(s) == Path(target) or Path(target) in
                   Path(s).parents] or [str(target)]
    written, planes = None, []
    for source in sources:
        fmt = fmts.get(source)
        idx, is_cell, prob = decisions(items, predictions, source)
        if fmt == "suite2p":
            from napari_cellcurator.core.io.suite2p import stat_geometry

            refuse_changed_rois(Path(source) / "stat.npy", stat_geometry(Path(source)),
                                 items.table, source, "Suite2p")
            written = write_suite2p_iscell(Path(source), idx, is_cell, prob)
            planes.append(Path(source))
        elif fmt == "caiman":
            from napari_cellcurator.core.io.caiman import caiman_geometry

            refuse_changed_rois(Path(source), caiman_geometry(Path(source)), items.table,
                                 source, "CaImAn")
            written = write_caiman_idx(Path(source), idx, is_cell)
        elif fmt == "minian":
            from napari_cellcurator.core.io.minian import minian_geometry, write_minian_curated

            rows = items.table[items.table["source"].astype(str) == source]
            now, units = minian_geometry(Path(source))
            refuse_changed_rois(Path(source) / "A.zarr", now, items.table, source, "Minian",
                                 units, key="unit_id")
            written = write_minian_curated(Path(source), rows["unit_id"].to_numpy(), is_cell)
        elif fmt == "neurofinder" and masks.get(source):
            written = _write_regions(items, source, Path(masks[source]), idx, is_cell)
        elif fmt in ("masks", "imagej_rois") and masks.get(source):
            written = _write_movie_rois(items, source, fmt, Path(masks[source]), idx, is_cell)
        elif fmt == "nwb":  # rows in the order decisions() returns them
            rows = items.table[items.table["source"].astype(str) == source]
            from napari_cellcurator.core.io.nwb import refuse_changed_nwb, write_nwb_curated

            refuse_changed_nwb(Path(source), rows)
            written = write_nwb_curated(Path(source), rows["nwb_table"].to_numpy(),
                                        rows["nwb_row"].to_numpy(), is_cell, prob)
        else:
            raise InputError(source, f"format {fmt!r} has no native write-back",
                             "Suite2p, CaImAn, NWB, Minian or Neurofinder results or a movie "
                             "with its ROI masks file or ImageJ RoiSet.zip; export CSV for "
                             "other formats")
    if written is None:
        raise InputError(target, "no items to write back")
    if planes:
        update_combined(planes)
    return written
