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
from napari_cellcurator.core.progress import ProgressFn, Stages


def _skew_ica(signals: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Unmixing matrix (n × n) maximising skewness (contrast g(u) = u², as CellSort)."""
    from sklearn.decomposition import FastICA

    def skew_contrast(u):
        return u ** 2, (2 * u).mean(axis=-1)

    # eigh whitening: from the small covariance, not an SVD of the (pixels + frames) signals
    ica = FastICA(n_components=n, fun=skew_contrast, whiten="unit-variance",
                  whiten_solver="eigh", max_iter=500, tol=1e-4, random_state=seed)
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ica.fit(signals)
    return ica


#: movies up to this many values are decomposed in memory (~16 bytes each at the peak); longer
#: ones stream through :func:`~napari_cellcurator.core.io.movie_stream.streaming_pca`
IN_MEMORY_VALUES = 2 ** 27


def pca_ica(movie, n_pcs: int = 40, n_ics: int | None = None, mu: float = 0.3,
            seed: int = 0, mean: np.ndarray | None = None, stages: Stages | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Spatial filters (K, Y, X) and time courses (K, T) of a (T, Y, X) movie.

    ``movie`` is an array, or (for recordings too long for memory) any array-like read in
    blocks of frames (:class:`~napari_cellcurator.core.io.movie_stream.MovieFrames`), whose
    ``mean`` frame may be given. Each component is sign-flipped so that its spatial filter has
    positive skew. ``stages`` (with stages "PCA" and "ICA") is told how far it has got.
    """
    stages = stages or Stages(None, [("PCA", 1), ("ICA", 1)])
    t, ly, lx = movie.shape
    k = int(max(2, min(n_pcs, t - 1, ly * lx - 1)))
    stages.start("PCA")
    if t * ly * lx <= IN_MEMORY_VALUES:
        u, s, vt = _pca_in_memory(np.asarray(movie), k, seed)
        stages.start("ICA")
        return _ica_components(u, s, vt, (ly, lx), n_ics, mu, seed, np.float64)
    from napari_cellcurator.core.io.movie_stream import frame_stats, streaming_pca

    mean = frame_stats(movie)[0] if mean is None else mean
    u, s, vt = streaming_pca(movie, k, mean, seed=seed, progress=stages.part("PCA"))
    stages.start("ICA")
    # float32 ICA halves its ~5 copies of the (pixels + frames) signals on large frames
    return _ica_components(u, s, vt, (ly, lx), n_ics, mu, seed, np.float32)


def _pca_in_memory(movie: np.ndarray, k: int, seed: int):
    from sklearn.utils.extmath import randomized_svd

    t = movie.shape[0]
    x = movie.reshape(t, -1).astype(np.float64)
    mean = x.mean(axis=0)
    # per-pixel ΔF/F when the movie is raw (positive) fluorescence, else plain centring
    x = (x - mean) / np.where(mean > 1e-6 * np.abs(mean).max(), mean, 1.0) if (
        mean.min() > 0) else x - mean
    return randomized_svd(x.T, n_components=k, random_state=seed)  # u: pixels, vt: time


def _ica_components(u: np.ndarray, s: np.ndarray, vt: np.ndarray, frame: tuple[int, int],
                    n_ics: int | None, mu: float, seed: int, dtype: type
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Spatio-temporal ICA in the PCA space → (K, Y, X) filters, (K, T) time courses;
    the ICA runs in ``dtype``."""
    # drop null directions: a movie of repeated frames has low rank, and ICA on numerical
    # noise would invent components
    rank = max(2, int((s > 1e-4 * s[0]).sum()))
    u, s, vt = u[:, :rank], s[:rank], vt[:rank]
    n_ics = int(min(n_ics or rank, rank))
    spatial = u / (u.std(axis=0) + 1e-12)
    temporal = vt.T / (vt.T.std(axis=0) + 1e-12)
    sig = np.concatenate([(mu * spatial).astype(dtype, copy=False),
                          ((1 - mu) * temporal).astype(dtype, copy=False)], axis=0)
    ica = _skew_ica(sig, n_ics, seed)
    w = ica.components_  # (n_ics, k): unmixing in PCA space
    filters = (u @ w.T).T  # (K, pixels)
    traces = (vt.T @ w.T).T  # (K, T)
    from scipy.stats import skew

    sign = np.sign(skew(filters, axis=1))
    sign[sign == 0] = 1
    return (filters * sign[:, None]).reshape(n_ics, *frame), traces * sign[:, None]


def segment_filters(filters: np.ndarray, sigma: float = 1.0, z_thresh: float = 3.0,
                    min_area: int = 12, max_area: int | None = None, max_overlap: float = 0.5,
                    progress=None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Threshold smoothed spatial filters and split them into connected segments
    (``progress(fraction)`` after each filter)."""
    from scipy.ndimage import find_objects, gaussian_filter
    from skimage.measure import label

    ly, lx = filters.shape[1:]
    max_area = max_area or ly * lx // 8
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    kept = _KeptSegments()
    for done, f in enumerate(filters):
        if progress is not None:
            progress(done / len(filters))
        sm = gaussian_filter(f, sigma)
        med = np.median(sm)
        noise = 1.4826 * np.median(np.abs(sm - med)) + 1e-12
        lab = label(sm > med + z_thresh * noise, connectivity=1)
        # each segment is looked at inside its bounding box: a 512² frame has hundreds
        for region, box in enumerate(find_objects(lab), start=1):
            if box is None:
                continue
            ys, xs = np.nonzero(lab[box] == region)
            if not min_area <= len(ys) <= max_area:
                continue
            ypix, xpix = ys + box[0].start, xs + box[1].start
            flat = np.ravel_multi_index((ypix, xpix), (ly, lx))
            if kept.overlaps(flat, box, max_overlap):
                continue  # the same cell found by another component
            out.append((ypix, xpix, sm[ypix, xpix].astype(np.float32)))
            kept.add(flat, box)
    return out


class _KeptSegments:
    """Segments kept so far: which of them a new one overlaps (boxes first, then pixels)."""

    def __init__(self) -> None:
        self.boxes = np.zeros((0, 4), int)  # y0, y1, x0, x1
        self.pixels: list[np.ndarray] = []

    def add(self, flat: np.ndarray, box: tuple[slice, slice]) -> None:
        row = [[box[0].start, box[0].stop, box[1].start, box[1].stop]]
        self.boxes = np.concatenate([self.boxes, row])
        self.pixels.append(flat)

    def overlaps(self, flat: np.ndarray, box: tuple[slice, slice], max_overlap: float) -> bool:
        """Whether > ``max_overlap`` of the smaller of ``flat`` and a kept segment is shared."""
        b = self.boxes
        near = np.flatnonzero((b[:, 0] < box[0].stop) & (box[0].start < b[:, 1])
                              & (b[:, 2] < box[1].stop) & (box[1].start < b[:, 3]))
        for k in near:
            shared = np.intersect1d(flat, self.pixels[k], assume_unique=True).size
            if shared / min(len(flat), len(self.pixels[k])) > max_overlap:
                return True
        return False


def project_traces(movie, footprints: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                   progress=None) -> np.ndarray:
    """Weighted-mean fluorescence of each footprint in every frame → (N, T).

    ``movie`` is read in blocks of frames (an array, or a long recording's
    :class:`~napari_cellcurator.core.io.movie_stream.MovieFrames`); ``progress(fraction)``
    follows them.
    """
    from scipy.sparse import csr_matrix

    from napari_cellcurator.core.io.movie_stream import time_chunks

    t, shape = movie.shape[0], movie.shape[1:]
    out = np.zeros((len(footprints), t), np.float32)
    if not footprints:
        return out
    rows, cols, vals = [], [], []
    for i, (ypix, xpix, lam) in enumerate(footprints):
        w = np.clip(np.asarray(lam, np.float64), 0, None)
        w = w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / max(len(w), 1))
        rows.append(np.full(len(w), i))
        cols.append(np.ravel_multi_index((ypix, xpix), shape))
        vals.append(w)
    weights = csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(len(footprints), int(np.prod(shape))))
    for t0, block in time_chunks(movie, progress=progress):
        out[:, t0:t0 + len(block)] = weights @ block.T
    return out


def neuropil_traces(movie: np.ndarray, footprints: list[tuple], inner: int = 2,
                    outer: int = 10, progress=None) -> np.ndarray:
    """Suite2p-like neuropil: mean of an annulus around each ROI, excluding every ROI.

    The annulus reaches ``outer`` pixels beyond the ROI and keeps ``inner`` pixels away from
    every ROI (a smaller ring around the ROI alone where the neighbours leave < 5 pixels).
    ``progress(fraction)`` follows the blocks of frames read.
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
    return project_traces(movie, rings, progress)


def extract_candidates(movie, path: Path | str = "movie", n_pcs: int = 40, mu: float = 0.3,
                       z_thresh: float = 3.0, min_area: int = 12, seed: int = 0,
                       progress: ProgressFn | None = None) -> RoiSet:
    """Unlabelled ROI candidates of a (T, Y, X) movie (PCA/ICA → segments → traces and
    Suite2p-like neuropil traces).

    ``movie``: an array, or :func:`movie_frames` of a file (a recording longer than
    :data:`IN_MEMORY_VALUES` is then read in blocks of frames, never whole).
    ``progress(fraction, stage)`` is told how far the job has got (it may raise
    :class:`~napari_cellcurator.core.progress.Cancelled` to stop it).
    """
    from napari_cellcurator.core.io.movie_stream import frame_stats

    path = Path(path)
    movie = movie if hasattr(movie, "shape") else np.asarray(movie, np.float32)
    if len(movie.shape) != 3:
        raise InputError(path, f"movie has shape {np.shape(movie)}", "(T, Y, X)")
    in_memory = np.prod(movie.shape) <= IN_MEMORY_VALUES
    # weights ~ passes over the frames (the streamed PCA makes six)
    stages = Stages(progress, [("reading", 1 if in_memory else 0), ("mean frame", 1),
                               ("PCA", 2 if in_memory else 6), ("ICA", 2), ("segments", 0.5),
                               ("traces", 1), ("neuropil", 1)])
    if in_memory:
        movie = _whole(movie, stages.part("reading"))
    mean, changes = frame_stats(movie, stages.part("mean frame"))
    if not changes:  # PCA/ICA of noise-free zeros "finds" cells
        raise InputError(path, "does not change over time (every pixel constant)",
                         "a calcium-imaging movie")
    filters, _ = pca_ica(movie, n_pcs=n_pcs, mu=mu, seed=seed, mean=mean, stages=stages)
    fps = segment_filters(filters, z_thresh=z_thresh, min_area=min_area,
                          progress=stages.part("segments"))
    traces = project_traces(movie, fps, stages.part("traces"))
    # neuropil rings as for every other ROI source: the shipped cellness model learnt from
    # neuropil-subtracted traces of exactly these candidates (simulate_candidates)
    neuropil = neuropil_traces(movie, fps, progress=stages.part("neuropil")) if fps else None
    stages.part("neuropil")(1.0)
    return RoiSet(fps, traces, movie.shape[1:], path, "pcaica", neuropil=neuropil,
                  mean_image=mean.astype(np.float32), meta={"n_frames": movie.shape[0]})


def _whole(movie, progress) -> np.ndarray:
    """The whole movie as a float32 array, read in blocks of frames (``progress``)."""
    from napari_cellcurator.core.io.movie_stream import time_chunks

    if isinstance(movie, np.ndarray):
        progress(1.0)
        return np.asarray(movie, np.float32)
    out = np.empty(movie.shape, np.float32)
    for t0, block in time_chunks(movie, progress=progress):
        out[t0:t0 + len(block)] = block.reshape(len(block), *movie.shape[1:])
    return out


def movie_frames(path: Path):
    """The movie file at ``path`` as (T, Y, X) float32 frames read when sliced (channel 0 of
    several): :class:`~napari_cellcurator.core.io.movie_stream.MovieFrames`."""
    from napari_cellcurator.core.io.movie_stream import MovieFrames
    from napari_cellcurator.core.io.movies import open_movie

    return MovieFrames(open_movie(path))


def read_movie_candidates(path: Path, extra: dict | None = None,
                          progress: ProgressFn | None = None) -> RoiSet:
    """Read a movie file and extract PCA/ICA candidates (``extra``: n_pcs, mu, z_thresh,
    min_area; ``progress`` as :func:`extract_candidates`)."""
    extra = extra or {}
    movie = movie_frames(path)
    return extract_candidates(movie, path, n_pcs=int(extra.get("n_pcs", 40)),
                              mu=float(extra.get("mu", 0.3)),
                              z_thresh=float(extra.get("z_thresh", 3.0)),
                              min_area=int(extra.get("min_area", 12)), progress=progress)
