"""Cellness candidates as a Labels layer: c/x write cell/not cell, colours and the trace plot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from app_model.types import KeyBinding

pytestmark = pytest.mark.gui


@pytest.fixture
def allen_items(shared_data):
    from napari_cellcurator.core.io.allen import read_allen_json
    from napari_cellcurator.core.io.rois import roiset_to_items

    path = shared_data / "cellness" / "allen_croissant" / "train_rois.json"
    if not path.is_file():
        pytest.skip("Allen ROI fixture missing")
    return roiset_to_items(read_allen_json(path))


def test_labels_layer_keys_and_trace(make_napari_viewer, allen_items, tmp_path):
    from napari_cellcurator._qt.common import Session, add_layer_data, hub_for
    from napari_cellcurator._qt.curate_widget import CurateWidget
    from napari_cellcurator._qt.layers import layer_data_for
    from napari_cellcurator.core.store.project import Project

    viewer = make_napari_viewer()
    session = Session("cellness", allen_items, tmp_path / "rois.json",
                      Project(tmp_path / "rois.cellcurator"))
    layers = add_layer_data(viewer, layer_data_for("cellness", allen_items))
    layer = next(ly for ly in layers if ly.metadata.get("cellcurator_role") == "items")
    assert layer._type_string == "labels"
    session.layer = layer
    hub_for(viewer).set_session(session)
    ids = np.unique(layer.data)
    assert ids[0] == 0 and len(ids) > 1 and ids.max() <= len(allen_items)
    assert (layer.features["index"] == np.arange(1, 71)).all()

    curate = CurateWidget(viewer)
    viewer.window.add_dock_widget(curate)
    curate._advance.value = False
    press = lambda key: layer.keymap[KeyBinding.from_str(key)](layer)  # noqa: E731
    press("n")
    row = curate.current_row()
    assert layer.selected_label == row + 1
    item_id = layer.features["item_id"][row]
    press("x")
    assert session.journal.label_of(item_id) == "not_cell"
    press("c")
    assert session.journal.label_of(item_id) == "cell"
    # the key records where the ROI is, so the label follows its cell if ROIs are renumbered
    y, x, npix = allen_items.table.iloc[row][["y", "x", "npix"]]
    assert session.journal.current_labels_of([item_id])["anchor"].iloc[0] == (
        f"{y:.1f} {x:.1f} {npix}")
    assert layer.features["label"][row] == "cell"
    assert layer.features["label_source"][row] == "human"
    # human labels are drawn opaque in the class colour
    colour = layer.colormap.color_dict[row + 1]
    assert colour[3] == pytest.approx(1.0)
    # the trace plot shows the current candidate's trace
    curate.trace_plot.wait_idle()  # plots are drawn in their own thread
    line = curate.trace_plot.axes[0].lines[0]
    assert np.allclose(line.get_ydata(), allen_items.arrays["trace"][row])
    press("u")
    assert session.journal.label_of(item_id) == "not_cell"
    curate.close()
    assert KeyBinding.from_str("c") not in layer.keymap


def test_suite2p_load_train_predict_explain(make_napari_viewer, qtbot, tmp_path):
    """Sample Suite2p plane: Load → Train from scratch (no model yet) → re-scored → Explain."""
    import shutil

    from napari_cellcurator._qt.common import hub_for
    from napari_cellcurator._qt.explain_widget import ExplainWidget
    from napari_cellcurator._qt.load_widget import LoadWidget
    from napari_cellcurator._qt.train_widget import TrainWidget
    from napari_cellcurator._sample_data import sample_root

    src = sample_root() / "cellness_sim"
    if not (src / "plane0" / "stat.npy").is_file():
        pytest.skip("sample_data/cellness_sim missing")
    data = tmp_path / "sim"
    shutil.copytree(src, data)
    viewer = make_napari_viewer()
    load = LoadWidget(viewer)
    worker = load.load(data / "plane0")  # task detected from the folder
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: hub_for(viewer).session is not None, timeout=10_000)
    session = hub_for(viewer).session
    assert session.task_name == "cellness" and session.layer._type_string == "labels"
    assert "rois mean image" in viewer.layers

    train = TrainWidget(viewer)
    train._epochs.value = 1
    train._device.value = "cpu"
    outcome = []
    train.done.connect(outcome.append)
    worker = train.train()
    assert worker is not None
    qtbot.waitUntil(lambda: bool(outcome), timeout=120_000)
    assert outcome == ["trained"]
    assert session.project.models.current() == "v0001"
    feats = session.layer.features
    assert feats["prediction"].isin(["cell", "not_cell"]).all()
    assert np.isfinite(feats["probability"]).all()

    from napari_cellcurator._qt.curate_widget import CurateWidget

    curate = CurateWidget(viewer)
    curate.go_to(2)
    explain = ExplainWidget(viewer)
    assert explain.current_row(session) == 2  # the item the Curate widget shows
    worker = explain.explain()
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: session.explanation is not None, timeout=10_000)
    # occlusion of the trace is shaded under the candidate's trace
    n_samples = session.items.arrays["trace"].shape[1]
    assert session.explanation["trace_importance"].shape == (n_samples,)
    curate.trace_plot.wait_idle()
    assert curate.trace_plot.axes[0].collections
    heat = viewer.layers["explanation"]
    # the map is centred on the candidate's centre in the field of view
    shape = np.array(heat.data.shape[-2:], float)
    s, t = np.array(heat.scale[-2:]), np.array(heat.translate[-2:])
    centre = t + (shape - 1) / 2 * s
    assert np.allclose(centre, session.centre_of(2), atol=1.0 * s.max())

    # Export: a key press in Curate, then the curated result to Parquet and into iscell.npy
    from napari_cellcurator._qt.export_widget import ExportWidget

    curate._advance.value = False
    row = curate.current_row()
    human = "not_cell" if feats["prediction"][row] == "cell" else "cell"
    session.layer.keymap[KeyBinding.from_str("x" if human == "not_cell" else "c")](session.layer)
    item_id = feats["item_id"][row]
    assert session.journal.label_of(item_id) == human
    export = ExportWidget(viewer)
    assert export._write_back.enabled  # cellness data: Suite2p write-back offered
    export._path.value = tmp_path / "curated.parquet"
    table = pd.read_parquet(export.export()).set_index("item_id")
    assert table.loc[item_id, "curated"] == human
    others = table.drop(index=item_id)
    # by default Suite2p's own iscell stands for what nobody curated ...
    assert (others["curated"] == others["label"].fillna(others["prediction"])).all()
    assert not export._model_decides.value
    export._model_decides.value = True  # ... the model replaces it only when asked
    table = pd.read_parquet(export.export()).set_index("item_id")
    others = table.drop(index=item_id)
    assert (others["curated"] == others["prediction"]).all()
    written = export.write_back()
    assert "the model changed" in export._status.value
    assert written == data / "plane0" / "iscell.npy"
    iscell = np.load(written)
    rois = session.items.table.set_index("item_id")["roi_index"]
    assert iscell[rois[item_id], 0] == (human == "cell")
    assert (iscell[rois[others.index].to_numpy(), 0].astype(bool)
            == (others["curated"] == "cell").to_numpy()).all()
    assert list((data / "plane0").glob("iscell.bak-*.npy"))
    export.close()
    curate.close()


def test_auto_task_on_a_movie_asks_which_task(make_napari_viewer, tmp_path, monkeypatch):
    """A movie is read by cellness and mixture: "auto" asks instead of guessing; the asked-for
    task reads it."""
    from napari_cellcurator._qt import load_widget
    from napari_cellcurator._qt.common import hub_for

    errors = []
    monkeypatch.setattr(load_widget, "notify_error", lambda e: errors.append(str(e)))
    movie = tmp_path / "session.npy"
    np.save(movie, np.random.default_rng(0).random((12, 40, 40), dtype=np.float32))
    viewer = make_napari_viewer()
    load = load_widget.LoadWidget(viewer)
    assert load.load(movie) is None
    assert errors and "choose the task" in errors[0] and "session.npy" in errors[0]
    assert hub_for(viewer).session is None
    (tmp_path / "notes").write_text("not data")
    load.load(tmp_path / "notes")
    assert "not a format napari-cellcurator reads" in errors[-1]


@pytest.fixture
def recording_file(tmp_path, monkeypatch):
    """A simulated recording as a movie file; blocks of 10 frames, so the passes through it
    report often."""
    import tifffile

    from napari_cellcurator.core.data.simulate_calcium import simulate_recording
    from napari_cellcurator.core.io import movie_stream

    monkeypatch.setattr(movie_stream, "CHUNK_BYTES", 10 * 48 * 48 * 4)
    path = tmp_path / "recording.tif"
    movie = simulate_recording(1, shape=(48, 48), n_frames=150, n_cells=6).movie
    tifffile.imwrite(path, movie.astype(np.float32))
    return path


def test_finding_candidates_shows_progress(make_napari_viewer, qtbot, recording_file):
    """A movie file read as cellness: the stages of PCA/ICA reach the progress bar and the
    status while the worker runs; then the candidates are a Labels layer."""
    from napari_cellcurator._qt.common import hub_for
    from napari_cellcurator._qt.load_widget import LoadWidget

    viewer = make_napari_viewer()
    load = LoadWidget(viewer)
    seen_stages, seen_values = [], []
    worker = load.load(recording_file, "cellness")
    worker.yielded.connect(lambda u: (seen_stages.append(u.stage),
                                      seen_values.append(load._progress.value)))
    assert load._cancel.enabled
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    assert {"mean frame", "PCA", "ICA", "traces", "neuropil"} <= set(seen_stages)
    assert seen_values == sorted(seen_values) and seen_values[-1] > 900
    session = hub_for(viewer).session
    assert session is not None and len(session.items) > 0
    assert session.layer._type_string == "labels"
    assert not load._cancel.enabled and load._progress.value == 0


def test_cancel_stops_finding_candidates_and_changes_nothing(make_napari_viewer, qtbot,
                                                             recording_file, monkeypatch):
    from napari_cellcurator._qt import load_widget
    from napari_cellcurator._qt.common import hub_for

    infos = []
    monkeypatch.setattr(load_widget, "notify_info", infos.append)
    viewer = make_napari_viewer()
    load = load_widget.LoadWidget(viewer)
    worker = load.load(recording_file, "cellness")
    worker.yielded.connect(lambda _u: load._cancel.changed.emit(True))  # the user's click
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    assert load._status.value == "cancelled"
    assert infos and "cancelled" in infos[0]
    assert hub_for(viewer).session is None and len(viewer.layers) == 0
    assert load._button.enabled  # ready for the next try
