"""Load real data, predict, label with keys on the layer, undo; keybindings go on close."""

from __future__ import annotations

import numpy as np
import pytest
from app_model.types import KeyBinding
from conftest import press

pytestmark = pytest.mark.gui


def predict(viewer, qtbot):
    from napari_cellcurator._qt.predict_widget import PredictWidget

    widget = PredictWidget(viewer)
    viewer.window.add_dock_widget(widget)
    worker = widget.predict()
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        pass
    return widget


def test_load_predict_label_undo(loaded, qtbot):
    from napari_cellcurator._qt.common import camera_of
    from napari_cellcurator._qt.curate_widget import CurateWidget

    viewer, session = loaded
    layer = session.layer
    assert layer._type_string == "points" and len(layer.data) == 36
    assert set(layer.features["label"]) == {"G1", "G2", "Prophase"}
    assert (layer.features["label_source"] == "file").all()
    predict(viewer, qtbot)
    feats = layer.features
    assert feats["prediction"].isin(["G1", "G2", "Prophase"]).all()
    assert np.isfinite(feats["probability"]).all()
    assert session.version == "v0001"

    curate = CurateWidget(viewer)
    viewer.window.add_dock_widget(curate)
    assert curate.table.rowCount() == 36
    press(layer, "n")  # first item of the uncertainty order
    first = curate.current_row()
    assert first == int(session.order[0])
    assert np.allclose(camera_of(viewer).center[-2:], session.centre_of(first))

    press(layer, "3")  # class 3 = Prophase (class order of the data)
    assert session.journal.label_of(layer.features["item_id"][first]) == "Prophase"
    assert layer.features["label"][first] == "Prophase"
    assert layer.features["label_source"][first] == "human"
    assert layer.symbol[first].value == "square"
    second = curate.current_row()
    assert second != first  # advanced to the next item

    press(layer, "c")  # accept the model's class
    top = session.predictions["prediction"][second]
    assert session.journal.label_of(layer.features["item_id"][second]) == top
    third = curate.current_row()
    press(layer, "x")  # runner-up class
    runner = session.classes[int(np.argsort(-session.scores[third])[1])]
    assert session.journal.label_of(layer.features["item_id"][third]) == runner
    assert (layer.features["label_source"] == "human").sum() == 3

    press(layer, "u")
    assert session.journal.label_of(layer.features["item_id"][third]) is None
    assert layer.features["label_source"][third] == "file"
    assert (layer.features["label_source"] == "human").sum() == 2

    curate.close()
    assert KeyBinding.from_str("c") not in layer.keymap
    assert KeyBinding.from_str("3") not in layer.keymap


def test_keys_unbound_when_napari_removes_the_dock(loaded, qtbot):
    from napari_cellcurator._qt.curate_widget import CurateWidget
    from napari_cellcurator._qt.dock import CuratorDock

    viewer, session = loaded
    key = KeyBinding.from_str("c")
    for make in (CurateWidget, CuratorDock):
        widget = make(viewer)
        dock = viewer.window.add_dock_widget(widget, name=make.__name__)
        assert key in session.layer.keymap
        viewer.window.remove_dock_widget(dock)  # what the dock's close button does
        assert key not in session.layer.keymap, make.__name__


def test_predict_cancel_leaves_no_predictions(loaded, qtbot):
    from napari_cellcurator._qt.predict_widget import PredictWidget

    viewer, session = loaded
    widget = PredictWidget(viewer)
    widget.chunk = 4  # 9 steps for 36 items
    worker = widget.predict()
    steps = []
    worker.yielded.connect(lambda v: (steps.append(v), widget.cancel()))
    with qtbot.waitSignal(worker.aborted, timeout=30_000):
        pass
    qtbot.waitUntil(lambda: widget._run.enabled, timeout=10_000)
    assert steps[0] == (4, 36) and len(steps) < 9
    assert session.predictions is None
    assert (session.layer.features["prediction"] == "").all()
    assert widget._status.value == "cancelled"


def test_label_as_reaches_classes_beyond_the_digit_keys(make_napari_viewer, qtbot, shared_data,
                                                        tmp_path, monkeypatch):
    """Chula RBC-12 has 12 classes: "label as" + ``l`` labels with the 10th and later ones."""
    import pandas as pd
    from PIL import Image

    from napari_cellcurator._qt.curate_widget import CurateWidget
    from napari_cellcurator._qt.load_widget import LoadWidget

    monkeypatch.setenv("CELLCURATOR_DATA_DIR", str(tmp_path))
    root = shared_data / "celltype" / "chula_rbc12"
    smear = np.asarray(Image.open(root / "images" / "1.jpg").convert("RGB"))
    xy = np.array([[int(v) for v in line.split()[:2]] for line in
                   (root / "labels" / "1.txt").read_text().splitlines() if line.strip()])
    names = [f"class_{k:02d}" for k in range(12)]  # every class present, the mechanics only
    classes = [names[i % 12] for i in range(len(xy))]
    viewer = make_napari_viewer()
    image = viewer.add_image(smear, name="smear", rgb=True)
    points = viewer.add_points(xy[:, ::-1].astype(float), name="cells",
                               features=pd.DataFrame({"class": classes}))
    from conftest import use_layers

    session = use_layers(LoadWidget(viewer), qtbot, image, points)
    curate = CurateWidget(viewer)
    viewer.window.add_dock_widget(curate)
    shown = [c[0] if isinstance(c, tuple) else c for c in curate._label_as.choices]
    assert len(shown) == 12 and curate._label_as.choices[0] == "class_00"
    curate._label_as.value = "class_11"
    press(points, "n")
    row = curate.current_row()
    press(points, "l")
    assert session.journal.label_of(session.items.table["item_id"].iloc[row]) == "class_11"
    assert points.features["label"][row] == "class_11"
