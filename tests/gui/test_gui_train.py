"""One-click fine-tuning: new current version + re-scored items, a responsive event loop,
Cancel, and a failing run that keeps the old model."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def _train_widget(viewer, epochs: int):
    from napari_cellcurator._qt.train_widget import TrainWidget

    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget._epochs.value = epochs
    widget._device.value = "cpu"
    outcome = []
    widget.done.connect(outcome.append)
    return widget, outcome


def _predict(viewer, qtbot):
    from napari_cellcurator._qt.predict_widget import PredictWidget

    worker = PredictWidget(viewer).predict()
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        pass


def test_train_publishes_version_and_rescored(loaded, qtbot):
    from qtpy.QtCore import QTimer

    viewer, session = loaded
    _predict(viewer, qtbot)
    old_predictions = session.predictions
    for row, label in ((0, "G2"), (20, "G1")):
        session.set_label(row, label)
    widget, outcome = _train_widget(viewer, epochs=2)

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    worker = widget.train()
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    qtbot.waitUntil(lambda: bool(outcome), timeout=60_000)
    timer.stop()

    assert outcome == ["trained"]
    assert session.project.models.current() == "v0002"
    assert session.version == "v0002"
    assert session.config.parent == "v0001"
    # the model's original training data (another folder) were used too: 36 + 36 items
    assert len(session.config.hyperparameters["data"]) == 2
    assert session.config.metrics["n_train"] + session.config.metrics["n_val"] == 72
    assert session.predictions is not old_predictions
    assert len(session.predictions) == 36
    assert (session.layer.features["prediction"] == session.predictions["prediction"]).all()
    assert len(widget.curves.epochs) == 2
    assert "before" in widget._metrics.value and "v0002" in widget._metrics.value
    gaps = np.diff(ticks)
    assert len(gaps) > 20
    print(f"event loop: {len(gaps)} ticks, max gap {max(gaps) * 1000:.0f} ms")
    assert max(gaps) < 0.2


def test_cancel_keeps_previous_model(loaded, qtbot):
    viewer, session = loaded
    widget, outcome = _train_widget(viewer, epochs=200)
    worker = widget.train()
    worker.yielded.connect(lambda _u: widget.cancel())  # cancel at the first update
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: bool(outcome), timeout=10_000)
    assert outcome == ["cancelled"]
    assert session.project.models.current() == "v0001"
    assert session.project.models.names() == ["v0001"]
    assert "cancelled" in widget._status.value


def test_failure_notifies_and_keeps_model(loaded, qtbot, monkeypatch):
    from napari_cellcurator._qt import train_widget
    from napari_cellcurator.core import pipeline, training

    def broken(req, items=None, parent=None):
        yield training.EpochStarted(1, 1)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(pipeline, "train_iter", broken)
    errors: list[str] = []
    monkeypatch.setattr(train_widget, "notify_error", lambda e: errors.append(str(e)))
    viewer, session = loaded
    widget, outcome = _train_widget(viewer, epochs=1)
    worker = widget.train()
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: bool(outcome), timeout=10_000)
    assert outcome == ["failed"]
    assert len(errors) == 1 and "disk on fire" in errors[0] and "v0001 stays current" in errors[0]
    assert session.project.models.current() == "v0001"
