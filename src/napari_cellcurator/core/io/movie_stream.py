"""A recording's frames in bounded memory: time chunks, means, and PCA in a few passes.

A one-photon session of 20 minutes at 20 Hz, 600 × 600 pixels, is 35 GB as float32: it cannot
be read whole. Everything here reads the movie in blocks of frames (``CHUNK_BYTES`` each), so
traces, mean images and the PCA of PCA/ICA candidate extraction work on any length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

#: ``part(fraction)``: how far one pass (or stage) over the frames has got, 0–1
PartFn = Callable[[float], None]

#: bytes of float32 frames per block read (a few such temporaries are alive at once)
CHUNK_BYTES = 16 * 1024 * 1024


class MovieFrames:
    """A :class:`~napari_cellcurator.core.io.movies.Movie` as a ``(T, Y, X)`` float32
    array-like: ``frames[t0:t1]`` reads those frames only; ``np.asarray`` reads them all."""

    ndim = 3
    dtype = np.dtype(np.float32)

    def __init__(self, movie):
        self.movie = movie
        self.shape = tuple(movie.shape)

    def __getitem__(self, key) -> np.ndarray:
        key, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        t, y, x = self.shape
        if isinstance(key, int | np.integer):
            t0 = int(key) % t
            return self.movie.read(t0, t0 + 1, 0, y, 0, x, cache=False)[0][rest]
        start, stop, step = key.indices(t)
        frames = self.movie.read(start, stop, 0, y, 0, x, cache=False) if stop > start else \
            np.zeros((0, y, x), np.float32)
        return frames[(slice(None, None, step), *rest)]

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype)


def time_chunks(frames, chunk_bytes: int | None = None, progress: PartFn | None = None
                ) -> Iterator[tuple[int, np.ndarray]]:
    """``(t0, block)`` over the movie; ``block`` is ``(n, Y·X)`` float32 frames ``t0:t0+n``,
    ``chunk_bytes`` (default :data:`CHUNK_BYTES`) a block. ``progress(fraction)`` is told
    how much of the movie was handed out, after each block is used.

    ``frames`` is anything sliced along time into ``(n, Y, X)``: an array, a memory map, a
    :class:`MovieFrames`, a dask array.
    """
    t = frames.shape[0]
    pixels = int(np.prod(frames.shape[1:]))
    n = max(1, (chunk_bytes or CHUNK_BYTES) // (4 * pixels))
    for t0 in range(0, t, n):
        block = np.asarray(frames[t0:t0 + n], dtype=np.float32)
        yield t0, block.reshape(len(block), pixels)
        if progress is not None:
            progress(min(t0 + n, t) / t)


def frame_stats(frames, progress: PartFn | None = None) -> tuple[np.ndarray, bool]:
    """Mean frame (float64, ``(Y, X)``) and whether any pixel changes over time."""
    total = np.zeros(int(np.prod(frames.shape[1:])))
    first, changes = None, False
    for _, block in time_chunks(frames, progress=progress):
        total += block.sum(axis=0, dtype=np.float64)
        first = block[0] if first is None else first
        changes = changes or bool((block != first).any())
    return (total / max(frames.shape[0], 1)).reshape(frames.shape[1:]), changes


def streaming_pca(frames, k: int, mean: np.ndarray, seed: int = 0, n_iter: int = 2,
                  oversample: int = 10, progress: PartFn | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-``k`` PCA of the per-pixel normalised ``(T, P)`` movie, reading it in blocks.

    Randomised range finder with ``n_iter`` power iterations (Halko, Martinsson & Tropp
    2011): ``2 · n_iter + 2`` passes over the frames, memory ``O((T + P) · (k + oversample))``.
    Pixels are ΔF/F'd when the movie is positive fluorescence, else centred (as in memory).
    ``progress(fraction)`` follows the passes.

    Returns
    -------
    u, s, vt
        Pixel factors ``(P, k)``, singular values ``(k,)``, time factors ``(k, T)``: what
        ``randomized_svd(X.T)`` returns for the whole movie ``X``.
    """
    mean = np.asarray(mean, np.float64).ravel()
    positive = mean.min() > 0
    scale = np.where(mean > 1e-6 * np.abs(mean).max(), mean, 1.0) if positive else 1.0
    mean32, scale32 = mean.astype(np.float32), np.asarray(scale, np.float32)
    t = frames.shape[0]
    passes, done = 2 * n_iter + 2, [0]

    def normalised():
        def within(fraction: float) -> None:
            if progress is not None:
                progress((done[0] + fraction) / passes)
        for t0, block in time_chunks(frames, progress=within):
            yield t0, (block - mean32) / scale32
        done[0] += 1

    def times(matrix):  # X @ matrix: (T, l)
        out = np.empty((t, matrix.shape[1]))
        for t0, block in normalised():
            out[t0:t0 + len(block)] = block @ matrix
        return out

    def transposed_times(q):  # X.T @ q: (P, l), float32 (the pixel-sized matrices dominate)
        out = np.zeros((mean.size, q.shape[1]), np.float32)
        q = q.astype(np.float32)  # float64 q would copy every block to float64
        for t0, block in normalised():
            out += block.T @ q[t0:t0 + len(block)]
        return out

    width = min(k + oversample, t, mean.size)
    rng = np.random.default_rng(seed)
    y = times(rng.standard_normal((mean.size, width), dtype=np.float32))
    for _ in range(n_iter):
        q, _ = np.linalg.qr(y)
        y = times(_orthonormal(transposed_times(q)))
    q, _ = np.linalg.qr(y)
    # SVD of B = Q.T X (width × P) from the eigenvectors of the small B B.T: no LAPACK
    # workspace the size of B
    b_t = transposed_times(q)  # B.T, (P, width)
    eigenvalues, u_small = np.linalg.eigh(_gram(b_t))
    order = np.argsort(eigenvalues)[::-1][:k]
    s = np.sqrt(np.clip(eigenvalues[order], 0, None))
    u_small = u_small[:, order]
    pixel = b_t @ (u_small / np.where(s > 0, s, 1.0)).astype(np.float32)
    return pixel, s, (q @ u_small).T


def _gram(z: np.ndarray, rows: int = 65536) -> np.ndarray:
    """``z.T @ z`` in float64, ``rows`` rows of ``z`` at a time (no float64 copy of ``z``)."""
    gram = np.zeros((z.shape[1], z.shape[1]))
    for r0 in range(0, len(z), rows):
        part = z[r0:r0 + rows].astype(np.float64)
        gram += part.T @ part
    return gram


def _orthonormal(z: np.ndarray) -> np.ndarray:
    """An orthonormal float32 basis of the columns of the tall ``z`` (Cholesky QR: one new
    array the size of ``z``; numpy's QR would make three, in float64)."""
    try:
        upper = np.linalg.cholesky(_gram(z)).T  # z.T z = upper.T upper
    except np.linalg.LinAlgError:  # rank-deficient: the stable way
        return np.linalg.qr(z)[0].astype(np.float32)
    return z @ np.linalg.inv(upper).astype(np.float32)
