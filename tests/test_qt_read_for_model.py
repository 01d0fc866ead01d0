"""napari Predict scores what ``cellcurator predict`` scores for celltype and cellness: items
read otherwise than the chosen model's training data (point crop, quality filter, ROI patch
size, context, neuropil...) are read again the model's way, items made from layers are
refused saying which option differs, and models read with the defaults agree exactly."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def chula(shared_data, tmp_path) -> Path:
    """Three real Chula smears with their point files (a copy: projects are written beside)."""
    src = shared_data / "celltype" / "chula_rbc12"
    dst = tmp_path / "chula"
    for sub in ("images", "labels"):
        (dst / sub).mkdir(parents=True)
    for f in sorted((src / "images").glob("*.jpg"))[:3]:
        shutil.copy(f, dst / "images" / f.name)
        shutil.copy(src / "labels" / f"{f.stem}.txt", dst / "labels" / f"{f.stem}.txt")
    return dst


@pytest.fixture
def allen(shared_data, tmp_path) -> Path:
    dst = tmp_path / "allen"
    dst.mkdir()
    shutil.copy(shared_data / "cellness" / "allen_croissant" / "train_rois.json", dst)
    return dst / "train_rois.json"


def _model(folder: Path, task: str, data: Path, extra: dict | None = None) -> Path:
    """An untrained model saved as if trained on ``data`` read with ``--read-option extra``
    (its config records the read options exactly as ``cellcurator train`` does)."""
    from napari_cellcurator.core.pipeline import TrainRequest, prepare_training
    from napari_cellcurator.core.store.modelio import ModelConfig, save_model

    req = TrainRequest(task=task, data=[str(data)], read_extra=extra, init="none")
    _, arch, classes, prep, spec, model, *_ = prepare_training(req)
    save_model(folder, model, ModelConfig(task=task, arch=arch, model_spec=spec,
                                          classes=classes, preprocessing=prep))
    return folder


def _napari_predictions(viewer, qtbot, model_dir, errors=None, load=True, path=None,
                        task=None):
    """Load ``path`` with the Load widget (unless a session exists), predict with the model
    folder; the session, or None where Predict refused."""
    from napari_cellcurator._qt.common import hub_for
    from napari_cellcurator._qt.load_widget import LoadWidget
    from napari_cellcurator._qt.predict_widget import FOLDER, PredictWidget

    if load:
        worker = LoadWidget(viewer).load(path, task)
        with qtbot.waitSignal(worker.finished, timeout=120_000):
            pass
        qtbot.waitUntil(lambda: hub_for(viewer).session is not None, timeout=20_000)
    session = hub_for(viewer).session
    widget = PredictWidget(viewer)
    widget._source.value, widget._folder.value = FOLDER, str(model_dir)
    widget._device.value = "cpu"
    worker = widget.predict()
    if worker is None:
        return None
    with qtbot.waitSignal(worker.finished, timeout=180_000):
        pass
    qtbot.waitUntil(lambda: session.predictions is not None, timeout=20_000)
    return session


def _same_scores(got, expected, columns):
    merged = expected.merge(got, on="item_id", suffixes=("_cli", "_napari"))
    assert len(merged) == len(got)
    diff = max(float(np.abs(merged[f"{c}_cli"].to_numpy(float)
                            - merged[f"{c}_napari"].to_numpy(float)).max()) for c in columns)
    assert diff < 1e-5, f"napari and CLI scores differ by {diff}"


# ---- the Python API can tell ---------------------------------------------------------------
def test_read_mismatch_names_the_options_that_differ(chula, allen, tmp_path):
    from napari_cellcurator._qt.model_reading import read_items
    from napari_cellcurator.core.pipeline import read_for_model, read_mismatch
    from napari_cellcurator.core.store.modelio import load_model

    _, crop96 = load_model(_model(tmp_path / "c96", "celltype", chula,
                                  {"point_crop": 96, "qc": False, "norm": "cell"}))
    _, default = load_model(_model(tmp_path / "cdef", "celltype", chula))
    items = read_items(chula, "celltype", None)  # what Load reads
    problem = read_mismatch(crop96, None, items)
    assert "point_crop=64 (model: 96)" in problem and "qc=True (model: False)" in problem
    assert "norm" not in problem  # the model normalises whatever it is given
    assert read_mismatch(default, None, items) is None
    assert read_mismatch(crop96, None, read_for_model(crop96, str(chula))) is None

    _, p24 = load_model(_model(tmp_path / "p24", "cellness", allen,
                               {"patch_size": 24, "neuropil_coef": 0.3}))
    _, cdef = load_model(_model(tmp_path / "cndef", "cellness", allen))
    rois = read_items(allen, "cellness", None)
    problem = read_mismatch(p24, None, rois)
    assert "patch_size=32 (model: 24)" in problem and "neuropil_coef=0.7 (model: 0.3)" in problem
    assert read_mismatch(cdef, None, rois) is None
    assert read_mismatch(p24, None, read_for_model(p24, str(allen))) is None


# ---- napari Predict reads file data again as the model's data were -------------------------
def test_napari_scores_chula_crops_as_the_cli_does(make_napari_viewer, qtbot, chula, tmp_path,
                                                    monkeypatch):
    from napari_cellcurator._qt import predict_widget
    from napari_cellcurator.core.pipeline import predict

    monkeypatch.setenv("CELLCURATOR_DATA_DIR", str(tmp_path / "user"))
    notes = []
    monkeypatch.setattr(predict_widget, "notify_info", notes.append)
    model_dir = _model(tmp_path / "c96", "celltype", chula, {"point_crop": 96, "qc": False})
    expected = predict(str(model_dir), str(chula), "cpu")
    session = _napari_predictions(make_napari_viewer(), qtbot, model_dir, path=chula,
                                  task="celltype")
    got = session.predictions
    # every cell is loaded, scored and shown; the ones the default read's quality filter
    # would drop (cut by the border) are marked, in the layer too
    assert len(got) == len(session.items) == len(session.layer.data) == len(expected)
    flagged = session.layer.features["qc_flag"].to_numpy() != ""
    assert 0 < flagged.sum() < 0.2 * len(flagged)
    assert set(session.layer.features["qc_flag"][flagged]) == {"border"}
    _same_scores(got, expected, [c for c in expected.columns if c.startswith("prob_")])
    assert not any("were not scored" in n for n in notes)
    assert session.items.meta["read_options"]["extra"]["point_crop"] == 96


def test_napari_scores_cellness_rois_as_the_cli_does(make_napari_viewer, qtbot, allen, tmp_path,
                                                      monkeypatch):
    from napari_cellcurator.core.pipeline import predict

    monkeypatch.setenv("CELLCURATOR_DATA_DIR", str(tmp_path / "user"))
    model_dir = _model(tmp_path / "p24", "cellness", allen,
                       {"patch_size": 24, "context": "mean", "neuropil_coef": 0.3})
    expected = predict(str(model_dir), str(allen), "cpu")
    session = _napari_predictions(make_napari_viewer(), qtbot, model_dir, path=allen,
                                  task="cellness")
    assert session is not None and len(session.predictions) == len(expected) == 70
    _same_scores(session.predictions, expected, ["prob_cell", "prob_not_cell"])
    assert session.items.arrays["image"].shape[-1] == 24


@pytest.mark.parametrize("task", ["celltype", "cellness"])
def test_models_read_with_the_defaults_score_exactly_as_the_cli(make_napari_viewer, qtbot,
                                                                 chula, allen, tmp_path,
                                                                 monkeypatch, task):
    from napari_cellcurator.core.pipeline import predict

    monkeypatch.setenv("CELLCURATOR_DATA_DIR", str(tmp_path / "user"))
    data = chula if task == "celltype" else allen
    model_dir = _model(tmp_path / "default", task, data)
    expected = predict(str(model_dir), str(data), "cpu")
    # both score every cell, the ones the quality filter marks included
    session = _napari_predictions(make_napari_viewer(), qtbot, model_dir, path=data, task=task)
    items = session.items
    assert list(session.predictions["item_id"]) == list(expected["item_id"])
    _same_scores(session.predictions, expected,
                 [c for c in expected.columns if c.startswith("prob_")])
    assert session.items is items  # nothing was read again


# ---- items made from layers: a warning saying which option differs -------------------------
def test_layer_crops_cut_otherwise_are_scored_with_a_warning_saying_which_option(
        make_napari_viewer, qtbot, chula, tmp_path, monkeypatch):
    from napari_cellcurator._qt import predict_widget
    from napari_cellcurator._qt.common import hub_for
    from napari_cellcurator._qt.load_widget import LoadWidget
    from napari_cellcurator.core.io.images import read_image_chw

    monkeypatch.setenv("CELLCURATOR_DATA_DIR", str(tmp_path / "user"))
    warnings = []
    monkeypatch.setattr(predict_widget, "show_warning", warnings.append)
    model_dir = _model(tmp_path / "default", "celltype", chula)  # point crop 64
    frame = sorted((chula / "images").glob("*.jpg"))[0]
    viewer = make_napari_viewer()
    image = viewer.add_image(np.moveaxis(read_image_chw(frame), 0, -1).astype(np.uint8),
                             rgb=True, name="smear")
    xy = np.loadtxt(chula / "labels" / f"{frame.stem}.txt", usecols=(0, 1), ndmin=2)[:12]
    points = viewer.add_points(xy[:, ::-1], name="cells")
    load = LoadWidget(viewer)
    load._task.value = "celltype"
    for crop, warned in ((48, True), (64, False)):
        load._crop.value = crop
        worker = load.load_layers(image, points)
        with qtbot.waitSignal(worker.finished, timeout=60_000):
            pass
        qtbot.waitUntil(lambda c=crop: hub_for(viewer).session is not None and
                        hub_for(viewer).session.items.meta.get("crop_size") == c,
                        timeout=20_000)
        warnings.clear()
        session = _napari_predictions(viewer, qtbot, model_dir, load=False)
        assert session is not None and len(session.predictions) == 12
        if warned:
            assert len(warnings) == 1 and "point_crop=48 (model: 64)" in warnings[0]
            assert "layers" in warnings[0]
            assert "qc" not in warnings[0]  # every placed cell is an item, filtered or not
        else:
            assert not warnings


def test_napari_reads_the_models_channels_again(make_napari_viewer, qtbot, jurkat_subset,
                                                tmp_path, monkeypatch):
    """A label-free model (channels 0, 2) on Jurkat class folders loaded with every channel:
    the crops are read again with its channels, as the CLI reads them."""
    from napari_cellcurator.core.pipeline import predict

    monkeypatch.setenv("CELLCURATOR_DATA_DIR", str(tmp_path / "user"))
    data = tmp_path / "jurkat"
    shutil.copytree(jurkat_subset, data)
    from napari_cellcurator.core.pipeline import TrainRequest, prepare_training
    from napari_cellcurator.core.store.modelio import ModelConfig, save_model

    req = TrainRequest(task="celltype", data=[str(data)], channels=[0, 2], init="none")
    _, arch, classes, prep, spec, model, *_ = prepare_training(req)
    model_dir = tmp_path / "label_free"
    save_model(model_dir, model, ModelConfig(task="celltype", arch=arch, model_spec=spec,
                                             classes=classes, preprocessing=prep,
                                             channels=[0, 2]))
    expected = predict(str(model_dir), str(data), "cpu")
    session = _napari_predictions(make_napari_viewer(), qtbot, model_dir, path=data,
                                  task="celltype")
    assert session is not None and len(session.predictions) == len(expected)
    _same_scores(session.predictions, expected,
                 [c for c in expected.columns if c.startswith("prob_")])
    assert session.channels == [0, 2] and session.items.arrays["image"].shape[1] == 2


def test_the_prediction_worker_says_once_that_the_data_are_at_another_scale(
        tiny_celltype_model, jurkat_subset):
    """Predict scores in chunks: the intensity-scale note comes once, as a notification
    text, not as a warning per chunk."""
    import torch

    from napari_cellcurator._qt.predict_widget import predict_chunks
    from napari_cellcurator.core.pipeline import read_for_model
    from napari_cellcurator.core.store.modelio import load_model

    model, config = load_model(str(tiny_celltype_model))
    items = read_for_model(config, str(jurkat_subset))
    items.arrays["image"] = items.arrays["image"] / 16  # as an 8-bit export would be
    threads = torch.get_num_threads()
    try:  # the worker body limits torch's threads for the GUI: this is the main thread
        yields = list(predict_chunks(model, config, items, "cpu", chunk=8))
    finally:
        torch.set_num_threads(threads)
    notes = [y for y in yields if isinstance(y, str)]
    assert len(notes) == 1 and "standard deviations from the training data" in notes[0]
    assert yields[-1] == (36, 36)
