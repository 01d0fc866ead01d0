"""Train/validation splits that stay stable as items and labels are added."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd


def stable_fraction(key: str, salt: str = "cellcurator") -> float:
    """A number in [0, 1) fixed by ``key`` alone (same on every machine and run)."""
    digest = hashlib.blake2b(f"{salt}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def hash_split(
    table: pd.DataFrame, val_fraction: float = 0.2, group_column: str | None = "group"
) -> tuple[np.ndarray, np.ndarray]:
    """Split rows into train/validation by a hash of the item id (or of its group).

    Items of one group (e.g. one smear image, one movie region) land on the same side, so the
    validation score estimates performance on new images, not on neighbours of training cells.
    Adding items never moves existing ones to the other side.

    Returns
    -------
    train_idx, val_idx
        Row positions.
    """
    if group_column and group_column in table.columns:
        keys = table[group_column].astype(str)
    else:
        keys = table["item_id"].astype(str)
    frac = np.array([stable_fraction(k) for k in keys])
    val = frac < val_fraction
    if val.all() or not val.any():  # few groups, all on one side: a deterministic fallback
        val = _fallback_split(keys.to_numpy(), table["item_id"].astype(str).to_numpy(),
                              val_fraction)
    return np.flatnonzero(~val), np.flatnonzero(val)


def training_split(table: pd.DataFrame, val_fraction: float = 0.2
                   ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`hash_split`, leaving out items a reader marked ``crosses_split`` (they share
    pixels with items of the other side: mixture validation tiles next to a training
    region)."""
    train, val = hash_split(table, val_fraction)
    if "crosses_split" not in table.columns:
        return train, val
    crossing = table["crosses_split"].fillna(False).to_numpy(dtype=bool)
    return train[~crossing[train]], val[~crossing[val]]


def _fallback_split(keys: np.ndarray, ids: np.ndarray, val_fraction: float) -> np.ndarray:
    """Validation mask when the hash put every group on one side: whole groups, lowest hash
    first, until ``val_fraction`` of the rows (one group always trains); a single group is
    split by item id (no other way to validate)."""
    n = len(keys)
    val = np.zeros(n, dtype=bool)
    if n < 2:
        return val
    n_val = max(1, int(round(n * val_fraction)))
    groups = sorted(set(keys), key=stable_fraction)
    if len(groups) > 1:
        for group in groups[:-1]:
            if val.sum() >= n_val:
                break
            val |= keys == group
        return val
    order = np.argsort([stable_fraction(i) for i in ids])
    val[order[:n_val]] = True
    return val


def data_hash(table: pd.DataFrame) -> str:
    """A short hash of which items, with which labels, a model was trained on."""
    h = hashlib.sha256()
    ids, labels = table["item_id"].astype(str), table["label"].astype(str)
    for item_id, label in zip(ids, labels, strict=True):
        h.update(f"{item_id}\t{label}\n".encode())
    return h.hexdigest()[:16]
