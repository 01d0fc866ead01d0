"""Placing maps over their item's pixels: world bounding boxes computed independently."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellcurator.core.explain.align import clip_to_frame, map_scale_translate, world_bbox


def _crop_world_bbox(y0, x0, ch, cw, scale, translate):
    """World box of source pixels y0..y0+ch-1 × x0..x0+cw-1, from pixel-corner arithmetic."""
    sy, sx = scale[-2:]
    ty, tx = translate[-2:]
    top_left = (ty + (y0 - 0.5) * sy, tx + (x0 - 0.5) * sx)
    bottom_right = (ty + (y0 + ch - 0.5) * sy, tx + (x0 + cw - 0.5) * sx)
    return np.array([top_left, bottom_right])


@pytest.mark.parametrize("map_shape", [(48, 48), (40, 40), (64, 32), (7, 48, 48)])
def test_map_covers_an_edge_crop_on_an_anisotropic_layer(map_shape):
    # a 48-px crop centred 5 px from the top-left corner: 19 px of it lie past the border
    y0, x0, crop = 5 - 24, 5 - 24, (48, 48)
    layer_scale, layer_translate = (10.0, 0.5, 0.25), (3.0, -7.0, 12.0)  # (T, Y, X) movie
    scale, translate = map_scale_translate(y0, x0, crop, map_shape, layer_scale, layer_translate)
    got = world_bbox(map_shape, scale, translate)
    want = _crop_world_bbox(y0, x0, *crop, layer_scale, layer_translate)
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_one_to_one_map_pixels_land_on_source_pixels():
    scale, translate = map_scale_translate(30, 40, (16, 16), (16, 16), (2.0, 3.0), (1.0, 1.0))
    assert scale == (2.0, 3.0)
    # map pixel (0, 0) centre = source pixel (30, 40) centre
    assert translate == (1.0 + 30 * 2.0, 1.0 + 40 * 3.0)


def test_clip_to_frame_keeps_only_pixels_inside_the_frame():
    frame = (100, 80)
    y0, x0, crop = -6, 70, (16, 16)  # past the top and the right edge
    m = np.arange(256, dtype=np.float32).reshape(16, 16)
    kept, ny0, nx0, ncrop = clip_to_frame(m, y0, x0, crop, frame)
    assert kept.shape == (10, 10) and (ny0, nx0) == (0, 70) and ncrop == (10, 10)
    np.testing.assert_array_equal(kept, m[6:, :10])
    s, t = map_scale_translate(ny0, nx0, ncrop, kept.shape, (0.5, 2.0), (0, 0))
    got = world_bbox(kept.shape, s, t)
    want = np.array([[(0 - 0.5) * 0.5, (70 - 0.5) * 2.0], [(10 - 0.5) * 0.5, (80 - 0.5) * 2.0]])
    np.testing.assert_allclose(got, want)


def test_cellness_patch_pixels_land_on_their_footprint_pixels():
    """End to end with the reader's own patch cutter: an ROI 3 px from the frame edge."""
    import pandas as pd

    from napari_cellcurator.core.data.roi_images import footprint_patch, roi_centre
    from napari_cellcurator.core.explain.output import item_placement

    ypix = np.array([2, 2, 3, 3, 4, 5])
    xpix = np.array([96, 97, 96, 97, 98, 97])  # frame is 100 px wide
    lam = np.array([1.0, 0.5, 0.8, 0.9, 0.2, 0.3])
    size = 32
    patch = footprint_patch(ypix, xpix, lam, size)
    cy, cx = roi_centre(ypix, xpix, lam)
    row = pd.Series({"item_id": "r0", "y": cy, "x": cx, "source": "movie.tif"})
    place = item_placement(row, (size, size), {"read_options": {"crop_size": size}})
    layer_scale, layer_translate = (1.5, 0.75), (-4.0, 10.0)
    scale, translate = map_scale_translate(place["y0"], place["x0"], place["crop_shape"],
                                           (size, size), layer_scale, layer_translate)
    py, px = np.nonzero(patch[1])  # the mask channel: where the footprint pixels landed
    assert len(py) == len(ypix)
    world_map = np.stack([translate[0] + py * scale[0], translate[1] + px * scale[1]], 1)
    world_src = np.stack([layer_translate[0] + ypix * layer_scale[0],
                          layer_translate[1] + xpix * layer_scale[1]], 1)
    def rows(a):
        return a[np.lexsort((a[:, 1], a[:, 0]))]

    np.testing.assert_allclose(rows(world_map), rows(world_src))


def test_a_resized_point_crop_map_covers_the_whole_crop_in_the_frame():
    """Chula points: 64 frame pixels around each point resized to a 32 px input. The map
    of the input must cover those 64 px (it covered the central 32, a quarter of the cell's
    crop); mixture tiles record their frame size and first frame the same way."""
    from napari_cellcurator.core.explain.output import item_placement
    from napari_cellcurator.core.io.points import items_from_points

    frame = np.random.default_rng(1).integers(0, 255, (3, 480, 640), dtype=np.uint8)
    items = items_from_points(frame, np.array([[280.0, 300.0]]), ["normal"], crop_size=64,
                              input_size=32, qc=False)
    assert items.arrays["image"].shape[-1] == 32
    place = item_placement(items.table.iloc[0], (32, 32), {"read_options": {"crop_size": 32}})
    assert place["crop_shape"] == [64, 64] and place["y0"] == 280 - 32
    assert place["scale"] == [2.0, 2.0]
    tile = {"y0": 64, "x0": 128, "size": 128, "t0": 10, "source": "movie.tif"}
    place = item_placement(tile, (64, 64), {"read_options": {}})
    assert place["crop_shape"] == [128, 128] and place["frame"] == 10
