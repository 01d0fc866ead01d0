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


def _session_on_layer(viewer, tmp_path, kind: str, n: int = 400):
    """A session of ``n`` synthetic items with predictions, on a Points or Labels layer."""
    from napari_cellcurator._qt.common import Session
    from napari_cellcurator.core.io.items import ItemSet
    from napari_cellcurator.core.store.project import Project

    rng = np.random.default_rng(1)
    classes = ["G1", "G2", "S_phase"]
    table = pd.DataFrame({"item_id": [f"c{i}" for i in range(n)],
                          "label": rng.choice(["G1", None], n).astype(object),
                          "y": 10.0 * (np.arange(n) // 20), "x": 10.0 * (np.arange(n) % 20),
                          "source": "smear.tif"})
    items = ItemSet(table, {"image": np.zeros((n, 1, 4, 4), np.float32)}, {"classes": classes})
    session = Session("celltype", items, tmp_path, Project(tmp_path / "proj"), classes=classes)
    session.predictions = pd.DataFrame({"prediction": rng.choice(classes, n),
                                        "probability": rng.random(n),
                                        "uncertainty": rng.random(n)})
    if kind == "points":
        session.layer = viewer.add_points(table[["y", "x"]].to_numpy(), size=4)
    else:
        session.layer = viewer.add_labels(np.arange(n, dtype=np.int32).reshape(20, -1) + 1)
    session.refresh_layer()
    return session


@pytest.mark.parametrize("kind", ["points", "labels"])
def test_keypress_refresh_of_one_row_equals_the_whole_refresh(make_napari_viewer, tmp_path,
                                                              kind):
    """A keypress restyles only its item; the layer must end exactly as a full rebuild."""
    from napari_cellcurator._qt.layers import point_style

    viewer = make_napari_viewer()
    session = _session_on_layer(viewer, tmp_path, kind)
    layer = session.layer
    layer.features["cluster"] = np.arange(len(layer.features)) % 3  # the Cluster widget's
    rng = np.random.default_rng(2)
    ids = session.items.table["item_id"]
    session.journal.set_labels(ids[:50], ["S_phase"] * 50, source="cluster")
    session.refresh_layer()
    layer.features["cluster"] = np.arange(len(layer.features)) % 3
    for step in range(30):
        if step % 7 == 6:
            session.undo()
        else:
            label = ["G1", "G2", None][int(rng.integers(3))]  # None: label cleared
            session.set_label(int(rng.integers(len(ids))), label)
        whole = session.features()
        pd.testing.assert_frame_equal(layer.features[whole.columns], whole, check_dtype=False)
        if kind == "points":
            style = point_style(whole, session.classes)
            np.testing.assert_allclose(layer.border_color, style["border_color"])
            np.testing.assert_allclose(layer.border_width, style["border_width"])
            assert [str(s) for s in layer.symbol] == list(style["symbol"])
    assert list(layer.features["cluster"]) == list(np.arange(len(ids)) % 3)  # kept
