"""Train/validation sides of mixture composites: forced sides they inherit from their source
rows, and validation composites that share pixels with training snippets."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from napari_cellcurator.core.data.splits import stable_fraction
from napari_cellcurator.core.errors import InputWarning


def composite_side(own: str | None, source_a: str | None, source_b: str | None
                   ) -> tuple[str | None, bool]:
    """Forced side of a composite row and whether its sides conflict.

    Parameters
    ----------
    own
        The composite row's own ``split`` cell (``"train"``, ``"val"`` or None).
    source_a, source_b
        The ``split`` cells of its two source rows.

    Returns
    -------
    side, conflict
        ``"val"`` when any of them is ``val`` (nothing of a held-out movie is trained on),
        else ``"train"`` when any is ``train``, else None (the hash split by region);
        ``conflict`` is True when ``val`` and ``train`` were both asked for.
    """
    sides = {s for s in (own, source_a, source_b) if s}
    if "val" in sides:
        return "val", "train" in sides
    return ("train" if sides else None), False


def warn_split_conflicts(csv, rows: list[int]) -> None:
    """One warning naming the composite rows put on the validation side by a conflict."""
    if rows:
        warnings.warn(f"{csv}: composite row(s) {rows} mix a 'val' and a 'train' row; they "
                      "are validation composites (never trained on), and those sharing "
                      "pixels with training snippets are left out", InputWarning,
                      stacklevel=3)


def _on_val_side(groups: pd.Series, val_fraction: float) -> np.ndarray:
    return np.array([stable_fraction(str(g)) < val_fraction for g in groups], dtype=bool)


def _training_pixels(shapes: list[tuple[int, ...]], blocks: np.ndarray, sides: np.ndarray
                     ) -> list[np.ndarray]:
    """Per movie, a (Y, X) mask of the pixels training snippets read (any frame)."""
    masks = [np.zeros(s[-2:], dtype=bool) for s in shapes]
    for item_blocks, side in zip(blocks, sides, strict=True):
        for m, _, y0, x0 in item_blocks:
            if m >= 0:
                masks[m][y0:y0 + side, x0:x0 + side] = True
    return masks


def _touches(masks: list[np.ndarray], item_blocks: np.ndarray, side: int) -> bool:
    return any(m >= 0 and masks[m][y0:y0 + side, x0:x0 + side].any()
               for m, _, y0, x0 in item_blocks)


def mark_crossing_composites(table: pd.DataFrame, blocks: np.ndarray, grid: np.ndarray,
                             shapes: list[tuple[int, ...]], fp: int,
                             val_fraction: float) -> np.ndarray:
    """``crosses_split`` with validation items (composites, and tiles) that share pixels
    with training snippets also marked.

    Parameters
    ----------
    table
        Items with ``group``, ``kind`` and ``crosses_split`` (tiles already checked).
    blocks, grid
        The snippet array's (N, G, 4) blocks (movie, t0, y0, x0) and blocks per side k.
    shapes
        (T, Y, X) of each movie.
    fp
        Tile footprint in movie pixels; a block of a k×k composite is ``fp // k`` of it.
    val_fraction
        Fraction of groups the hash split holds out.

    Returns
    -------
    np.ndarray
        (N,) bool: the tiles' marks, plus every validation item one of whose blocks
        overlaps (in any frame) a pixel read by a training tile or composite.
    """
    crossing = table["crosses_split"].fillna(False).to_numpy(dtype=bool).copy()
    val = _on_val_side(table["group"], val_fraction)
    sides = np.array([(fp // int(k)) if k > 1 else fp for k in grid], dtype=np.int64)
    train = ~val & ~crossing
    masks = _training_pixels(shapes, blocks[train], sides[train])
    # every validation item: composites, and tiles too (a training composite of a forced
    # 'train' row may take blocks from an unsplit row's validation regions)
    for i in np.flatnonzero(val & ~crossing):
        crossing[i] = _touches(masks, blocks[i], int(sides[i]))
    return crossing
