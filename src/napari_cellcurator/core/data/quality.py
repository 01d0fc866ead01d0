"""Quality control of single-cell crops (seed paper): defocus, cells cut by the border, empty.

Thresholds are relative to the data set's own median (sharpness and contrast depend on the
microscope), so they transfer between instruments without tuning.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from napari_cellcurator.core.errors import InputWarning
from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.io.names import readable

QC_COLUMNS = ("qc_sharpness", "qc_contrast", "qc_outside")
#: column of items read with every cell kept (prediction, curation): the reasons the quality
#: filter would drop the item, comma-separated; "" for a good crop
QC_FLAG = "qc_flag"
#: read option: keep the items the quality filter would drop, marked in ``QC_FLAG``
#: (``ReadOptions.every_item``)
QC_KEEP = "qc_keep"


@dataclass
class QCOptions:
    """What :func:`apply_qc` drops.

    Attributes
    ----------
    blur_ratio
        Defocused: variance of the Laplacian below this fraction of the median crop's.
    empty_ratio
        Empty: relative contrast (std / mean of the grey crop) below this fraction of the median.
    max_outside
        Cut by the image border: more than this fraction of the crop lay outside the image
        (0.3 of a 64 px crop = the centre within 13 px of the edge, a third of an RBC missing).
    min_items
        Relative thresholds need a population; smaller sets only get the border check.
    """

    blur_ratio: float = 0.2
    empty_ratio: float = 0.2
    max_outside: float = 0.3
    min_items: int = 20


def _grey(crops: np.ndarray) -> np.ndarray:
    return np.asarray(crops, dtype=np.float32).mean(axis=1)


#: crops whose quality is measured at once: the float copies stay small for 100,000 crops
QUALITY_BATCH = 4096


def crop_quality(crops: np.ndarray, outside: np.ndarray) -> dict[str, np.ndarray]:
    """Per-crop ``qc_sharpness`` (variance of the Laplacian of the brightness-normalised grey
    crop), ``qc_contrast`` (std / mean) and ``qc_outside`` (fraction outside the image)."""
    parts = [_quality(crops[s:s + QUALITY_BATCH])
             for s in range(0, max(len(crops), 1), QUALITY_BATCH)]
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    out["qc_outside"] = np.asarray(outside, dtype=np.float32)
    return out


def _quality(crops: np.ndarray) -> dict[str, np.ndarray]:
    from scipy import ndimage

    grey = _grey(crops)
    if len(grey) == 0:
        return {c: np.zeros(0, dtype=np.float32) for c in QC_COLUMNS[:2]}
    mean = np.abs(grey.mean(axis=(1, 2))) + 1e-6
    norm = grey / mean[:, None, None]
    lap = np.stack([ndimage.laplace(g) for g in norm])
    inner = lap[:, 1:-1, 1:-1]  # the reflect-padded rim is no evidence of focus
    return {"qc_sharpness": inner.var(axis=(1, 2)).astype(np.float32),
            "qc_contrast": (grey.std(axis=(1, 2)) / mean).astype(np.float32)}


def qc_flags(table, opts: QCOptions) -> dict[str, np.ndarray]:
    """Boolean flags ``defocus``, ``border``, ``empty`` from the ``qc_*`` columns."""
    n = len(table)
    flags = {"border": table["qc_outside"].to_numpy() > opts.max_outside}
    if n >= opts.min_items:
        sharp = table["qc_sharpness"].to_numpy()
        contrast = table["qc_contrast"].to_numpy()
        flags["empty"] = contrast < opts.empty_ratio * np.median(contrast)
        flags["defocus"] = (sharp < opts.blur_ratio * np.median(sharp)) & ~flags["empty"]
    else:
        flags["empty"] = flags["defocus"] = np.zeros(n, dtype=bool)
    return flags


def apply_qc(items: ItemSet, qc: QCOptions | bool | dict | None, keep: bool = False
             ) -> ItemSet:
    """Count (always) and drop (when ``qc`` is truthy) low-quality crops.

    ``meta["qc"]`` records ``{"applied", "n_in", "n_out", "dropped": {reason: count},
    "flagged": {reason: count}}``. ``qc`` may be a :class:`QCOptions`, a dict of its fields
    (JSON read options), True (defaults) or False/None (count only). ``keep`` (prediction and
    curation: every cell is scored and shown) marks what ``qc`` would drop in a ``qc_flag``
    column (the reasons, comma-separated; "" for a good crop) instead of dropping it;
    training and evaluation skip the marked items (:func:`passes_qc`).
    """
    if not all(c in items.table.columns for c in QC_COLUMNS):
        return items
    opts = QCOptions(**qc) if isinstance(qc, dict) else (qc if isinstance(qc, QCOptions)
                                                         else QCOptions())
    flags = qc_flags(items.table, opts)
    bad = np.zeros(len(items), dtype=bool)
    for f in flags.values():
        bad |= f
    report = {"applied": bool(qc) and not keep, "n_in": len(items),
              "flagged": {k: int(v.sum()) for k, v in flags.items()}}
    if qc and keep:
        items.table[QC_FLAG] = [",".join(k for k, v in flags.items() if v[i])
                                  for i in range(len(items))]
        if bad.any():
            warnings.warn(f"{readable(items.meta.get('path', ''))}: {int(bad.sum())} of "
                          f"{len(items)} cells fail the quality filter ({_reasons(flags)}): "
                          "they are kept, marked in column qc_flag, and not trained on",
                          InputWarning,
                          stacklevel=3)
    elif qc:
        items = items.subset(np.flatnonzero(~bad))
        report["dropped"] = report["flagged"]
    report["n_out"] = len(items)
    items.meta["qc"] = report
    if report["n_out"] < report["n_in"]:  # cells the user annotated must not vanish unsaid
        warnings.warn(f"{readable(items.meta.get('path', ''))}: the quality filter dropped "
                      f"{report['n_in'] - report['n_out']} of {report['n_in']} cells "
                      f"({_reasons(flags)}); read option qc=False keeps them", InputWarning,
                      stacklevel=3)
    return items


def passes_qc(table) -> np.ndarray:
    """Boolean per row: True unless the item is marked in a ``qc_flag`` column (tables read
    with every cell kept); True everywhere for tables without the column."""
    if QC_FLAG not in table.columns:
        return np.ones(len(table), dtype=bool)
    flag = table[QC_FLAG]
    return (flag.isna() | (flag.astype(str) == "")).to_numpy()


def _reasons(flags: dict[str, np.ndarray]) -> str:
    return ", ".join(f"{k} {int(v.sum())}" for k, v in flags.items() if v.any())
