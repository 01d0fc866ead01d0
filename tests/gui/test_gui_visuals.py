"""What the layers look like (state, not pixels): zoom on an item, label/prediction
conflicts, the class and cluster palettes, the explanation's colormap."""

from __future__ import annotations

import colorsys
import types

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.gui


def _session(viewer, n=9, side=60.0, size=10.0, task="celltype"):
    from napari_cellcurator.core.io.items import ItemSet

    table = pd.DataFrame({"item_id": [f"c{i}" for i in range(n)], "label": None, "source": "s",
                          "y": np.linspace(5, side - 5, n), "x": np.linspace(5, side - 5, n)})
    items = ItemSet(table, {"image": np.zeros((n, 1, 8, 8), np.float32)}, {})
    viewer.add_image(np.zeros((int(side), int(side)), np.float32))
    layer = viewer.add_points(table[["y", "x"]].to_numpy(), size=size)
    return types.SimpleNamespace(items=items, layer=layer, task_name=task,
                                 centre_of=lambda r: table[["y", "x"]].to_numpy()[r])


def test_centre_on_item_zooms_in_to_about_four_items_never_below_fit():
    from napari.components import ViewerModel

    from napari_cellcurator._qt.common import camera_of
    from napari_cellcurator._qt.task_layers import centre_on_item

    viewer = ViewerModel()
    session = _session(viewer)  # a small 60 px image: fit already shows it large
    viewer.reset_view()
    fit = camera_of(viewer).zoom
    centre_on_item(viewer, session, 4)
    camera = camera_of(viewer)
    assert camera.zoom >= fit - 1e-9
    side = min(viewer.canvas.viewbox_size(viewer.layers))
    assert camera.zoom == pytest.approx(max(fit, side / (4 * 10.0)))
    np.testing.assert_allclose(camera.center[-2:], session.centre_of(4))

    big = ViewerModel()  # a large image: zoomed in onto the item, not the whole image
    session = _session(big, side=4000.0)
    big.reset_view()
    fit = camera_of(big).zoom
    centre_on_item(big, session, 0)
    assert camera_of(big).zoom > 5 * fit


def _feats(label, source, pred, prob):
    from napari_cellcurator._qt.layers import item_features

    table = pd.DataFrame({"item_id": [f"i{k}" for k in range(len(label))],
                          "label": pd.Series(label, dtype=object)})
    predictions = pd.DataFrame({"prediction": pred, "probability": prob,
                                "uncertainty": np.zeros(len(label))})
    return item_features(table, predictions, pd.Series(source))


def test_model_contradicting_a_file_label_is_visible():
    from napari_cellcurator._qt.layers import (
        HUMAN_SYMBOL,
        MODEL_SYMBOL,
        class_color,
        labels_colormap_dict,
        point_style,
    )

    conflict_symbol, conflict_rgb = "diamond", (1.0, 1.0, 1.0)  # layers.CONFLICT_*
    classes = ["not_cell", "cell"]
    # agrees; contradicted file label; human label contradicted; unlabelled, predicted
    feats = _feats(["cell", "cell", "cell", None], ["file", "file", "human", ""],
                   ["cell", "not_cell", "not_cell", "cell"], [0.9, 0.7, 0.99, 0.6])
    style = point_style(feats, classes)
    assert list(style["symbol"]) == [MODEL_SYMBOL, conflict_symbol, HUMAN_SYMBOL, MODEL_SYMBOL]
    border = style["border_color"]
    # the contradiction shows the model's class, faded by ITS probability
    np.testing.assert_allclose(border[1], class_color(classes, "not_cell", 0.5 + 0.5 * 0.7))
    np.testing.assert_allclose(border[0][3], 0.5 + 0.5 * 0.9)
    assert border[2][3] == 1.0 and border[3][3] == pytest.approx(0.8)
    colours = labels_colormap_dict(feats, np.arange(1, 5), classes)
    np.testing.assert_allclose(colours[2][:3], conflict_rgb)  # contradicted: white
    assert not np.allclose(colours[1][:3], colours[2][:3])
    assert colours[3][3] == 1.0 and max(colours[k][3] for k in (1, 2, 4)) <= 0.5  # human
    assert list(feats["shown_class"]) == ["cell", "not_cell", "cell", "cell"]


def test_palette_twenty_distinct_colours_no_grey_thick_rings_fade_floor():
    from napari_cellcurator._qt.layers import PALETTE, class_colors, point_style

    assert len(PALETTE) >= 20
    assert len({tuple(np.round(c, 2)) for c in PALETTE}) == len(PALETTE)
    saturation = np.array([colorsys.rgb_to_hsv(*c)[1] for c in PALETTE])
    assert saturation.min() > 0.2  # no grey: grey means "no class"
    classes = [f"k{i}" for i in range(13)]
    assert len({tuple(c) for c in class_colors(classes, classes, np.ones(13))}) == 13
    feats = _feats([None] * 3, [""] * 3, ["k0", "k1", "k2"], [0.0, 0.2, 0.7])
    style = point_style(feats, classes)
    assert style["border_color"][:, 3].min() >= 0.5
    assert style["border_width"].min() >= 0.15


def test_cluster_colours_are_not_class_colours_and_do_not_hide_the_image():
    from napari_cellcurator._qt import cluster_widget
    from napari_cellcurator._qt.layers import PALETTE

    rgb = cluster_widget.cluster_colors(np.arange(10))[:, :3]
    distance = np.abs(rgb[:, None, :] - PALETTE[None, :, :]).max(axis=2)
    assert distance.min() >= 0.09  # no cluster takes a class's colour
    assert cluster_widget.CLUSTER_FILL_ALPHA <= 0.25 and cluster_widget.CLUSTER_ROI_ALPHA <= 0.5


def test_mixture_tiles_show_on_every_frame_of_their_snippet():
    from napari.components import ViewerModel

    from napari_cellcurator._qt import layer_items
    from napari_cellcurator._qt.task_layers import add_proportion_map

    viewer = ViewerModel()
    movie = np.random.default_rng(0).random((10, 128, 128)).astype(np.float32)
    image = viewer.add_image(movie, name="movie")
    items, (coords, kwargs, _) = layer_items.mixture_from_movie(image.data, image.rgb,
                                                                "movie", "movie")
    points = viewer.add_points(coords, **kwargs)
    pred = items.table.copy()
    pred["proportion"] = np.linspace(0, 1, len(pred))
    session = types.SimpleNamespace(items=items, predictions=pred, layer=points)
    add_proportion_map(viewer, session)
    length = items.arrays["frames"].shape[1]
    middles = points.data[:, 0]
    assert points.projection_mode == "all"
    # half a snippet either side of the frame shown: a snippet's point on all its frames,
    # the next snippet's not
    assert viewer.dims.thickness[0] == pytest.approx(length - 1)
    for frame in range(10):
        near = np.abs(middles - frame) <= viewer.dims.thickness[0] / 2
        starts = items.table["t0"].to_numpy()
        assert np.array_equal(near, (starts <= frame) & (frame < starts + length))
    # the movie and the map show their own frame, not a mean over the thick slice
    assert image.projection_mode == "none"
    assert viewer.layers["proportion map"].projection_mode == "none"


def test_explanation_overlay_is_transparent_at_zero(make_napari_viewer, monkeypatch):
    from napari_cellcurator._qt import explain_widget
    from napari_cellcurator._qt.common import hub_for

    viewer = make_napari_viewer()
    widget = explain_widget.ExplainWidget(viewer)
    session = object()
    hub_for(viewer).session = session
    monkeypatch.setattr(explain_widget, "item_scale_translate",
                        lambda *_: ((1.0, 1.0), (0.0, 0.0)))
    heat = np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8)
    widget._show(session, 0, heat, 1.0)
    layer = viewer.layers["explanation"]
    lo, hi = layer.contrast_limits
    rgba = layer.colormap.map(np.array([0.0, 0.5, 1.0]))  # -max, 0, +max
    assert lo == -hi and rgba[1, 3] == pytest.approx(0.0)  # zero: nothing painted
    assert rgba[0, 3] == pytest.approx(1.0) and rgba[2, 3] == pytest.approx(1.0)
    assert rgba[0, 2] > rgba[0, 0] and rgba[2, 0] > rgba[2, 2]  # blue against, red for
    assert layer.blending == "translucent"


def test_an_imported_label_is_drawn_as_a_persons():
    """Labels a person gave in a project of an earlier version (journal source 'import')
    decide like 'human' ones: never drawn as the model's class."""
    from napari_cellcurator._qt.layers import HUMAN_SYMBOL, point_style

    classes = ["not_cell", "cell"]
    feats = _feats(["cell", "cell"], ["import", "human"], ["not_cell", "not_cell"],
                   [0.9, 0.9])
    style = point_style(feats, classes)
    assert list(style["symbol"]) == [HUMAN_SYMBOL, HUMAN_SYMBOL]
    assert list(feats["shown_class"]) == ["cell", "cell"]
