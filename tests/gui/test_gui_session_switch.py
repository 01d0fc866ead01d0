"""Widgets when the user loads other data, closes a widget or edits the item layer: results
stay with the data they belong to, keys with the widget that bound them."""

from __future__ import annotations

import gc
import shutil
import weakref

import numpy as np
import pytest
from conftest import load_jurkat, press

pytestmark = pytest.mark.gui


def _second_set(jurkat_subset, tmp_path, n: int = 4):
    """Another small Jurkat folder (two classes), a data set of its own."""
    dst = tmp_path / "other"
    for cls in ("G1", "G2"):
        (dst / cls).mkdir(parents=True)
        for f in sorted((jurkat_subset / cls).glob("*.tif"))[:n]:
            shutil.copy(f, dst / cls / f.name)
    return dst



def test_export_path_follows_the_data_unless_the_user_chose_one(make_napari_viewer, qtbot,
                                                                 jurkat_copy, jurkat_subset,
                                                                 tmp_path):
    from napari_cellcurator._qt.export_widget import ExportWidget

    viewer = make_napari_viewer()
    export = ExportWidget(viewer)
    load_jurkat(viewer, qtbot, jurkat_copy)
    assert export._path.value.name == "jurkat_curated.csv"
    load_jurkat(viewer, qtbot, _second_set(jurkat_subset, tmp_path))
    assert export._path.value.name == "other_curated.csv"  # not A's file, overwritten
    chosen = tmp_path / "mine.csv"
    export._path.value = chosen
    load_jurkat(viewer, qtbot, jurkat_copy)
    assert export._path.value == chosen


def test_cluster_results_are_dropped_with_their_data(make_napari_viewer, qtbot, jurkat_copy,
                                                     jurkat_subset, tmp_path):
    from napari_cellcurator._qt.cluster_widget import ClusterWidget

    viewer = make_napari_viewer()
    _, first = load_jurkat(viewer, qtbot, jurkat_copy)
    widget = ClusterWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget._k.value, widget._epochs.value = 3, 1
    worker = widget.run()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    qtbot.waitUntil(lambda: widget.table is not None, timeout=10_000)
    choices = widget._cluster.choices
    viewer.layers[0].name = "renamed"  # napari resets every docked widget's choices
    assert widget._cluster.choices == choices and len(choices) == 3
    widget.select_rows([0, 1, 2])
    _, second = load_jurkat(viewer, qtbot, _second_set(jurkat_subset, tmp_path))
    assert widget.table is None and len(widget.selected) == 0
    assert widget._cluster.choices == ()
    widget._name.value = "bulk"
    assert widget.accept_cluster() is None  # nothing of A's is applied to B
    assert len(second.journal.current_labels()) == 0


def test_explain_targets_survive_napari_resetting_choices(make_napari_viewer, qtbot,
                                                          jurkat_copy):
    from napari_cellcurator._qt.explain_widget import ExplainWidget

    viewer = make_napari_viewer()
    _, session = load_jurkat(viewer, qtbot, jurkat_copy)
    widget = ExplainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    viewer.add_image(np.zeros((4, 4)), name="anything")
    assert list(widget._target.choices)[1:] == session.classes


def test_training_result_goes_to_the_data_it_was_trained_on(loaded, qtbot, jurkat_subset,
                                                            tmp_path):
    from napari_cellcurator._qt.train_widget import TrainWidget

    viewer, first = loaded
    table = first.items.table
    for row in range(4):
        first.set_label(row, table["label"].iloc[row])
    train = TrainWidget(viewer)
    train._epochs.value = 1
    worker = train.train()
    _, second = load_jurkat(viewer, qtbot, _second_set(jurkat_subset, tmp_path))
    with qtbot.waitSignal(train.done, timeout=180_000):
        pass
    assert worker is not None
    assert second.version is None and second.model is None  # B keeps its (no) model
    assert first.project.models.current() == "v0002"  # A's project got the new version
    assert "previous data" in train._status.value


def test_a_refused_model_folder_leaves_the_session_model(loaded, qtbot, monkeypatch):
    from napari_cellcurator._qt import predict_widget
    from napari_cellcurator.core.tasks import get_task

    errors = []
    monkeypatch.setattr(predict_widget, "notify_error", lambda e: errors.append(str(e)))
    viewer, session = loaded
    widget = predict_widget.PredictWidget(viewer)
    worker = widget.predict()
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    version, config = session.version, session.config
    widget._source.value = predict_widget.FOLDER
    widget._folder.value = get_task("cellness").shipped_model()
    assert widget.predict() is None and "task 'cellness'" in errors[-1]
    assert session.version == version and session.config is config


def test_keys_belong_to_the_open_curate_widget(make_napari_viewer, qtbot, jurkat_copy,
                                               jurkat_subset, tmp_path):
    from napari_cellcurator._qt.curate_widget import CurateWidget

    viewer = make_napari_viewer()
    _, session = load_jurkat(viewer, qtbot, jurkat_copy)
    docked, standalone = CurateWidget(viewer), CurateWidget(viewer)
    dock_a = viewer.window.add_dock_widget(docked, name="curate A")
    dock_b = viewer.window.add_dock_widget(standalone, name="curate B")
    viewer.window.remove_dock_widget(dock_b)  # napari's close button
    assert "C" in {str(k) for k in session.layer.keymap}  # A still has its keys
    press(session.layer, "n")
    assert docked.current_row() is not None
    viewer.window.remove_dock_widget(dock_a)
    assert not session.layer.keymap
    del docked, standalone
    gc.collect()
    _, second = load_jurkat(viewer, qtbot, _second_set(jurkat_subset, tmp_path))
    assert not second.layer.keymap  # closed widgets do not bind on the next data set


def test_deleting_points_turns_the_keys_off(loaded, qtbot, monkeypatch):
    from napari_cellcurator._qt import curate_widget

    errors = []
    monkeypatch.setattr(curate_widget, "notify_error", lambda e: errors.append(str(e)))
    viewer, session = loaded
    widget = curate_widget.CurateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    layer = session.layer
    layer.selected_data = {0}
    layer.remove_selected()
    assert errors and "points for" in errors[-1]
    press(layer, "n")
    press(layer, "1")
    assert len(session.journal.current_labels()) == 0  # no label lands on the wrong cell


def test_a_replaced_session_is_freed(make_napari_viewer, qtbot, jurkat_copy, jurkat_subset,
                                     tiny_celltype_model, tmp_path):
    """napari keeps finished workers; what they hold of a session must not keep its crops,
    nor may the heap frozen while they ran (frozen cycles are never collected)."""
    from napari_cellcurator._qt.common import open_project
    from napari_cellcurator._qt.predict_widget import PredictWidget

    open_project(jurkat_copy).models.add_folder(tiny_celltype_model)
    viewer = make_napari_viewer()
    _, first = load_jurkat(viewer, qtbot, jurkat_copy)
    first_layers = list(viewer.layers)
    widget = PredictWidget(viewer)
    for _ in range(2):
        worker = widget.predict()
        with qtbot.waitSignal(worker.finished, timeout=60_000):
            pass
    qtbot.wait(50)  # the deferred "scored" notification
    ref, layer_refs = weakref.ref(first), [weakref.ref(ly) for ly in first_layers]
    del first, worker
    load_jurkat(viewer, qtbot, _second_set(jurkat_subset, tmp_path))
    for layer in first_layers:
        viewer.layers.remove(layer)
    del first_layers, layer
    gc.collect()  # no gc.unfreeze(): the heap frozen for the workers was thawed after them
    assert ref() is None, [type(r).__name__ for r in gc.get_referrers(ref())]
    qtbot.wait(100)  # Qt deletes the layers' views in the event loop
    gc.collect()
    alive = [r() for r in layer_refs if r() is not None]
    assert not alive, [[type(x).__name__ for x in gc.get_referrers(a)] for a in alive]


def test_class_ids_in_natural_order_and_exports_beside_the_project(make_napari_viewer,
                                                                   tmp_path):
    """Digit keys follow classes 0, 1, 2, ..., 10 (not '10' after '1'); data made in napari
    export beside their project, not into napari's working directory; the export has one
    column per name."""
    import pandas as pd

    from napari_cellcurator._qt.common import Session, hub_for
    from napari_cellcurator._qt.export_widget import ExportWidget
    from napari_cellcurator.core.io.items import ItemSet
    from napari_cellcurator.core.store.project import Project

    table = pd.DataFrame({"item_id": [f"c{k}" for k in range(4)], "source": "smear",
                          "label": ["10", "2", "0", "1"], "y": 1.0, "x": 2.0})
    items = ItemSet(table, {"image": np.zeros((4, 3, 8, 8), np.float32)})
    session = Session("celltype", items, "smear", Project(tmp_path / "p"))
    assert session.classes == ["0", "1", "2", "10"]
    viewer = make_napari_viewer()
    session.layer = viewer.add_points(np.ones((4, 2)))
    export = ExportWidget(viewer)
    hub_for(viewer).set_session(session)
    assert export._path.value == tmp_path / "p" / "smear_curated.csv"
    session.predictions = pd.DataFrame({"item_id": table["item_id"], "source": "smear",
                                        "y": 1.0, "x": 2.0, "prediction": "0",
                                        "probability": 0.9})
    written = export.export()
    columns = list(pd.read_csv(written).columns)
    assert len(columns) == len(set(columns)) and "y_prediction" not in columns
