"""Time-lapse snippets: ℓ frames × S×S tiles, read lazily from movies, normalised per snippet.

A snippet is a k×k grid of blocks; a real snippet is the 1×1 case (one block = the whole tile
of one movie). Composites (k > 1, blocks from two pure movies, see
:mod:`napari_cellcurator.core.data.composites`) use the same machinery, so training on real and
composite snippets reads data the same way.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from napari_cellcurator.core.errors import InputWarning
from napari_cellcurator.core.io.movies import Movie
from napari_cellcurator.core.io.names import readable

DEFAULT_LENGTH = 5
DEFAULT_TILE = 64


def robust_normalise(x: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    """Subtract the median and divide by a robust spread (IQR / 1.349) of the whole array.

    Applied per snippet (all frames together) so the model cannot use bit depth, gain or
    illumination level, only texture and motion. Clipped to ±8 robust SDs.
    """
    x = np.asarray(x, dtype=np.float32)
    q25, med, q75 = np.percentile(x, [25, 50, 75])
    spread = (q75 - q25) / 1.349
    if spread < eps * max(1.0, abs(float(med))):  # flat background: fall back to the SD
        spread = float(x.std())
    y = (x - med) / max(spread, eps)
    return np.clip(y, -8.0, 8.0, out=y)


def finite_pixels(data: np.ndarray) -> np.ndarray:
    """``data`` with NaN replaced by its finite median and ±inf by its finite extremes (all
    zeros when nothing is finite).

    The median, not celltype's 0, because a movie's raw level is arbitrary: 0 next to pixels
    of 1000 would be a dark edge the model reads as texture, while the median is 0 after
    :func:`robust_normalise` (the reader warns, once per movie, how many pixels this hits).
    """
    bad = ~np.isfinite(data)
    if not bad.any():
        return data
    finite = data[~bad]
    if finite.size == 0:
        return np.zeros_like(data)
    return np.nan_to_num(data, nan=float(np.median(finite)), posinf=float(finite.max()),
                         neginf=float(finite.min()))


def tile_starts(extent: tuple[int, int], footprint: int, stride: int) -> np.ndarray:
    """Starts of windows of ``footprint`` on ``[extent[0], extent[1])`` every ``stride``."""
    lo, hi = extent
    if hi - lo < footprint:
        return np.zeros(0, dtype=np.int64)
    return np.arange(lo, hi - footprint + 1, max(1, stride), dtype=np.int64)


def grid_positions(trange: tuple[int, int], yrange: tuple[int, int], xrange: tuple[int, int],
                   length: int, footprint: int, stride: int, t_stride: int) -> np.ndarray:
    """All (t0, y0, x0) snippet origins inside the given frame range and region, (N, 3)."""
    ts = tile_starts(trange, length, t_stride)
    ys = tile_starts(yrange, footprint, stride)
    xs = tile_starts(xrange, footprint, stride)
    if not (len(ts) and len(ys) and len(xs)):
        return np.zeros((0, 3), dtype=np.int64)
    grid = np.stack(np.meshgrid(ts, ys, xs, indexing="ij"), axis=-1)
    return grid.reshape(-1, 3)


class SnippetArray:
    """Lazy (N, ℓ, S, S) float32 array of normalised snippets.

    Indexing with an index array returns another lazy :class:`SnippetArray` (so
    ``ItemSet.subset`` stays cheap); :meth:`compute` / ``np.asarray`` reads only the frames and
    regions of the selected snippets.

    Parameters
    ----------
    movies
        The movies blocks refer to (by position).
    blocks
        (N, G, 4) int: ``movie, t0, y0, x0`` of each block (movie pixels, top-left);
        ``G = kmax²``; unused blocks have movie −1.
    grid
        (N,) int: blocks per side k of each snippet (1 = a real snippet).
    length, size
        ℓ frames, S model pixels per side.
    scale
        Movie pixels per model pixel (2 = half resolution, mean of 2×2 pixels).
    """

    dtype = np.dtype(np.float32)

    def __init__(self, movies: Sequence[Movie], blocks: np.ndarray, grid: np.ndarray,
                 length: int = DEFAULT_LENGTH, size: int = DEFAULT_TILE, scale: int = 1):
        self.movies = list(movies)
        self.grid = np.asarray(grid, dtype=np.int64)
        blocks = np.asarray(blocks, dtype=np.int64)
        # no snippets (an empty subset): -1 cannot be inferred from size 0, keep G when known
        per_snippet = blocks.shape[1] if blocks.ndim == 3 else 1
        self.blocks = blocks.reshape(len(self.grid), -1 if len(self.grid) else per_snippet, 4)
        self.length, self.size, self.scale = int(length), int(size), int(scale)

    @classmethod
    def from_positions(cls, movies: Sequence[Movie], movie_ids: np.ndarray,
                       positions: np.ndarray, length: int, size: int, scale: int = 1
                       ) -> SnippetArray:
        """Real (1×1) snippets at ``positions`` (N, 3) = (t0, y0, x0) of ``movie_ids``."""
        blocks = np.concatenate([np.asarray(movie_ids).reshape(-1, 1), positions], axis=1)
        return cls(movies, blocks[:, None, :], np.ones(len(positions), dtype=np.int64),
                   length, size, scale)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.grid), self.length, self.size, self.size)

    @property
    def ndim(self) -> int:
        return 4

    def __len__(self) -> int:
        return len(self.grid)

    def __getitem__(self, index):
        """Index arrays/slices → a lazy :class:`SnippetArray`; tuples (``frames[:, 0]``) → a
        lazy dask array."""
        if isinstance(index, tuple):
            return self.to_dask_array()[index]
        if isinstance(index, slice):
            index = np.arange(len(self))[index]
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        index = np.atleast_1d(index).astype(np.int64)
        return SnippetArray(self.movies, self.blocks[index], self.grid[index],
                            self.length, self.size, self.scale)

    def to_dask_array(self):
        """The snippets as a dask array, one chunk per snippet (``da.asarray`` uses this, e.g.
        when item sets of several data paths are concatenated)."""
        import dask.array as da

        return da.from_array(_EagerView(self), chunks=(1, *self.shape[1:]), asarray=False,
                             meta=np.zeros((0, 0, 0, 0), np.float32))

    def compute(self) -> np.ndarray:
        """Read and normalise the snippets: float32 (N, ℓ, S, S)."""
        out = np.empty(self.shape, dtype=np.float32)
        for i in range(len(self)):
            out[i] = self._read_one(self.blocks[i], int(self.grid[i]))
        return out

    def __array__(self, dtype=None, copy=None):
        arr = self.compute()
        return arr if dtype is None else arr.astype(dtype)

    def _read_block(self, block: np.ndarray, side: int) -> np.ndarray:
        m, t0, y0, x0 = (int(v) for v in block)
        fp = side * self.scale
        raw = self.movies[m].read(t0, t0 + self.length, y0, y0 + fp, x0, x0 + fp)
        data = finite_pixels(raw)
        if data is not raw:  # found as snippets are read: a lazy movie is never scanned whole
            warnings.warn(f"{readable(self.movies[m].path)}: has NaN/inf pixels; snippets "
                          "read NaN as their tile's median and ±inf as its finite extremes",
                          InputWarning, stacklevel=2)
        if data.shape[1:] != (fp, fp):  # a block at the border: pad by reflection
            data = np.pad(data, ((0, 0), (0, fp - data.shape[1]), (0, fp - data.shape[2])),
                          mode="reflect")
        if self.scale > 1:
            s = self.scale
            data = data.reshape(self.length, side, s, side, s).mean(axis=(2, 4))
        return data

    def _read_one(self, blocks: np.ndarray, k: int) -> np.ndarray:
        if k == 1:
            return robust_normalise(self._read_block(blocks[0], self.size))
        side = self.size // k
        snip = np.zeros((self.length, self.size, self.size), dtype=np.float32)
        for j in range(k * k):
            by, bx = divmod(j, k)
            # normalise each block alone so the seam carries no intensity step between movies
            snip[:, by * side:(by + 1) * side, bx * side:(bx + 1) * side] = robust_normalise(
                self._read_block(blocks[j], side))
        return robust_normalise(snip)


class _EagerView:
    """numpy-returning indexing of a :class:`SnippetArray` (the getter dask needs)."""

    def __init__(self, arr: SnippetArray):
        self.arr, self.shape, self.dtype, self.ndim = arr, arr.shape, arr.dtype, 4

    def __getitem__(self, index):
        index = index if isinstance(index, tuple) else (index,)
        first, rest = index[0], index[1:]
        if isinstance(first, int | np.integer):
            return self.arr[[int(first)]].compute()[0][rest]
        return self.arr[first].compute()[(slice(None), *rest)]


def augment_snippets(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random 90° rotation and flip per snippet, the same on all ℓ frames of it."""
    out = np.empty_like(x)
    for i in range(len(x)):
        s = np.rot90(x[i], k=int(rng.integers(4)), axes=(1, 2))
        out[i] = s[:, :, ::-1] if rng.random() < 0.5 else s
    return out


def frame_differences(x: np.ndarray, order: int = 1) -> np.ndarray:
    """k-th temporal difference along axis 1 (numpy reference of the models' dX)."""
    for _ in range(order):
        x = x[:, 1:] - x[:, :-1]
    return x
