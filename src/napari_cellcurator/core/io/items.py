"""The canonical item table every reader returns and every task consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from napari_cellcurator.core.errors import InputError

#: Columns every item table has. Readers may add task-specific columns.
BASE_COLUMNS = ("item_id", "source", "label")
#: Optional column: who gave a row's file ``label``. ``EXPERT`` marks annotators' labels in a
#: format whose labels are otherwise a pipeline classifier's output (Allen ROI JSON among
#: cellness formats); the curated result never lets a model's prediction replace them.
LABEL_ORIGIN, EXPERT = "label_origin", "expert"
#: Optional column: an item's id as versions before December 2026 gave it (point-label
#: files: ``<frame>:<line>``); journal labels made under it still apply (core.triage)
FORMER_ID = "former_item_id"


@dataclass
class ItemSet:
    """Items of one task: a table plus per-item input arrays aligned with its rows.

    Attributes
    ----------
    table
        One row per item. Always has ``item_id`` (unique str), ``source`` (the file it came
        from) and ``label`` (class name as str, a float proportion for mixture, or None when
        unlabelled). Readers add task columns (positions, bounding boxes, frame ranges...).
    arrays
        Input arrays keyed by model input name (``"image"``, ``"trace"``, ``"frames"``), first
        axis = items in table order. Values are numpy arrays or lazy arrays (dask) that
        support ``arr[index_array]`` and ``.shape``.
    meta
        Extra information for display and write-back (field-of-view images, movie handles,
        channel names, class names found in the files...). Must not be needed for training.
    """

    table: pd.DataFrame
    arrays: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [c for c in BASE_COLUMNS if c not in self.table.columns]
        if missing:
            raise InputError(None, f"item table lacks columns {missing}")
        self.table = self.table.reset_index(drop=True)
        self.table["item_id"] = self.table["item_id"].astype(str)
        n = len(self.table)
        for key, arr in self.arrays.items():
            if arr.shape[0] != n:
                raise InputError(
                    self.meta.get("path"),
                    f"input '{key}' has {arr.shape[0]} items but the table has {n}",
                )
        if self.table["item_id"].duplicated().any():
            dup = self.table.loc[self.table["item_id"].duplicated(), "item_id"].iloc[0]
            raise InputError(self.meta.get("path"), f"duplicate item id {dup!r}")

    def __len__(self) -> int:
        return len(self.table)

    def subset(self, index: np.ndarray | list[int]) -> ItemSet:
        """Items at the given row positions (arrays stay lazy where they were)."""
        index = np.asarray(index, dtype=np.int64)
        arrays = {k: v[index] if len(index) else v[:0] for k, v in self.arrays.items()}
        return ItemSet(self.table.iloc[index].reset_index(drop=True), arrays, dict(self.meta))

    def load(self, index: np.ndarray, key: str) -> np.ndarray:
        """Materialise ``arrays[key]`` at row positions ``index`` as a numpy array."""
        arr = self.arrays[key]
        index = np.asarray(index, dtype=np.int64)
        out = arr[index] if not hasattr(arr, "compute") else arr[index].compute()
        return np.asarray(out)

    @property
    def labelled(self) -> np.ndarray:
        """Boolean mask of rows that carry a label."""
        return self.table["label"].notna().to_numpy()


def current_item_id(table: pd.DataFrame, item_id: str) -> str | None:
    """The id of the item ``item_id`` names — its current id or a former one (ids of older
    versions, ``FORMER_ID``) — or None when no item has it."""
    ids = table["item_id"].astype(str)
    if (ids == str(item_id)).any():
        return str(item_id)
    if FORMER_ID in table.columns:
        hits = ids[table[FORMER_ID].astype(str) == str(item_id)]
        if len(hits) == 1:  # several: an old id of items of several data sets, no longer one
            return str(hits.iloc[0])
    return None


def distinct_path_names(paths: list[Path]) -> list[str]:
    """The shortest trailing parts that tell ``paths`` apart (``exp1``, ``exp2``; ``a/data``,
    ``b/data`` when both are called ``data``)."""
    parts = [Path(p).expanduser().resolve().parts for p in paths]
    for depth in range(1, max(len(p) for p in parts) + 1):
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    raise InputError(None, "the same data path is given twice", "each data path once")


def ids_distinct_across_paths(sets: list[ItemSet], paths: list[Path]) -> list[ItemSet]:
    """Item sets of several data paths whose ids clash (two experiments exported with the
    same file names: IDEAS numbers every export's cells from 0) get their path's name in
    front of every id (``exp2/G1/7_Ch3.ome.tif``); the bare id is kept as ``FORMER_ID``.
    Sets whose ids are already distinct are returned as they are (ids never change with
    the other paths read beside them unless they must)."""
    seen: set[str] = set()
    for s in sets:
        ids = set(s.table["item_id"].astype(str))
        if seen & ids:
            break
        seen |= ids
    else:
        return sets
    out = []
    for s, name in zip(sets, distinct_path_names(paths), strict=True):
        table = s.table.copy()
        bare = table["item_id"].astype(str)
        if FORMER_ID not in table.columns:
            table[FORMER_ID] = bare.to_numpy()
        table["item_id"] = (f"{name}/" + bare).to_numpy()
        out.append(ItemSet(table, s.arrays, s.meta))
    return out


def concat_itemsets(sets: list[ItemSet]) -> ItemSet:
    """Concatenate item sets read from several paths (same input keys and shapes)."""
    if len(sets) == 1:
        return sets[0]
    keys = set(sets[0].arrays)
    for s in sets[1:]:
        if set(s.arrays) != keys:
            raise InputError(s.meta.get("path"), "inputs differ from the other data paths")
    table = pd.concat([s.table for s in sets], ignore_index=True)
    arrays = {}
    for k in keys:
        parts = [s.arrays[k] for s in sets]
        shapes = {p.shape[1:] for p in parts}
        if len(shapes) > 1:
            hint = ("one trace length: `--read-option trace_length=N` resamples every "
                    "recording's traces to N frames" if k == "trace" else None)
            raise InputError(None, f"input '{k}' has different shapes across data paths: "
                             f"{shapes}", hint)
        if any(hasattr(p, "compute") for p in parts):
            import dask.array as da

            arrays[k] = da.concatenate([da.asarray(p) for p in parts], axis=0)
        else:
            arrays[k] = np.concatenate(parts, axis=0)
    meta = {"parts": [s.meta for s in sets]}
    return ItemSet(table, arrays, meta)
