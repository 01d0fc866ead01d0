"""Calcium-imaging ROI candidates from any format → the cellness :class:`ItemSet`.

Every cellness reader (Suite2p, CaImAn, Allen JSON, PCA/ICA on a movie, the simulator) fills a
:class:`RoiSet`; :func:`roiset_to_items` turns it into patches + traces the same way for all of
them, so a model trained on one format (or on simulated data) reads the others identically.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from napari_cellcurator.core.data.roi_images import DEFAULT_PATCH, footprint_geometry, roi_patches
from napari_cellcurator.core.data.traces import (
    NEUROPIL_COEF,
    fill_nan,
    neuropil_subtract,
    resample,
)
from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.io.names import readable

CLASSES = ["not_cell", "cell"]
Footprint = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass
class RoiSet:
    """ROI candidates of one recording (or one file of candidates).

    Attributes
    ----------
    footprints
        ``(ypix, xpix, lam)`` per ROI, field-of-view pixel coordinates and weights.
    traces
        (N, T) fluorescence (raw F, projection of the movie, or CaImAn C).
    fov_shape
        (Ly, Lx) of the field of view.
    path
        Where the ROIs came from (named in errors, written back to).
    fmt
        ``suite2p``, ``caiman``, ``allen``, ``pcaica``...
    labels
        Per ROI ``"cell"``/``"not_cell"``/None, or None when unlabelled.
    neuropil
        (N, T) neuropil traces (Suite2p ``Fneu``) or None.
    mean_image
        Mean image of the recording (display and optional context channel) or None.
    columns
        Extra table columns (length N each).
    groups
        Per ROI split group (rows of one group stay on one side of train/validation).
    meta
        Extra display / write-back information.
    """

    footprints: list[Footprint]
    traces: np.ndarray
    fov_shape: tuple[int, int]
    path: Path
    fmt: str
    labels: list[str | None] | None = None
    neuropil: np.ndarray | None = None
    mean_image: np.ndarray | None = None
    columns: dict[str, Any] = field(default_factory=dict)
    groups: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.footprints)
        traces = np.asarray(self.traces)
        if traces.ndim != 2 or traces.shape[0] != n:
            raise InputError(self.path, f"{n} ROI footprints but traces of shape {traces.shape}",
                             "one trace per ROI")
        if self.neuropil is not None and np.shape(self.neuropil) != traces.shape:
            raise InputError(self.path, f"neuropil traces {np.shape(self.neuropil)} do not match "
                             f"traces {traces.shape}")
        if self.labels is not None and len(self.labels) != n:
            raise InputError(self.path, f"{len(self.labels)} labels for {n} ROIs")


def label_name(value: Any) -> str | None:
    """Map 1/0/True/'cell'/'not_cell'/None to a class name (None = unlabelled)."""
    if value is None or (isinstance(value, float | np.floating) and np.isnan(value)):
        return None  # numpy float32 NaN too (an NWB label column of float32)
    if isinstance(value, str):
        v = value.strip().lower().replace("-", "_").replace(" ", "_")
        if v in ("cell", "1", "true", "yes"):
            return "cell"
        if v in ("not_cell", "notcell", "non_cell", "0", "false", "no"):
            return "not_cell"
        return None
    return "cell" if float(value) >= 0.5 else "not_cell"


def roiset_to_items(rois: RoiSet, extra: dict | None = None) -> ItemSet:
    """Patches, traces and the item table of a :class:`RoiSet`.

    ``extra`` (ReadOptions.extra) understands ``patch_size`` (default 32), ``neuropil_coef``
    (used when neuropil traces exist; default the one the pipeline ran with, e.g. Suite2p's
    ``neucoeff``, else 0.7), ``trace_length`` (resample to this length;
    default: keep) and ``context`` (``"mean"`` adds the mean image as a third channel).
    """
    extra = dict(extra or {})
    size = int(extra.get("patch_size") or DEFAULT_PATCH)
    coef = next((float(c) for c in (extra.get("neuropil_coef"), rois.meta.get("neuropil_coef"))
                 if c is not None), NEUROPIL_COEF)
    n = len(rois.footprints)
    context = [rois.mean_image] if extra.get("context") == "mean" else []
    images = roi_patches(rois.footprints, size, context=context) if n else np.zeros(
        (0, 2 + len(context), size, size), np.float32)
    traces = neuropil_subtract(np.asarray(rois.traces, np.float32), rois.neuropil, coef)
    traces = finite_traces(traces, rois.path)
    if extra.get("trace_length"):
        traces = resample(traces, int(extra["trace_length"])) if n else np.zeros(
            (0, int(extra["trace_length"])), np.float32)
    geometry = footprint_geometry(rois.footprints)  # what labels' anchors are compared with
    centres = geometry[:, :2]
    stem = rois.meta.get("id_prefix") or rois.path.stem or rois.path.name
    table = pd.DataFrame({
        "item_id": [f"{stem}:{i}" for i in range(n)],
        "source": str(rois.path),
        "label": rois.labels if rois.labels is not None else [None] * n,
        "roi_index": np.arange(n),
        "y": centres[:, 0], "x": centres[:, 1],
        "npix": geometry[:, 2].astype(np.int64),
    })
    table["label"] = table["label"].astype(object)
    if rois.groups is not None:
        table["group"] = rois.groups
    else:  # neighbouring ROIs share a 64-px tile so validation ROIs are spatially apart
        table["group"] = [f"{rois.path}:{int(y) // 64}:{int(x) // 64}" if np.isfinite(y) else
                          str(rois.path) for y, x in centres]
    for key, values in rois.columns.items():
        table[key] = values
    meta = {"path": str(rois.path), "format": rois.fmt, "classes": list(CLASSES),
            "fov_shape": tuple(int(v) for v in rois.fov_shape), "footprints": rois.footprints,
            "mean_image": rois.mean_image, **rois.meta}
    return ItemSet(table, {"image": images, "trace": traces.astype(np.float32)}, meta)


def finite_traces(traces: np.ndarray, path: Path) -> np.ndarray:
    """``traces`` (N, T) with NaN/inf interpolated along time (all-NaN rows → 0), with one
    warning naming ``path`` and how many ROIs had them.

    Every ROI format passes here, so a failed extraction (NaN in ``F`` or ``Fneu``) is
    never scored silently: the model would see a flat trace and call the ROI from its
    footprint alone.
    """
    bad = ~np.isfinite(traces)
    if traces.size == 0 or not bad.any():
        return traces
    rows = bad.any(axis=1)
    whole = int(bad.all(axis=1).sum())
    note = (f", {whole} of them entirely (read as flat: their footprint alone decides)"
            if whole else "")
    warnings.warn(f"{readable(path)}: {int(rows.sum())} of {len(traces)} ROI traces have "
                  f"NaN/inf values{note}; they are interpolated over time", InputWarning,
                  stacklevel=3)
    return fill_nan(traces, np.float32)


def footprints_to_labels(items: ItemSet) -> np.ndarray:
    """An int32 label image of the items' footprints: item at row k → value k + 1.

    Overlapping pixels take the ROI with the larger weight. Works on a subset (uses the
    ``roi_index`` column) of a single recording; for Allen-style files whose ROIs come from
    different fields of view, the footprints are drawn into one frame of the largest shape.
    """
    meta = items.meta
    if "footprints" not in meta:
        raise InputError(meta.get("path"), "item set carries no footprints (read several "
                         "recordings at once? draw them one recording at a time)")
    shapes = meta.get("fov_shapes") or [meta["fov_shape"]]
    ly = max(int(s[0]) for s in shapes)
    lx = max(int(s[1]) for s in shapes)
    labels = np.zeros((ly, lx), dtype=np.int32)
    best = np.zeros((ly, lx), dtype=np.float32)
    for k, idx in enumerate(items.table["roi_index"].to_numpy()):
        ypix, xpix, lam = meta["footprints"][int(idx)]
        ypix = np.asarray(ypix, np.int64)
        xpix = np.asarray(xpix, np.int64)
        ok = (ypix >= 0) & (ypix < ly) & (xpix >= 0) & (xpix < lx)
        w = np.asarray(lam, np.float32)[ok] if lam is not None else np.ones(ok.sum(), np.float32)
        w = w / (np.abs(w).max() if len(w) and np.abs(w).max() > 0 else 1.0)
        yy, xx = ypix[ok], xpix[ok]
        win = w >= best[yy, xx]
        labels[yy[win], xx[win]] = k + 1
        best[yy[win], xx[win]] = w[win]
    return labels
