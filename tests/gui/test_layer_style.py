"""Item colours: the vectorised class colours equal the per-item rule; a relabel refresh
re-colours the layer without re-sending unchanged symbols."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.gui


def test_class_colors_match_class_color_item_by_item():
    from napari_cellcurator._qt.layers import class_color, class_colors

    classes = ["G1", "G2", "S_phase"]
    names = ["G2", None, "", "Mitosis", "G1", np.nan, "S_phase"]
    alpha = np.linspace(0.3, 1.0, len(names))
    expected = np.array([class_color(classes, None if isinstance(n, float) else n, a)
                         for n, a in zip(names, alpha, strict=True)])
    np.testing.assert_allclose(class_colors(classes, names, alpha), expected)
    assert class_colors(classes, [], np.zeros(0)).shape == (0, 4)


def test_relabel_recolours_and_marks_the_item_human(make_napari_viewer, jurkat_subset,
                                                    tmp_path):
    from napari_cellcurator._qt.common import Session
    from napari_cellcurator._qt.layers import HUMAN_SYMBOL, MODEL_SYMBOL, layer_data_for
    from napari_cellcurator.core.store.project import Project
    from napari_cellcurator.core.tasks import ReadOptions, get_task

    items = get_task("celltype").read(jurkat_subset, ReadOptions(channels=[0, 2]))
    items.table["label"] = None  # nothing labelled yet: every item shows the model's symbol
    viewer = make_napari_viewer()
    session = Session("celltype", items, jurkat_subset, Project(tmp_path / "proj"),
                      classes=["G1", "G2", "Prophase"])
    for data, kwargs, kind in layer_data_for("celltype", items, None, session.classes):
        layer = getattr(viewer, f"add_{kind}")(data, **kwargs)
    session.layer = layer
    session.refresh_layer()
    assert {str(s) for s in layer.symbol} == {MODEL_SYMBOL}
    session.set_label(3, "Prophase")
    assert str(layer.symbol[3]) == HUMAN_SYMBOL and str(layer.symbol[2]) == MODEL_SYMBOL
    assert layer.features["label"].iloc[3] == "Prophase"
    np.testing.assert_allclose(layer.border_color[3][:3],
                               session_colour(session.classes, "Prophase"))
    pd.testing.assert_series_equal(layer.features["item_id"], items.table["item_id"],
                                   check_names=False, check_dtype=False)


def session_colour(classes, name):
    from napari_cellcurator._qt.layers import class_color

    return class_color(classes, name)[:3]
