"""ROI candidates from a raw movie by PCA/ICA (Mukamel, Nimmerjahn & Schnitzer 2009).

1. PCA of the (pixels × time) movie keeps the ``n_pcs`` strongest components (denoising).
2. Spatio-temporal ICA on the PCA components: FastICA with a skewness contrast on the
   concatenation ``[mu · spatial ; (1 - mu) · temporal]`` signals (CellSort's stICA).
3. Each spatial filter is smoothed, thresholded and split into connected segments; segments
   of plausible size become ROI candidates (duplicates across filters dropped).
4. Traces: projection of the movie onto each segment's weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.rois import RoiSet


def read_movie(path: Path) -> np.ndarray:
    """A (T, Y, X) float32 movie, whole in memory, from any format
    :func:`~napari_cellcurator.core.io.movies.open_movie` reads (channel 0 of several)."""
    from napari_cellcurator.core.io.movies import open_movie

    movie = open_movie(path)
    t, y, x = movie.shape
    return movie.read(0, t, 0, y, 0, x)


def _skew_ica(signals: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Unmixing matrix (n × n) maximising skewness (contrast g(u) = u², as CellSort)."""
    from sklearn.decomposition import FastICA

    def skew_contrast(u):
        return u ** 2, (2 * u).mean(axis=-1)

    ica = FastICA(n_components=n, fun=skew_contrast, whiten="unit-variance",
                  max_iter=500, tol=1e-4, random_state=seed)
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ica.fit(signals)
    return ica


def pca_ica(movie: np.ndarray, n_pcs: int = 40, n_ics: int | None = None, mu: float = 0.3,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Spatial filters (K, Y, X) and time courses (K, T) of a (T, Y, X) movie.

    Each component is sign-flipped so that its spatial filter has positive skew.
    """
    from sklearn.utils.extmath import randomized_svd

    t, ly, lx = movie.shape
    x = movie.reshape(t, ly * lx).astype(np.float64)
    mean = x.mean(axis=0)
    # per-pixel ΔF/F when the movie is raw (positive) fluorescence, else plain centring
    x = (x - mean) / np.where(mean > 1e-6 * np.abs(mean).max(), mean, 1.0) if (
        mean.min() > 0) else x - mean
    k = int(max(2, min(n_pcs, t - 1, ly * lx - 1)))
    u, s, vt = randomized_svd(x.T, n_components=k, random_state=seed)  # u: pixels, vt: time
    # drop null directions: a movie of repeated frames has low rank, and ICA on numerical
    # noise would invent components
    rank = max(2, int((s > 1e-4 * s[0]).sum()))
    u, s, vt = u[:, :rank], s[:rank], vt[:rank]
    k = rank
    n_ics = int(min(n_ics or k, k))
    spatial = u / (u.std(axis=0) + 1e-12)
    temporal = vt.T / (vt.T.std(axis=0) + 1e-12)
    sig = np.concatenate([mu * spatial, (1 - mu) * temporal], axis=0)
    ica = _skew_ica(sig, n_ics, seed)
    w = ica.components_  # (n_ics, k): unmixing in PCA space
    filters = (u @ w.T).T  # (K, pixels)
    traces = (vt.T @ w.T).T  # (K, T)
    from scipy.stats import skew

    sign = np.sign(skew(filters, axis=1))
    sign[sign == 0] = 1
    return (filters * sign[:, None]).reshape(n_ics, ly, lx), traces * sign[:, None]


def segment_filters(filters: np.ndarray, sigma: float = 1.0, z_thresh: float = 3.0,
                    min_area: int = 12, max_area: int | None = None, max_overlap: float = 0.5
                    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Threshold smoothed spatial filters and split them into connected segments."""
    from scipy.ndimage import gaussian_filter
    from skimage.measure import label

    ly, lx = filters.shape[1:]
    max_area = max_area or ly * lx // 8
    out, masks = [], []
    for f in filters:
        sm = gaussian_filter(f, sigma)
        med = np.median(sm)
        noise = 1.4826 * np.median(np.abs(sm - med)) + 1e-12
        lab = label(sm > med + z_thresh * noise, connectivity=1)
        for region in range(1, lab.max() + 1):
            mask = lab == region
            area = int(mask.sum())
            if not min_area <= area <= max_area:
                continue
            if any((mask & m).sum() / min(area, m.sum()) > max_overlap for m in masks):
                continue  # the same cell found by another component
            ypix, xpix = np.nonzero(mask)
            out.append((ypix, xpix, sm[mask].astype(np.float32)))
            masks.append(mask)
    return out


def project_traces(movie: np.ndarray,
                   footprints: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """Weighted-mean fluorescence of each footprint in every frame → (N, T)."""
    t = movie.shape[0]
    flat = movie.reshape(t, -1)
    out = np.zeros((len(footprints), t), np.float32)
    for i, (ypix, xpix, lam) in enumerate(footprints):
        w = np.clip(np.asarray(lam, np.float64), 0, None)
        w = w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / max(len(w), 1))
        out[i] = flat[:, np.ravel_multi_index((ypix, xpix), movie.shape[1:])] @ w
    return out


def neuropil_traces(movie: np.ndarray, footprints: list[tuple], inner: int = 2,
                    outer: int = 10) -> np.ndarray:
    """Suite2p-like neuropil: mean of an annulus around each ROI, excluding every ROI.

    The annulus reaches ``outer`` pixels beyond the ROI and keeps ``inner`` pixels away from
    every ROI (a smaller ring around the ROI alone where the neighbours leave < 5 pixels).
    """
    from scipy.ndimage import binary_dilation

    shape = movie.shape[1:]
    any_roi = np.zeros(shape, bool)
    for ypix, xpix, _ in footprints:
        any_roi[ypix, xpix] = True
    excluded = binary_dilation(any_roi, iterations=inner) if inner > 0 else any_roi
    rings = []
    for ypix, xpix, _ in footprints:
        # dilate inside the ROI's bounding box grown by ``outer`` (not the whole frame)
        y0, x0 = max(int(np.min(ypix)) - outer, 0), max(int(np.min(xpix)) - outer, 0)
        y1 = min(int(np.max(ypix)) + outer + 1, shape[0])
        x1 = min(int(np.max(xpix)) + outer + 1, shape[1])
        m = np.zeros((y1 - y0, x1 - x0), bool)
        m[np.asarray(ypix) - y0, np.asarray(xpix) - x0] = True
        grown = binary_dilation(m, iterations=outer)
        ring = grown & ~excluded[y0:y1, x0:x1]
        if ring.sum() < 5:
            ring = grown & ~m
        yy, xx = np.nonzero(ring)
        rings.append((yy + y0, xx + x0, np.ones(len(yy), np.float32)))
    return project_traces(movie, rings)


def extract_candidates(movie: np.ndarray, path: Path | str = "movie", n_pcs: int = 40,
                       mu: float = 0.3, z_thresh: float = 3.0, min_area: int = 12,
                       seed: int = 0) -> RoiSet:
    """Unlabelled ROI candidates of a (T, Y, X) movie (PCA/ICA → segments → traces)."""
    path = Path(path)
    movie = np.asarray(movie, np.float32)
    if movie.ndim != 3:
        raise InputError(path, f"movie has shape {movie.shape}", "(T, Y, X)")
    if not np.ptp(movie, axis=0).any():  # PCA/ICA of noise-free zeros "finds" cells
        raise InputError(path, "does not change over time (every pixel constant)",
                         "a calcium-imaging movie")
    filters, _ = pca_ica(movie, n_pcs=n_pcs, mu=mu, seed=seed)
    fps = segment_filters(filters, z_thresh=z_thresh, min_area=min_area)
    traces = project_traces(movie, fps) if fps else np.zeros((0, movie.shape[0]), np.float32)
    return RoiSet(fps, traces, movie.shape[1:], path, "pcaica",
                  mean_image=movie.mean(axis=0), meta={"n_frames": movie.shape[0]})


def read_movie_candidates(path: Path, extra: dict | None = None) -> RoiSet:
    """Read a movie file and extract PCA/ICA candidates (``extra``: n_pcs, mu, z_thresh)."""
    extra = extra or {}
    movie = read_movie(path)
    return extract_candidates(movie, path, n_pcs=int(extra.get("n_pcs", 40)),
                              mu=float(extra.get("mu", 0.3)),
                              z_thresh=float(extra.get("z_thresh", 3.0)),
                              min_area=int(extra.get("min_area", 12)))
