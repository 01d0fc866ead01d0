"""npe2 writer: a Points or Labels layer's ``features`` (plus point coordinates) → CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def write_features_csv(path: str, data: Any, meta: dict) -> list[str]:
    """Write the layer's features, one row per point/item, to ``path`` (CSV).

    Points layers get their coordinates as ``axis-<i>`` columns (``y``, ``x`` for 2D).
    """
    features = meta.get("features")
    table = pd.DataFrame(features) if features is not None else pd.DataFrame()
    coords = None if data is None else np.asarray(data)
    if coords is not None and coords.ndim == 2 and (table.empty or len(coords) == len(table)):
        names = ["y", "x"] if coords.shape[1] == 2 else [f"axis-{i}" for i in
                                                          range(coords.shape[1])]
        pos = pd.DataFrame(coords, columns=names)
        table = pd.concat([table.reset_index(drop=True), pos], axis=1) if len(table) else pos
    out = Path(path)
    if out.suffix.lower() != ".csv":
        out = out.with_suffix(".csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    return [str(out)]


def write_labels_features_csv(path: str, data: Any, meta: dict) -> list[str]:
    """Labels layer: only the features table (footprints stay in the source data)."""
    return write_features_csv(path, None, meta)
