"""Recordings too long for memory: PCA/ICA candidates, traces and mean images read the movie in
blocks of frames, and find on the real miniscope movie what the in-memory path finds."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_cellcurator.core.io import movie_stream, pcaica
from napari_cellcurator.core.io.movie_stream import MovieFrames, frame_stats, streaming_pca
from napari_cellcurator.core.io.movies import open_movie


@pytest.fixture(scope="module")
def miniscope_file(shared_data, tmp_path_factory):
    movie = tifffile.imread(shared_data / "calcium" / "miniscope_1p" / "miniscope_1p.tif")
    path = tmp_path_factory.mktemp("stream") / "session.tif"
    tifffile.imwrite(path, np.ascontiguousarray(movie[:, :, :96]))  # Y ≠ X
    return path


@pytest.fixture
def long_recording(monkeypatch):
    """Make the real movie count as too long for memory: blocks of a few frames only."""
    monkeypatch.setattr(pcaica, "IN_MEMORY_VALUES", 10_000)
    monkeypatch.setattr(movie_stream, "CHUNK_BYTES", 6 * 100 * 96 * 4)


def footprint_masks(rois, shape) -> list[np.ndarray]:
    masks = []
    for ypix, xpix, _ in rois.footprints:
        m = np.zeros(shape, bool)
        m[ypix, xpix] = True
        masks.append(m)
    return masks


def test_movie_frames_slice_like_an_array(miniscope_file):
    whole = tifffile.imread(miniscope_file).astype(np.float32)
    frames = MovieFrames(open_movie(miniscope_file))
    assert frames.shape == whole.shape and len(frames) == len(whole)
    np.testing.assert_array_equal(frames[3:7], whole[3:7])
    np.testing.assert_array_equal(frames[5], whole[5])
    np.testing.assert_array_equal(frames[-1], whole[-1])
    np.testing.assert_array_equal(frames[10:30:4, 2:9], whole[10:30:4, 2:9])
    np.testing.assert_array_equal(np.asarray(frames), whole)
    assert frames[7:7].shape == (0, *whole.shape[1:])


def test_streamed_candidates_equal_in_memory_ones(miniscope_file, monkeypatch):
    in_memory = pcaica.read_movie_candidates(miniscope_file)
    reads = []
    movie_class = type(open_movie(miniscope_file))
    original = movie_class.read

    def counted_read(self, t0, t1, *region, **options):
        reads.append(t1 - t0)
        return original(self, t0, t1, *region, **options)

    monkeypatch.setattr(movie_class, "read", counted_read)
    monkeypatch.setattr(pcaica, "IN_MEMORY_VALUES", 10_000)
    monkeypatch.setattr(movie_stream, "CHUNK_BYTES", 6 * 100 * 96 * 4)
    streamed = pcaica.read_movie_candidates(miniscope_file)
    assert max(reads) <= 6  # never more than a block of frames at once
    assert len(in_memory.footprints) >= 5 and len(streamed.footprints) == len(
        in_memory.footprints)
    shape = in_memory.mean_image.shape
    for a, b in zip(footprint_masks(in_memory, shape), footprint_masks(streamed, shape),
                    strict=True):
        assert (a & b).sum() / (a | b).sum() > 0.9
    np.testing.assert_allclose(streamed.mean_image, in_memory.mean_image, rtol=1e-5)
    np.testing.assert_allclose(streamed.traces, pcaica.project_traces(
        tifffile.imread(miniscope_file).astype(np.float32), streamed.footprints), rtol=1e-5)


def test_streaming_pca_spans_the_in_memory_subspace(miniscope_file, long_recording):
    movie = tifffile.imread(miniscope_file).astype(np.float32)
    k = 10
    u_mem, s_mem, vt_mem = pcaica._pca_in_memory(movie, k, seed=0)
    u, s, vt = streaming_pca(movie, k, frame_stats(movie)[0], seed=1)
    np.testing.assert_allclose(s[:5], s_mem[:5], rtol=0.02)
    # cosines of the principal angles between the leading pixel subspaces
    cosines = np.linalg.svd(u_mem[:, :5].T @ u[:, :5], compute_uv=False)
    assert cosines.min() > 0.98
    assert u.shape == u_mem.shape and vt.shape == vt_mem.shape


def test_traces_stream_to_the_per_roi_weighted_mean(miniscope_file, long_recording):
    movie = tifffile.imread(miniscope_file).astype(np.float32)
    rng = np.random.default_rng(0)
    footprints = []
    for _ in range(5):
        ypix, xpix = rng.integers(0, 100, 30), rng.integers(0, 96, 30)
        footprints.append((ypix, xpix, rng.random(30).astype(np.float32)))
    expected = np.stack([movie[:, y, x] @ (w / w.sum()) for y, x, w in footprints])
    got = pcaica.project_traces(MovieFrames(open_movie(miniscope_file)), footprints)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    mean, changes = frame_stats(movie)
    np.testing.assert_allclose(mean, movie.mean(axis=0, dtype=np.float64), rtol=1e-10)
    assert changes and not frame_stats(np.ones((9, 4, 4), np.float32))[1]


def test_cached_reads_of_a_chunked_store_match_the_array(miniscope_file, tmp_path,
                                                         monkeypatch):
    """Frames read a cache's worth at a time (a zarr chunk of 10 frames decodes once), in any
    order, any region, windows longer than the cache included."""
    zarr = pytest.importorskip("zarr")
    from napari_cellcurator.core.io import movies

    whole = tifffile.imread(miniscope_file).astype(np.float32)
    store = zarr.create_array(str(tmp_path / "m.zarr"), shape=whole.shape, dtype="float32",
                              chunks=(10, *whole.shape[1:]))
    store[:] = whole
    monkeypatch.setattr(movies, "CACHE_BYTES", 7 * whole[0].nbytes)  # 7 frames
    movie = open_movie(tmp_path / "m.zarr")
    rng = np.random.default_rng(0)
    for _ in range(40):
        t0 = int(rng.integers(0, len(whole)))
        t1 = t0 + int(rng.integers(1, 30))
        y0, x0 = (int(v) for v in rng.integers(0, 50, 2))
        np.testing.assert_array_equal(movie.read(t0, t1, y0, y0 + 40, x0, x0 + 30),
                                      whole[t0:t1, y0:y0 + 40, x0:x0 + 30])
    assert len(movie._cache) <= 7
