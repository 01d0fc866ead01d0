"""Segmenting PCA/ICA spatial filters: one candidate per cell however many filters find it,
too small and too large segments dropped, partial overlaps kept."""

from __future__ import annotations

import numpy as np

from napari_cellcurator.core.io.pcaica import segment_filters


def disc(shape, cy, cx, r) -> np.ndarray:
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(float)


def test_segments_are_deduplicated_and_sized():
    shape = (120, 100)
    noise = np.random.default_rng(0).normal(0, 0.01, (3, *shape))
    cell_a = disc(shape, 30, 30, 5)  # found by filters 0 and 1: one candidate
    cell_b = disc(shape, 30, 39, 5)  # overlaps a by < half: its own candidate
    speck = disc(shape, 90, 20, 1)  # 5 px (~25 once smoothed): under min_area
    cell_c = disc(shape, 80, 70, 6)
    filters = noise + np.stack([cell_a + speck, cell_a + cell_c, cell_b])
    segments = segment_filters(filters, sigma=1.0, z_thresh=3.0, min_area=40)
    centres = sorted((round(ys.mean()), round(xs.mean())) for ys, xs, _ in segments)
    assert centres == [(30, 30), (30, 39), (80, 70)]
    for ys, xs, lam in segments:
        flat = np.ravel_multi_index((ys, xs), shape)
        assert np.all(np.diff(flat) > 0)  # row-major pixel order
        assert len(lam) == len(ys) and np.all(lam > 0)
    huge = noise[:1] + disc(shape, 60, 50, 45)[None]  # > 1/8 of the frame: not a cell
    assert segment_filters(huge, min_area=12) == []
