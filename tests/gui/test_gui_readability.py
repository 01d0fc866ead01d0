"""What the widgets show can be read: "label as" offers the model's classes, the previous
data's layers and trace plot go away, the table follows the current item, result plots have
integer epochs, axis labels and readable confusion matrices, mixture reports A / MAE."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import load_jurkat, use_layers

pytestmark = pytest.mark.gui

CLASSES_13 = ["normal", "macrocyte", "microcyte", "spherocyte", "target_cell", "stomatocyte",
              "ovalocyte", "teardrop", "burr_cell", "schistocyte", "uncategorised",
              "hypochromia", "elliptocyte"]


def _session(viewer, task="celltype", n=12, classes=("a", "b"), traces=False,
             scores=None):
    """A small in-memory session on a Points layer of ``viewer`` (no project)."""
    from napari_cellcurator._qt.common import Session
    from napari_cellcurator.core.io.items import ItemSet

    table = pd.DataFrame({"item_id": [f"i{k}" for k in range(n)], "source": "mem",
                          "label": None, "y": 10.0 * np.arange(n), "x": 5.0})
    arrays = {"image": np.zeros((n, 1, 8, 8), np.float32)}
    if traces:
        arrays["trace"] = np.random.default_rng(0).random((n, 40)).astype(np.float32)
    items = ItemSet(table, arrays, {"classes": list(classes)})
    s = Session(task, items, "/tmp/mem", None)
    s.layer = viewer.add_points(table[["y", "x"]].to_numpy(), name=f"{task} items",
                                metadata={"cellcurator_role": "items",
                                          "cellcurator_path": "/tmp/mem"})
    if scores is not None:
        from napari_cellcurator.core.tasks import get_task

        s.predictions = get_task(task).prediction_table(table, scores, list(classes))
        s.scores = scores
    s.refresh_layer()
    return s


def _curate(viewer):
    from napari_cellcurator._qt.curate_widget import CurateWidget

    curate = CurateWidget(viewer)
    viewer.window.add_dock_widget(curate)
    return curate


def _values(combo):
    return [c[1] if isinstance(c, tuple) else c for c in combo.choices]


# ---- 1. "label as" ------------------------------------------------------------------------
def test_label_as_follows_a_new_model(make_napari_viewer):
    """A 13-class model arriving after the session (Train's "model", Predict's "predictions")
    fills "label as" with its 13 classes: the 10th-13th are reachable with ``l``."""
    from napari_cellcurator._qt.common import hub_for

    viewer = make_napari_viewer()
    s = _session(viewer, classes=())
    hub = hub_for(viewer)
    hub.set_session(s)
    curate = _curate(viewer)
    assert _values(curate._label_as) == []
    for event in ("model", "predictions"):
        s.config, s.classes = SimpleNamespace(classes=CLASSES_13), list(CLASSES_13)
        hub.changed.emit(event)
        assert _values(curate._label_as) == CLASSES_13, event
        s.config, s.classes = None, []
        hub.changed.emit(event)
        assert _values(curate._label_as) == []


def test_label_as_names_the_mixture_models_cell_types(make_napari_viewer):
    """Mixture: the model's config names the two types (not the reader's type_a/type_b)."""
    from napari_cellcurator._qt.common import hub_for

    viewer = make_napari_viewer()
    s = _session(viewer, task="mixture", classes=("type_a", "type_b"))
    hub = hub_for(viewer)
    hub.set_session(s)
    curate = _curate(viewer)
    assert _values(curate._label_as) == ["type_a", "type_b"]
    assert curate._help.value.startswith("c accept proportion")  # not "c/x cell·not"
    s.config = SimpleNamespace(classes=["T98G", "C2C12"])
    hub.changed.emit("model")
    assert _values(curate._label_as) == ["T98G", "C2C12"]


def test_key_help_is_task_specific(make_napari_viewer):
    from napari_cellcurator._qt.common import hub_for

    viewer = make_napari_viewer()
    hub = hub_for(viewer)
    hub.set_session(_session(viewer, classes=CLASSES_13))
    curate = _curate(viewer)
    assert curate._help.value.startswith("c accept prediction, x runner-up, 1-9 class")
    hub.set_session(_session(viewer, task="cellness", classes=("not_cell", "cell")))
    assert curate._help.value.startswith("c cell, x not cell, 1-2 class")


# ---- 2. the previous data go away ---------------------------------------------------------
def test_trace_plot_hidden_for_data_without_traces(make_napari_viewer):
    from napari_cellcurator._qt.common import hub_for

    viewer = make_napari_viewer()
    hub = hub_for(viewer)
    hub.set_session(_session(viewer, task="cellness", classes=("not_cell", "cell"),
                             traces=True))
    curate = _curate(viewer)
    assert curate.trace_plot is not None and not curate.trace_plot.isHidden()
    hub.set_session(_session(viewer))  # crops, no traces
    assert curate.trace_plot.isHidden()
    curate.trace_plot.wait_idle()
    assert not curate.trace_plot.axes[0].lines  # the old trace is gone too
    hub.set_session(_session(viewer, task="cellness", classes=("not_cell", "cell"),
                             traces=True))
    assert not curate.trace_plot.isHidden()
    curate.trace_plot.wait_idle()
    assert curate.trace_plot.axes[0].get_xlabel() == "frame"
    assert curate.trace_plot.axes[0].get_ylabel() == "F"


def test_loading_other_data_hides_the_previous_datas_layers(make_napari_viewer, qtbot,
                                                            jurkat_copy, jurkat_subset,
                                                            tmp_path, monkeypatch):
    """Load → Load and Load → *Use these layers*: the plugin's layers of the data shown
    before are hidden (kept), the user's own layers never."""
    import shutil

    from napari_cellcurator._qt.load_widget import LoadWidget

    monkeypatch.setenv("CELLCURATOR_DATA_DIR", str(tmp_path / "userdata"))
    viewer = make_napari_viewer()
    mine = viewer.add_points(np.array([[1.0, 1.0]]), name="my notes")
    _, first = load_jurkat(viewer, qtbot, jurkat_copy)
    first_layers = [ly for ly in viewer.layers if ly is not mine]
    assert first_layers and all(ly.visible for ly in first_layers)
    other = tmp_path / "other"
    for cls in ("G1", "G2"):
        (other / cls).mkdir(parents=True)
        for f in sorted((jurkat_subset / cls).glob("*.tif"))[:3]:
            shutil.copy(f, other / cls / f.name)
    _, second = load_jurkat(viewer, qtbot, other)
    assert not any(ly.visible for ly in first_layers)  # hidden...
    assert all(ly in viewer.layers for ly in first_layers)  # ...not deleted
    assert second.layer.visible and mine.visible
    second_layers = [ly for ly in viewer.layers if ly is not mine and ly not in first_layers]
    # the user's own image + points, used as data: the Load'ed data are hidden, theirs not
    image = viewer.add_image(np.random.default_rng(0).random((200, 200)), name="my image")
    cells = viewer.add_points(np.array([[50.0, 50.0], [120.0, 80.0], [150.0, 150.0]]),
                              name="my cells")
    load = LoadWidget(viewer)
    third = use_layers(load, qtbot, image, cells)
    assert third.layer is cells
    assert not any(ly.visible for ly in second_layers)
    assert image.visible and cells.visible and mine.visible


# ---- 3. the table follows the current item ------------------------------------------------
def test_table_shows_the_review_order_and_selects_the_current_item(make_napari_viewer):
    from napari_cellcurator._qt.common import hub_for

    viewer = make_napari_viewer()
    scores = np.random.default_rng(1).dirichlet(np.ones(3), size=60).astype(np.float32)
    s = _session(viewer, n=60, classes=("a", "b", "c"), scores=scores)
    hub_for(viewer).set_session(s)
    curate = _curate(viewer)
    assert not np.array_equal(s.order, np.arange(60))  # uncertain first: not item order
    ids = s.items.table["item_id"]
    assert [curate.table.row_values(r)[0] for r in range(5)] == list(ids[s.order[:5]])
    for _ in range(4):
        curate.step(1)
    row = curate.current_row()
    selected = curate.table.selectionModel().selectedRows()
    assert [curate.table.source.item_row(i.row()) for i in selected] == [row]
    assert selected[0].row() == 3  # the 4th item reviewed is the table's 4th row
    curate._order_mode.value = "random"  # another order: the table follows
    assert [curate.table.row_values(r)[0] for r in range(5)] == list(ids[s.order[:5]])


def test_select_item_scrolls_to_it(qtbot):
    from napari_cellcurator._qt.item_table import ItemTable

    table = ItemTable(("item_id", "label"))
    qtbot.addWidget(table)
    table.resize(300, 200)
    table.show()
    table.fill(pd.DataFrame({"item_id": [f"i{k}" for k in range(500)], "label": None}))
    assert table.verticalScrollBar().value() == 0
    table.select_item(400)
    qtbot.waitUntil(lambda: table.verticalScrollBar().value() > 0, timeout=5_000)
    top, bottom = table.rowAt(0), table.rowAt(table.viewport().height() - 1)
    assert top <= 400 <= bottom


# ---- 4. result plots ----------------------------------------------------------------------
def test_curves_have_integer_epochs_and_named_metric(qtbot):
    from napari_cellcurator._qt.plots import CurvesPlot

    plot = CurvesPlot()
    qtbot.addWidget(plot)
    plot.set_metric_name("macro F1")
    plot.add_epoch(1, 1.5, 1.4, 0.33)
    plot.wait_idle()
    loss_ax, metric_ax = plot.axes
    for ax in plot.axes:
        ticks = ax.get_xticks()
        assert len(ticks) and np.allclose(ticks, np.round(ticks)), ticks
        assert ax.get_xlabel() == "epoch"
    for epoch in range(2, 8):
        plot.add_epoch(epoch, 1.5 / epoch, 1.4 / epoch, 0.33)
    plot.wait_idle()
    ticks = loss_ax.get_xticks()
    assert np.allclose(ticks, np.round(ticks)) and 7 in ticks.round(), ticks
    assert metric_ax.get_title() == "validation macro F1"
    assert metric_ax.get_ylabel() == "macro F1" and loss_ax.get_ylabel() == "loss"
    assert plot.figure.get_layout_engine() is not None  # labels fitted, not clipped


def test_confusion_is_readable_with_many_classes(qtbot):
    from napari_cellcurator._qt.plots import ConfusionPlot

    plot = ConfusionPlot()
    qtbot.addWidget(plot)
    n = len(CLASSES_13)
    cm = np.random.default_rng(0).integers(0, 30, size=(n, n)).tolist()
    plot.show_metrics({"classes": CLASSES_13, "confusion": cm,
                       "per_class": {c: {"f1": 0.5} for c in CLASSES_13}})
    plot.wait_idle()
    cm_ax = plot.axes[0]
    assert not cm_ax.texts  # 169 numbers would overlap
    assert cm_ax.get_xlabel() == "predicted" and cm_ax.get_ylabel() == "true"
    labels = cm_ax.get_xticklabels()
    assert [t.get_text() for t in labels] == CLASSES_13
    assert all(0 < t.get_rotation() < 90 and t.get_ha() == "right" for t in labels)
    assert plot.figure.get_layout_engine() is not None
    assert plot.minimumHeight() >= 18 * n  # a row of pixels per class name
    plot.show_metrics({"classes": ["a", "b"], "confusion": [[3, 1], [0, 4]],
                       "per_class": {"a": {"f1": 0.8}, "b": {"f1": 0.9}}})
    plot.wait_idle()
    assert len(cm_ax.texts) == 4  # few classes: counts written


def _train_widget(viewer):
    from napari_cellcurator._qt.train_widget import TrainWidget

    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return widget


def _wait(qtbot, cond, seconds=5.0):
    end = time.time() + seconds
    while time.time() < end and not cond():
        qtbot.wait(20)


def test_mixture_results_say_a_and_mae_without_a_confusion(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = _train_widget(viewer)
    assert widget.confusion.isHidden()  # no empty axes before any result
    before = {"n": 36, "A": 0.70, "mae": 0.30, "accuracy": 0.70, "macro_f1": 0.9,
              "confusion": [[10, 2], [3, 21]], "classes": ["T98G", "C2C12"]}
    after = dict(before, A=0.755, mae=0.245, accuracy=0.755, macro_f1=1.0)
    widget._show_metrics(before, after, "v0002")
    _wait(qtbot, lambda: False, 0.3)
    text = widget._metrics.value
    assert "A 0.755, MAE 0.245" in text and "F1" not in text and "acc" not in text
    assert "your 36 labelled items" in text and "trained on them" in text
    assert widget.confusion.isHidden()


def test_classifier_results_show_confusion_and_name_the_metric(make_napari_viewer, qtbot):
    from napari_cellcurator.core import training

    viewer = make_napari_viewer()
    widget = _train_widget(viewer)
    after = {"n": 8, "accuracy": 0.875, "macro_f1": 0.8, "classes": ["a", "b"],
             "confusion": [[3, 1], [0, 4]], "per_class": {"a": {"f1": 0.8}, "b": {"f1": 0.9}}}
    widget._show_metrics(None, after, "v0002")
    qtbot.waitUntil(lambda: not widget.confusion.isHidden(), timeout=5_000)
    assert "macro F1 0.800" in widget._metrics.value and "your 8 labelled" in widget._metrics.value
    # mixture epochs plot A (its primary metric), not the dominant-type macro F1
    widget._task_name = "mixture"
    widget._on_update(training.EpochDone(1, 2, 0.5, 0.4, {"A": 0.7, "macro_f1": 1.0}, 1.0,
                                         True))
    assert widget.curves.metric_values == [0.7]


# ---- 5. cosmetics -------------------------------------------------------------------------
def test_load_and_train_controls_sit_at_the_top(make_napari_viewer):
    """A stretch at the bottom: the tab's spare height is not spread between controls."""
    from napari_cellcurator._qt.load_widget import LoadWidget

    viewer = make_napari_viewer()
    for widget in (LoadWidget(viewer), _train_widget(viewer)):
        layout = widget.native.layout()
        assert layout.itemAt(layout.count() - 1).spacerItem() is not None, widget
