"""Where an ROI was when a person labelled it, so labels follow cells, not ROI numbers.

Suite2p, CaImAn, Cellpose masks and PCA/ICA number their ROIs in the order they found them:
item ids are ``<plane>:<index>``. Run the segmentation again (other settings, a longer movie)
and index 12 is another cell, so a label saved under ``plane0:12`` would be applied to the wrong
cell, shown, trained on and written into ``iscell.npy``. The journal therefore records with each
label the *anchor* of its ROI — centroid and size, ``"y x npix"`` — and :func:`reconcile_anchors`
checks every label against the ROI now under its id: a label whose ROI moved follows it to the
ROI now at that place (same centroid within half a radius, size within a factor of 2), one whose
ROI is gone is not applied. The journal itself is never rewritten: it keeps what a person said
about which ROI.

Item tables without ROI geometry (crops, snippets, points) have no anchors; nothing changes
for them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from napari_cellcurator.core.errors import InputWarning

ANCHOR = "anchor"
_GEOMETRY = ("y", "x", "npix")
#: a centroid this close (px) is always the same ROI, whatever its size
_MIN_SHIFT = 2.0
#: otherwise up to this fraction of the ROI's radius
_SHIFT_OF_RADIUS = 0.5
#: sizes within this factor of each other
_SIZE_FACTOR = 2.0


def has_geometry(table: pd.DataFrame) -> bool:
    """Whether the items are ROIs with a centroid and a size (the ones anchors apply to)."""
    return all(c in table.columns for c in _GEOMETRY)


def item_anchors(table: pd.DataFrame) -> list[str | None] | None:
    """``"y x npix"`` of every item of an ROI table (None per item without a finite centroid);
    None for tables without ROI geometry."""
    if not has_geometry(table):
        return None
    geometry = table[list(_GEOMETRY)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    return [f"{y:.1f} {x:.1f} {int(n)}" if np.isfinite([y, x, n]).all() else None
            for y, x, n in geometry]


def parse_anchors(anchors: Sequence) -> np.ndarray:
    """``(N, 3)`` float array of y, x, npix (NaN rows for missing or unreadable anchors)."""
    out = np.full((len(anchors), 3), np.nan)
    for row, text in enumerate(anchors):  # a plain loop: faster than pandas' str methods
        if isinstance(text, str):
            try:
                values = [float(p) for p in text.split()]
            except ValueError:
                continue
            if len(values) == 3:
                out[row] = values
    return out


def same_place(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise: are ROIs ``a`` and ``b`` (``(N, 3)`` y, x, npix) the same ROI?"""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    shift = np.hypot(a[:, 0] - b[:, 0], a[:, 1] - b[:, 1])
    radius = np.sqrt(np.maximum(a[:, 2], b[:, 2]) / math.pi)
    ratio = np.maximum(a[:, 2], b[:, 2]) / np.maximum(np.minimum(a[:, 2], b[:, 2]), 1)
    return (shift <= np.maximum(_MIN_SHIFT, _SHIFT_OF_RADIUS * radius)) & (
        ratio <= _SIZE_FACTOR)


def moved(then: np.ndarray, now: np.ndarray) -> np.ndarray:
    """Row-wise: is an ROI read as ``then`` (``(N, 3)``, y, x, npix) not where it is ``now``
    (NaN rows of ``now``: gone)? Rows of ``then`` without a finite geometry never count."""
    return ~same_place(then, now) & np.isfinite(then).all(1)


def _prefix(item_id: str) -> str:
    """The ROI set an item id belongs to (``rec/plane0`` of ``rec/plane0:12``)."""
    return item_id.rsplit(":", 1)[0]


def reconcile_anchors(table: pd.DataFrame, journal_labels: pd.DataFrame,
                      warn: bool = True) -> tuple[pd.DataFrame, dict]:
    """Journal labels checked against the ROIs now under their ids.

    Parameters
    ----------
    table
        The item table as read now (``item_id``, ``y``, ``x``, ``npix``).
    journal_labels
        Current labels with an ``anchor`` column (labels without one — older journals, other
        tasks — are taken as they are).
    warn
        Warn (:class:`InputWarning`) when labels moved or were left out.

    Returns
    -------
    labels, report
        The labels to apply: those whose ROI is still under their id, plus those whose ROI
        moved, under the id of the ROI now at that place. ``report``: ``moved`` (old id →
        new id), ``unplaced`` (ids of labels whose ROI is nowhere now) and ``superseded``
        (labels of ROIs labelled again since under their new id: the newer label stands,
        without a warning), ``edited`` (ROIs reshaped under the same id, e.g. painted in
        napari, with no other ROI at their old place: the label stays, without a warning).
    """
    report: dict = {"moved": {}, "unplaced": [], "superseded": [], "edited": []}
    if ANCHOR not in journal_labels.columns or not len(journal_labels) or not has_geometry(table):
        return journal_labels, report
    ids = table["item_id"].astype(str).to_numpy()
    now = table[list(_GEOMETRY)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    row_of = pd.Index(ids)
    j_ids = journal_labels["item_id"].astype(str).to_numpy()
    then = parse_anchors(journal_labels[ANCHOR].tolist())
    anchored = np.isfinite(then).all(1)
    prefixes = {_prefix(i) for i in ids}
    ours = np.array([_prefix(i) in prefixes for i in j_ids], dtype=bool)
    rows = row_of.get_indexer(j_ids)
    here = rows >= 0
    valid = np.zeros(len(j_ids), dtype=bool)
    valid[here] = same_place(then[here], now[rows[here]])
    stale = anchored & ours & ~valid
    if not stale.any():
        return journal_labels, report
    taken = set(j_ids[~stale & here])  # ROIs a label was made for as they are now
    finite = np.flatnonzero(np.isfinite(now).all(1))
    tree = cKDTree(now[finite, :2])
    keep = ~stale
    new_ids = j_ids.copy()
    for k in np.flatnonzero(stale)[::-1]:  # newest label first: it wins a contested ROI
        target = _place_of(then[k], _prefix(j_ids[k]), ids, now, tree, finite)
        if target is None and here[k] and _edited(then[k], now[rows[k]]):
            report["edited"].append(str(j_ids[k]))  # its ROI, reshaped (painted) since
            target = str(j_ids[k])
        if target in taken:  # labelled again as it is now: that label stands
            report["superseded"].append(str(j_ids[k]))
            continue
        if target is None:
            report["unplaced"].append(str(j_ids[k]))
            continue
        taken.add(target)
        new_ids[k] = target
        keep[k] = True
        if target != j_ids[k]:
            report["moved"][str(j_ids[k])] = target
    out = journal_labels.assign(item_id=new_ids)[keep]
    # moved labels go last: on an id with a label of its own too, merge keeps the last
    moved = stale[keep]
    out = pd.concat([out[~moved], out[moved]], ignore_index=True)
    if warn and (report["moved"] or report["unplaced"]):
        _warn(report, len(report["moved"]) + len(report["unplaced"]))
    return out, report


def _edited(then: np.ndarray, now: np.ndarray) -> bool:
    """Whether an ROI under the same id is plausibly the same cell reshaped: its centroid
    within one radius (two touching cells are two radii apart), its size within 3×."""
    shift = math.hypot(then[0] - now[0], then[1] - now[1])
    radius = math.sqrt(max(then[2], now[2]) / math.pi)
    ratio = max(then[2], now[2]) / max(min(then[2], now[2]), 1)
    return bool(shift <= radius and ratio <= 3.0)


def _place_of(anchor: np.ndarray, prefix: str, ids: np.ndarray, now: np.ndarray,
              tree: cKDTree, finite: np.ndarray) -> str | None:
    """Id of the ROI of the same set at ``anchor``'s place (the nearest), or None.

    ``tree``: a k-d tree of the centroids ``now[finite, :2]``."""
    # the largest shift same_place allows for any partner (sizes up to 2× this one's)
    reach = max(_MIN_SHIFT, _SHIFT_OF_RADIUS * math.sqrt(_SIZE_FACTOR * anchor[2] / math.pi))
    candidates = finite[tree.query_ball_point(anchor[:2], reach)]
    if not len(candidates):
        return None
    hits = same_place(np.broadcast_to(anchor, (len(candidates), 3)), now[candidates])
    near = [r for r in candidates[hits] if _prefix(ids[r]) == prefix]
    if not near:
        return None
    best = min(near, key=lambda r: math.hypot(now[r, 0] - anchor[0], now[r, 1] - anchor[1]))
    return str(ids[best])


def _warn(report: dict, n_stale: int) -> None:
    moved, unplaced = report["moved"], report["unplaced"]
    example = next(iter(moved.items()), None)
    parts = []
    if moved:
        parts.append(f"{len(moved)} follow their cell to its new id (e.g. {example[0]} → "
                     f"{example[1]})")
    if unplaced:
        parts.append(f"{len(unplaced)} match no ROI now and are not applied (e.g. "
                     f"{unplaced[:3]})")
    warnings.warn(f"{n_stale} label(s) were made on ROIs that are no longer under the same "
                  f"id (segmentation run again?): {'; '.join(parts)}. The journal keeps them "
                  "as made (`cellcurator labels --history`)", InputWarning, stacklevel=3)
