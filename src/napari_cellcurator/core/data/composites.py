"""Composite snippets: intermediate proportions built from two *pure* movies.

We have no real mixed cultures with known proportions, only pure populations (proportion 0
and 1). A composite is an S×S snippet made of a k×k grid of blocks; each block is a real
ℓ-frame snippet of movie A or movie B, cut at the same *relative* time window (e.g. 40 % into
each movie) and inside the same field-of-view region (so composites respect the spatial
train/validation split). Its label is the fraction of blocks from B. Composites are **not** real
mixed cultures: cells of the two types never touch and each block is normalised on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: regions per side of the field of view used as split groups (relative coordinates)
DEFAULT_REGIONS = 3


@dataclass
class Source:
    """Where blocks of one pure population may come from.

    Attributes
    ----------
    movie
        Index of the movie in the snippet array's movie list.
    trange
        Frame range [t0, t1).
    box
        Region (y0, x0, y1, x1) in movie pixels.
    shape
        (T, Y, X) of the movie (for relative coordinates).
    """

    movie: int
    trange: tuple[int, int]
    box: tuple[int, int, int, int]
    shape: tuple[int, int, int]


def region_id(cy: np.ndarray, cx: np.ndarray, shape: tuple[int, ...],
              n_regions: int = DEFAULT_REGIONS) -> np.ndarray:
    """Region index (0 … n²−1) of pixel centres on an n×n grid of the relative field of view."""
    ry = np.clip((np.asarray(cy) / shape[-2] * n_regions).astype(int), 0, n_regions - 1)
    rx = np.clip((np.asarray(cx) / shape[-1] * n_regions).astype(int), 0, n_regions - 1)
    return ry * n_regions + rx


def _block_origin(src: Source, region: int, fp: int, n_regions: int,
                  rng: np.random.Generator) -> tuple[int, int]:
    """Top-left of a ``fp``-pixel block whose centre lies in ``region`` and inside src.box."""
    y0, x0, y1, x1 = src.box
    ry, rx = divmod(region, n_regions)
    h, w = src.shape[1], src.shape[2]
    lo_y = max(y0 + fp // 2, int(np.ceil(ry * h / n_regions)))
    hi_y = min(y1 - (fp - fp // 2), int(np.ceil((ry + 1) * h / n_regions)) - 1)
    lo_x = max(x0 + fp // 2, int(np.ceil(rx * w / n_regions)))
    hi_x = min(x1 - (fp - fp // 2), int(np.ceil((rx + 1) * w / n_regions)) - 1)
    if hi_y < lo_y:  # region thinner than a block: stay inside the box, nearest to the region
        lo_y = hi_y = int(np.clip((ry + 0.5) * h / n_regions, y0 + fp // 2, y1 - fp + fp // 2))
    if hi_x < lo_x:
        lo_x = hi_x = int(np.clip((rx + 0.5) * w / n_regions, x0 + fp // 2, x1 - fp + fp // 2))
    cy, cx = int(rng.integers(lo_y, hi_y + 1)), int(rng.integers(lo_x, hi_x + 1))
    return cy - fp // 2, cx - fp // 2


def _frame(src: Source, rel: float, length: int) -> int:
    t0, t1 = src.trange
    return t0 + int(round(rel * max(0, t1 - t0 - length)))


def make_composites(a: Source, b: Source, n: int, grid: int, length: int, size: int,
                    scale: int = 1, seed: int = 0, n_regions: int = DEFAULT_REGIONS,
                    regions: list[int] | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``n`` composites of a ``grid``×``grid`` block layout from pure sources a and b.

    The number of B blocks is uniform on 0 … k², so proportions 0, 1/k², …, 1 are equally
    frequent; composite ``i`` takes all its blocks from region ``regions[i % len(regions)]``.

    Returns
    -------
    blocks
        (n, k², 4) int: movie, t0, y0, x0 per block (see :class:`SnippetArray`).
    labels
        (n,) float: fraction of blocks from b.
    region
        (n,) int: the region each composite was cut from (its split group).
    """
    if size % grid:
        raise ValueError(f"tile size {size} is not divisible by the composite grid {grid}")
    rng = np.random.default_rng(seed)
    g2 = grid * grid
    fp = (size // grid) * scale
    regions = list(range(n_regions * n_regions)) if regions is None else list(regions)
    blocks = np.zeros((n, g2, 4), dtype=np.int64)
    labels = np.zeros(n, dtype=np.float64)
    region = np.zeros(n, dtype=np.int64)
    for i in range(n):
        reg = regions[i % len(regions)]
        n_b = int(rng.integers(0, g2 + 1))
        from_b = np.zeros(g2, dtype=bool)
        from_b[rng.permutation(g2)[:n_b]] = True
        rel = float(rng.random())
        for j in range(g2):
            src = b if from_b[j] else a
            y0, x0 = _block_origin(src, reg, fp, n_regions, rng)
            blocks[i, j] = (src.movie, _frame(src, rel, length), y0, x0)
        labels[i], region[i] = n_b / g2, reg
    return blocks, labels, region
