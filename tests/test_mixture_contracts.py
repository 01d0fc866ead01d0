"""Mixture core, checked against the brief's contracts with direct numpy computations.

Complements test_mixture_io.py / test_mixture_models.py: OME-Zarr v0.5 (zarr v3) level 0,
missing zarr chunks, frame-level laziness, tiling and half resolution against slicing by hand,
normalisation against acquisition differences, composites' labels, several data paths at once.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_cellcurator.core.data.composites import Source, make_composites
from napari_cellcurator.core.data.snippets import SnippetArray, grid_positions, robust_normalise
from napari_cellcurator.core.io.movies import Movie, open_movie
from napari_cellcurator.core.tasks import ReadOptions, get_task
from napari_cellcurator.core.tasks.mixture import proportion_map

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "mixture"


def _stack(t=8, h=48, w=40, seed=0, dtype=np.uint16):
    return np.random.default_rng(seed).integers(0, 4000, (t, h, w)).astype(dtype)


class CountingArray:
    """A (T, Y, X) array that records which frames were requested (to check laziness)."""

    def __init__(self, data: np.ndarray):
        self.data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim
        self.frames: set[int] = set()

    def __getitem__(self, key):
        t = key[0] if isinstance(key, tuple) else key
        self.frames.update(range(*t.indices(self.shape[0])) if isinstance(t, slice) else [int(t)])
        return self.data[key]


# ---- readers ----------------------------------------------------------------------
def test_ome_zarr_v05_takes_level0(tmp_path):
    stack = _stack()
    g = zarr.open_group(str(tmp_path / "img.ome.zarr"), mode="w", zarr_format=3)
    g.create_array("s1", data=stack[:, None, None, ::2, ::2])  # listed second, created first
    g.create_array("s0", data=stack[:, None, None], chunks=(1, 1, 1, 24, 20))
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": n} for n in ("t", "c", "z", "y", "x")],
        "datasets": [{"path": "s0"}, {"path": "s1"}]}]}
    mv = open_movie(tmp_path / "img.ome.zarr")
    assert mv.shape == stack.shape
    np.testing.assert_array_equal(mv.read(2, 5, 3, 30, 4, 33), stack[2:5, 3:30, 4:33])


@pytest.mark.parametrize("fmt", [2, 3])
def test_absent_zarr_chunks_read_as_fill_value(tmp_path, fmt):
    """zarr (v3 by default) does not write chunks equal to the fill value, so an absent chunk
    is valid data, not damage: it reads as the fill value (a corrupt chunk is an InputError,
    tests/reliability/test_bad_inputs_cellness.py)."""
    stack = _stack()
    path = tmp_path / f"m{fmt}.zarr"
    z = zarr.create_array(str(path), shape=stack.shape, dtype=stack.dtype, chunks=(1, 48, 40),
                          zarr_format=fmt, fill_value=0)
    z[:] = stack
    chunk_files = sorted(p for p in path.rglob("*") if p.is_file()
                         and p.name not in (".zarray", ".zattrs", "zarr.json"))
    assert len(chunk_files) == stack.shape[0]
    chunk_files[3].unlink()
    frames = open_movie(path).read(0, 8, 0, 48, 0, 40)
    assert not frames[3].any()
    np.testing.assert_array_equal(frames[4], stack[4])


def test_snippets_read_only_their_frames():
    stack = _stack(t=30)
    raw = CountingArray(stack)
    movie = Movie(Path("counting.npy"), raw, "tyx")
    pos = np.array([[4, 8, 0], [4, 0, 16]])
    arr = SnippetArray.from_positions([movie], np.zeros(2, dtype=np.int64), pos, 5, 16)
    assert raw.frames == set()  # building the lazy array reads nothing
    arr[np.array([1])].compute()
    assert raw.frames <= set(range(4, 9)), sorted(raw.frames)


# ---- tiling ----------------------------------------------------------------------
def test_grid_positions_match_nested_loops():
    pos = grid_positions((2, 13), (5, 40), (0, 33), length=5, footprint=16, stride=8, t_stride=3)
    ref = [(t, y, x) for t in range(2, 13 - 5 + 1, 3) for y in range(5, 40 - 16 + 1, 8)
           for x in range(0, 33 - 16 + 1, 8)]
    assert sorted(map(tuple, pos.tolist())) == ref


@pytest.mark.parametrize("scale", [1, 2])
def test_snippets_equal_direct_slicing(tmp_path, scale):
    stack = _stack()
    np.save(tmp_path / "m.npy", stack)
    movie = open_movie(tmp_path / "m.npy")
    size, length = 12, 5
    pos = grid_positions((0, 8), (0, 48), (0, 40), length, size * scale, 7, 2)
    arr = SnippetArray.from_positions([movie], np.zeros(len(pos), dtype=np.int64), pos,
                                      length, size, scale)
    assert arr.shape == (len(pos), length, size, size)
    pick = np.array([0, len(pos) // 2, len(pos) - 1])
    got = np.asarray(arr[pick])
    for row, i in enumerate(pick):
        t0, y0, x0 = pos[i]
        fp = size * scale
        raw = stack[t0:t0 + length, y0:y0 + fp, x0:x0 + fp].astype(np.float64)
        if scale == 2:  # half resolution = mean of 2×2 pixels
            raw = raw.reshape(length, size, 2, size, 2).mean(axis=(2, 4))
        np.testing.assert_allclose(got[row], robust_normalise(raw), atol=1e-4)
        # dX of the snippet = difference of consecutive normalised frames
        np.testing.assert_allclose(np.diff(got[row], axis=0)[1], got[row, 2] - got[row, 1],
                                   atol=1e-6)


def test_normalisation_removes_bit_depth_gain_and_offset():
    rng = np.random.default_rng(3)
    x8 = rng.integers(20, 200, (5, 16, 16)).astype(np.uint8)
    x16 = x8.astype(np.uint16) * 257 + 1000  # same scene, 16-bit camera, other gain/offset
    np.testing.assert_allclose(robust_normalise(x8), robust_normalise(x16), atol=1e-4)
    flat = robust_normalise(np.full((5, 8, 8), 7.0))
    assert np.isfinite(flat).all()


def test_histogram_matched_movie_keeps_snippet_structure():
    """After matching one movie's histogram to another's, per-snippet normalised snippets stay
    strongly correlated with the original ones (the model sees texture, not intensity)."""
    from skimage.exposure import match_histograms

    rng = np.random.default_rng(4)
    a = rng.gamma(2.0, 300.0, (5, 32, 32)).astype(np.float32)  # skewed 16-bit-like movie
    b = rng.integers(30, 90, (5, 32, 32)).astype(np.uint8)  # 8-bit reference
    matched = match_histograms(a, b)
    r = np.corrcoef(robust_normalise(a).ravel(), robust_normalise(matched).ravel())[0, 1]
    assert r > 0.9


# ---- composites ----------------------------------------------------------------------
def test_composite_labels_are_the_fraction_of_b_blocks():
    a = Source(0, (0, 10), (0, 0, 64, 64), (10, 64, 64))
    b = Source(1, (0, 10), (0, 0, 64, 64), (10, 64, 64))
    blocks, labels, _ = make_composites(a, b, n=60, grid=2, length=5, size=32, seed=1,
                                        n_regions=1)
    from_b = (blocks[..., 0] == 1).mean(axis=1)
    np.testing.assert_allclose(labels, from_b)
    assert set(np.round(labels * 4).astype(int)) == {0, 1, 2, 3, 4}
    # every block lies inside its source movie and frame range
    assert (blocks[..., 1] >= 0).all() and (blocks[..., 1] + 5 <= 10).all()
    assert (blocks[..., 2:] >= 0).all() and (blocks[..., 2:] + 16 <= 64).all()


def test_composite_quadrants_come_from_the_right_movie():
    ones = Movie(Path("a.npy"), np.zeros((6, 32, 32), np.float32) + np.arange(32)[None, None],
                 "tyx")
    twos = Movie(Path("b.npy"), np.zeros((6, 32, 32), np.float32) - np.arange(32)[:, None],
                 "tyx")
    a = Source(0, (0, 6), (0, 0, 32, 32), (6, 32, 32))
    b = Source(1, (0, 6), (0, 0, 32, 32), (6, 32, 32))
    blocks, labels, _ = make_composites(a, b, n=12, grid=2, length=5, size=16, n_regions=1)
    snips = SnippetArray([ones, twos], blocks, np.full(12, 2), 5, 16).compute()
    for s, blk in zip(snips, blocks, strict=True):
        for j, (m, *_rest) in enumerate(blk):
            by, bx = divmod(j, 2)
            q = s[0, by * 8:(by + 1) * 8, bx * 8:(bx + 1) * 8]
            # movie a varies along x only, movie b along y only
            varies_x = np.ptp(q, axis=1).mean() > np.ptp(q, axis=0).mean()
            assert varies_x == (m == 0)


# ---- task-level ----------------------------------------------------------------------
@pytest.fixture
def two_manifests(tmp_path):
    if not (SAMPLE / "manifest.csv").exists():
        pytest.skip("sample_data/mixture is missing")
    for f in SAMPLE.glob("*.tif"):
        shutil.copy(f, tmp_path / f.name)
    text = (SAMPLE / "manifest.csv").read_text().splitlines()
    (tmp_path / "one.csv").write_text("\n".join(text) + "\n")
    (tmp_path / "two.csv").write_text("\n".join(text[:3]) + "\n")
    return tmp_path


def test_two_manifests_in_one_training_set(two_manifests):
    task = get_task("mixture")
    items = task.read_many([two_manifests / "one.csv", two_manifests / "two.csv"], ReadOptions())
    assert items.table["item_id"].is_unique
    x = items.load(np.array([0, len(items) - 1]), "frames")
    assert x.shape[1:] == (5, 64, 64) and np.isfinite(x).all()


def test_manifest_plus_movie(two_manifests):
    task = get_task("mixture")
    items = task.read_many([two_manifests / "one.csv", two_manifests / "t98g_crop.tif"],
                           ReadOptions())
    assert items.labelled.sum() < len(items)  # the movie's tiles are unlabelled
    x = items.load(np.array([0, len(items) - 1]), "frames")
    assert x.shape[1:] == (5, 64, 64)


def test_proportion_map_puts_each_tile_at_its_place():
    import pandas as pd

    tile, stride = 16, 8
    rows = [(t0, y0, x0) for t0 in (0, 5) for y0 in range(0, 48 - tile + 1, stride)
            for x0 in range(0, 40 - tile + 1, stride)]
    pred = pd.DataFrame(rows, columns=["t0", "y0", "x0"])
    pred["proportion"] = (pred["y0"] * 1000 + pred["x0"] + pred["t0"] * 1e5) / 1e6
    out = proportion_map(pred, (10, 48, 40), tile, stride)
    pmap = np.asarray(out[0] if isinstance(out, tuple) else out)
    assert pmap.shape == (2, (48 - tile) // stride + 1, (40 - tile) // stride + 1)
    for t0, y0, x0 in rows[::5]:
        want = (y0 * 1000 + x0 + t0 * 1e5) / 1e6
        assert pmap[t0 // 5, y0 // stride, x0 // stride] == pytest.approx(want, rel=1e-5)
