"""A user's journeys with calibrated layers, mixture keys, the Explain button and re-used
layers: the view, the maps and the labels land where the user sees the cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import press, use_layers

pytestmark = pytest.mark.gui

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "napari_cellcurator" / "sample_data"



def _predict(viewer, qtbot, model_dir) -> None:
    from napari_cellcurator._qt.predict_widget import FOLDER, PredictWidget

    widget = PredictWidget(viewer)
    widget._source.value, widget._folder.value = FOLDER, str(model_dir)
    worker = widget.predict()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    qtbot.wait(20)


@pytest.fixture(scope="module")
def chula_model(tmp_path_factory):
    """A seedcnn trained one epoch on the bundled Chula sample (colour crops)."""
    from napari_cellcurator.core.pipeline import TrainRequest, train

    out = tmp_path_factory.mktemp("chula_model")
    train(TrainRequest(task="celltype", data=[str(SAMPLES / "celltype" / "chula_small")],
                       out=str(out), arch="seedcnn", epochs=1, seed=0))
    return out


@pytest.fixture
def smear(make_napari_viewer, monkeypatch, tmp_path):
    """A Chula smear at 0.5 µm per pixel, offset, with its expert points (+ a user column)."""
    from PIL import Image

    monkeypatch.setenv("CELLCURATOR_DATA_DIR", str(tmp_path / "user"))
    root = SAMPLES / "celltype" / "chula_small"
    stem = sorted((root / "labels").glob("*.txt"))[0].stem
    frame = next(f for f in (root / "images").iterdir() if f.stem == stem)
    rows = np.array([[int(v) for v in line.split()[:3]] for line in
                     (root / "labels" / f"{stem}.txt").read_text().splitlines() if line.strip()])
    classes = rows[:, 2].astype(str).astype(object)
    classes[::3] = ""  # some cells the expert left unlabelled
    viewer = make_napari_viewer()
    calibration = {"scale": (0.5, 0.5), "translate": (100.0, 40.0)}
    image = viewer.add_image(np.asarray(Image.open(frame).convert("RGB")), name="smear",
                             rgb=True, **calibration)
    points = viewer.add_points(rows[:, [1, 0]].astype(float), name="cells", **calibration,
                               features=pd.DataFrame({"class": classes,
                                                      "area_um2": np.arange(len(rows))}))
    return viewer, image, points


def test_calibrated_smear_view_and_explanation_sit_on_the_cell(smear, qtbot, chula_model):
    from napari_cellcurator._qt.common import camera_of
    from napari_cellcurator._qt.curate_widget import CurateWidget
    from napari_cellcurator._qt.explain_widget import ExplainWidget
    from napari_cellcurator._qt.load_widget import LoadWidget

    viewer, image, points = smear
    session = use_layers(LoadWidget(viewer), qtbot, image, points)
    _predict(viewer, qtbot, chula_model)
    curate = CurateWidget(viewer)
    press(points, "n")
    press(points, "n")
    row = curate.current_row()
    cell = np.asarray(points.data_to_world(points.data[row]))
    np.testing.assert_allclose(camera_of(viewer).center[-2:], cell, atol=0.5)
    explain = ExplainWidget(viewer)
    explain._run.native.click()  # the button: the current item, not item 0
    with qtbot.waitSignal(explain.worker.finished, timeout=60_000):
        pass
    qtbot.wait(20)
    assert session.explanation["row"] == row
    layer = viewer.layers["explanation"]
    h, w = layer.data.shape[-2:]
    centre = np.asarray(layer.data_to_world(((h - 1) / 2, (w - 1) / 2)))
    np.testing.assert_allclose(centre, cell, atol=1.0)  # over the cell, in µm
    crop = session.items.table["crop_size"].iloc[row]
    np.testing.assert_allclose(np.asarray(layer.scale) * (h, w), (crop * 0.5,) * 2)


def test_use_these_layers_again_keeps_the_experts_classes(smear, qtbot, chula_model):
    """Predictions are shown in ``shown_class``; the user's ``class`` and other columns stay,
    so using the layers again reads the expert's labels, not the model's."""
    from napari_cellcurator._qt.load_widget import LoadWidget

    viewer, image, points = smear
    expert = points.features["class"].tolist()
    use_layers(LoadWidget(viewer), qtbot, image, points)
    _predict(viewer, qtbot, chula_model)
    assert points.features["class"].tolist() == expert
    assert "area_um2" in points.features and "shown_class" in points.features
    again = use_layers(LoadWidget(viewer), qtbot, image, points)
    labels = again.items.table["label"].tolist()
    assert [lab or "" for lab in labels] == expert  # unlabelled stay unlabelled


def test_mixture_keys_and_map_on_a_calibrated_movie(make_napari_viewer, qtbot, tmp_path,
                                                    monkeypatch):
    """A time-lapse at 10 min per frame and 0.87 µm per pixel: the proportion map lies on the
    tiles in world units; key 2 labels a pure snippet of the second type (proportion 1)."""
    import tifffile

    from napari_cellcurator._qt.curate_widget import CurateWidget
    from napari_cellcurator._qt.load_widget import LoadWidget
    from napari_cellcurator.core.pipeline import TrainRequest, train

    monkeypatch.setenv("CELLCURATOR_DATA_DIR", str(tmp_path / "user"))
    movie = tifffile.imread(SAMPLES / "mixture" / "t98g_crop.tif")
    viewer = make_napari_viewer()
    image = viewer.add_image(movie, name="t98g", scale=(10.0, 0.87, 0.87))
    load = LoadWidget(viewer)
    load._task.value = "mixture"
    session = use_layers(load, qtbot, image)
    saved = train(TrainRequest(task="mixture", data=[str(SAMPLES / "mixture" / "manifest.csv")],
                               out=str(tmp_path / "model"), epochs=1, seed=0))
    _predict(viewer, qtbot, saved.model_dir)
    pmap, tiles = viewer.layers["proportion map"], session.layer
    table = session.items.table
    first = np.flatnonzero((table["t0"] == table["t0"].min()).to_numpy())[0]
    tile_world = np.asarray(tiles.data_to_world(tiles.data[first]))[-2:]
    map_world = np.asarray(pmap.data_to_world((0,) * pmap.ndim))[-2:]
    np.testing.assert_allclose(map_world, tile_world, atol=0.5)
    CurateWidget(viewer)
    press(tiles, "n")
    press(tiles, "2")
    labels = session.merged_table()["label"]
    assert labels.dtype == float and (labels == 1.0).sum() == 1
