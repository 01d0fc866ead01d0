"""Explain widget: occlusion fills in progressively, aligned over the item; activations stack;
show_task_results places a heatmap over its item."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def _world_extent(layer):
    """[[y_min, x_min], [y_max, x_max]] covered by the pixels of a 2-D image layer."""
    shape = np.array(layer.data.shape[-2:], dtype=float)
    s, t = np.array(layer.scale[-2:]), np.array(layer.translate[-2:])
    return np.stack([t - 0.5 * s, t + (shape - 0.5) * s])


def test_occlusion_and_activations_over_item(loaded, qtbot):
    from napari_cellcurator._qt.explain_widget import ExplainWidget
    from napari_cellcurator._qt.layers import mosaic_positions
    from napari_cellcurator._qt.predict_widget import PredictWidget

    viewer, session = loaded
    worker = PredictWidget(viewer).predict()
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        pass
    widget = ExplainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget._patch.value, widget._stride.value = 8, 4
    fractions = []
    row = 5
    worker = widget.explain(row)
    worker.yielded.connect(lambda v: fractions.append(v[0]))
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    assert len(fractions) > 1 and fractions[-1] == pytest.approx(1.0)  # progressive
    layer = viewer.layers["explanation"]
    assert layer.metadata["cellcurator_role"] == "explanation"
    assert layer.data.ndim == 2 and np.abs(layer.data).max() > 0
    assert layer.colormap.name == "cellcurator_signed" and 0 < layer.opacity < 1
    # the map covers exactly the item's crop in the mosaic
    y0, x0 = mosaic_positions(len(session.items), 40)[0][row]
    assert np.allclose(_world_extent(layer), [[y0 - 0.5, x0 - 0.5], [y0 + 39.5, x0 + 39.5]])
    assert "score" in widget._status.value
    # Space on the item layer (Curate widget) toggles the overlay
    from app_model.types import KeyBinding

    from napari_cellcurator._qt.curate_widget import CurateWidget

    curate = CurateWidget(viewer)
    viewer.window.add_dock_widget(curate)
    space = session.layer.keymap[KeyBinding.from_str("Space")]
    space(session.layer)
    assert not layer.visible
    space(session.layer)
    assert layer.visible

    widget._method.value = "activations"
    worker = widget.explain(row)
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    act = viewer.layers["activations"]
    assert act.data.ndim == 3 and act.data.shape[0] > 1


def test_show_task_results_heatmap(make_napari_viewer, jurkat_copy, monkeypatch):
    from napari_cellcurator._qt.common import hub_for
    from napari_cellcurator._qt.show import show_task_results
    from napari_cellcurator.core.tasks import ReadOptions, get_task

    items = get_task("celltype").read(jurkat_copy, ReadOptions(channels=[0, 2]))
    n = len(items)
    probs = np.tile([0.7, 0.2, 0.1], (n, 1))
    import pandas as pd

    pred = pd.DataFrame({"item_id": items.table["item_id"], "prediction": "G1",
                         "probability": 0.7, "uncertainty": 0.5, "prob_G1": probs[:, 0],
                         "prob_G2": probs[:, 1], "prob_Prophase": probs[:, 2]})
    viewer = make_napari_viewer()
    heat = np.random.default_rng(0).normal(size=(40, 40)).astype(np.float32)
    shuffled = pred.sample(frac=1.0, random_state=0)  # rows in another order: aligned by id
    layers = show_task_results(viewer, "celltype", items, shuffled, heatmap=heat,
                               heatmap_item=3)
    names = [ly.name for ly in layers]
    assert "explanation" in names and "cells items" in names
    session = hub_for(viewer).session
    assert (session.layer.features["prediction"] == "G1").all()
    assert (session.predictions["item_id"] == items.table["item_id"]).all()
    heat_layer = viewer.layers["explanation"]
    centre = session.centre_of(3)
    ext = _world_extent(heat_layer)
    assert np.allclose(ext.mean(axis=0), centre)

    # no project behind these layers: a label key says so instead of losing the label
    from app_model.types import KeyBinding

    from napari_cellcurator._qt import curate_widget

    errors = []
    monkeypatch.setattr(curate_widget, "notify_error", lambda e: errors.append(str(e)))
    curate = curate_widget.CurateWidget(viewer)
    session.layer.keymap[KeyBinding.from_str("1")](session.layer)
    assert errors and "cannot be saved" in errors[0]
    assert (session.layer.features["label_source"] != "human").all()
    curate.close()
