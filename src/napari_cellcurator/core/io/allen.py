"""The Allen Institute ROI-classifier JSON: a list of ROI dicts (sparse footprint + trace)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.items import EXPERT, LABEL_ORIGIN
from napari_cellcurator.core.io.rois import RoiSet, label_name

REQUIRED_KEYS = ("coo_rows", "coo_cols", "coo_data", "image_shape", "trace")
META_KEYS = ("experiment_id", "roi_id", "rig", "depth", "full_genotype", "targeted_structure")


def looks_like_allen(path: Path) -> bool:
    """A .json file (the content is checked by :func:`read_allen_json`)."""
    return Path(path).suffix.lower() == ".json"


def _footprint(roi: dict, i: int, path: Path) -> tuple:
    rows = np.asarray(roi["coo_rows"], dtype=np.int64)
    cols = np.asarray(roi["coo_cols"], dtype=np.int64)
    data = np.asarray(roi["coo_data"], dtype=np.float32)
    if not (rows.shape == cols.shape == data.shape) or rows.ndim != 1:
        raise InputError(path, f"ROI {i}: coo_rows/coo_cols/coo_data lengths differ")
    shape = roi["image_shape"]
    rows, cols = _unwrap_uint8(rows, shape[0]), _unwrap_uint8(cols, shape[1])
    if len(rows) and (rows.min() < 0 or cols.min() < 0 or rows.max() >= shape[0]
                      or cols.max() >= shape[1]):
        raise InputError(path, f"ROI {i}: footprint pixels fall outside image_shape {shape}")
    return rows, cols, data


def _unwrap_uint8(coords: np.ndarray, extent: int) -> np.ndarray:
    """Undo coordinates wrapped modulo 256 (seen in the published fixtures: every coordinate
    is < 256 in 512-px frames and ROIs crossing 256 come out split into 0.. and ..255)."""
    if len(coords) == 0 or coords.max() > 255 or extent <= 256:
        return coords
    if coords.max() - coords.min() > 128 and coords.max() >= 192 and coords.min() < 64:
        return np.where(coords < 128, coords + 256, coords)
    return coords


def read_allen_json(path: Path, extra: dict | None = None) -> RoiSet:
    """Read an Allen-style ROI JSON (``coo_rows``/``coo_cols``/``coo_data`` in ``image_shape``,
    ``trace``, optional ``label`` 0/1 and metadata; metadata may be flat or under ``metadata``).
    """
    path = Path(path)
    from napari_cellcurator.core.io.jsonfiles import read_json

    data = read_json(path, "Allen ROI JSON")
    if isinstance(data, dict) and isinstance(data.get("rois"), list):
        data = data["rois"]
    if not isinstance(data, list) or not data or not all(isinstance(r, dict) for r in data):
        raise InputError(path, "is not a list of ROI objects", "Allen ROI JSON")
    footprints, traces, labels, shapes = [], [], [], []
    columns: dict[str, list] = {k: [] for k in META_KEYS}
    for i, roi in enumerate(data):
        missing = [k for k in REQUIRED_KEYS if k not in roi]
        if missing:
            raise InputError(path, f"ROI {i} lacks {missing}", f"keys {list(REQUIRED_KEYS)}")
        footprints.append(_footprint(roi, i, path))
        traces.append(np.asarray(roi["trace"], dtype=np.float32))
        labels.append(label_name(roi.get("label")))
        shapes.append(tuple(int(v) for v in roi["image_shape"]))
        meta = {**roi, **(roi.get("metadata") or {})}
        for k in META_KEYS:
            columns[k].append(meta.get(k))
    lengths = {len(t) for t in traces}
    if len(lengths) > 1:
        raise InputError(path, f"traces have different lengths {sorted(lengths)}",
                         "one length for all ROIs of a file")
    fov = (max(s[0] for s in shapes), max(s[1] for s in shapes))
    exp = columns["experiment_id"]
    groups = [str(e) if e is not None else f"{path}:{i}" for i, e in enumerate(exp)]
    columns = {k: v for k, v in columns.items() if any(x is not None for x in v)}
    # annotators' labels, not a pipeline classifier's: a model's prediction must not replace
    # them in the curated result (see core.curation)
    columns[LABEL_ORIGIN] = [EXPERT if lab is not None else None for lab in labels]
    return RoiSet(footprints, np.stack(traces), fov, path, "allen",
                  labels=labels, columns=columns, groups=groups,
                  meta={"fov_shapes": shapes})
