"""Mixture in napari: tiles cut as the model's data were, the proportion map and the tiles'
points placed in the movie's world (time included), and Curate showing the snippet's frames."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "napari_cellcurator" / "sample_data"
CALIBRATION = {"scale": (10.2, 0.87, 0.87), "translate": (30.0, 0.0, 0.0)}


def _movie(frames: int = 10, side: int = 192) -> np.ndarray:
    return np.random.default_rng(0).random((frames, side, side)).astype(np.float32)


def _tiles(viewer, movie, name="movie", **placement):
    """What Load → Use these layers (task mixture) makes of a movie layer: items, points."""
    from napari_cellcurator._qt import layer_items

    image = viewer.add_image(movie, name=name, **placement)
    items, (coords, kwargs, _) = layer_items.mixture_from_movie(image.data, image.rgb, name,
                                                                name)
    points = viewer.add_points(coords, **kwargs,
                               **layer_items.placed_as(image, coords.shape[1]))
    return image, items, points


def _load_movie_layer(viewer, image, qtbot):
    """Load → Use these layers with task mixture on a movie layer; the session made."""
    from napari_cellcurator._qt.common import hub_for
    from napari_cellcurator._qt.load_widget import LoadWidget

    load = LoadWidget(viewer)
    load._task.value = "mixture"
    worker = load.load_layers(image)
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: hub_for(viewer).session is not None, timeout=10_000)
    return hub_for(viewer).session


def _map(viewer, items, points):
    from napari_cellcurator._qt.task_layers import add_proportion_map

    pred = items.table.copy()
    pred["proportion"] = np.linspace(0, 1, len(pred))
    add_proportion_map(viewer, types.SimpleNamespace(items=items, predictions=pred,
                                                     layer=points))
    return viewer.layers["proportion map"]


# ---- bug 4: points carry their snippet's (middle) frame ----------------------------------
def test_tile_points_sit_on_the_middle_frame_of_their_snippet():
    from napari.components import ViewerModel

    viewer = ViewerModel()
    image, items, points = _tiles(viewer, _movie(), **CALIBRATION)
    assert len(items) == 18 and points.ndim == 3
    t0 = items.table["t0"].to_numpy()
    np.testing.assert_array_equal(points.data[:, 0], t0 + 2)  # 5 frames: the middle one
    # a point of each start frame lies on that snippet's middle frame in world time
    world = np.array([points.data_to_world(p) for p in points.data])
    np.testing.assert_allclose(world[:, 0], 30.0 + (t0 + 2) * 10.2)
    np.testing.assert_allclose(world[:, 1:], items.table[["y", "x"]].to_numpy() * 0.87)
    assert len(np.unique(world[:, 0])) == 2  # t0 = 0 and 5 are no longer stacked


# ---- bug 2: the map's time axis is the movie's --------------------------------------------
def test_proportion_map_planes_lie_at_their_snippets_world_time():
    from napari.components import ViewerModel

    viewer = ViewerModel()
    image, items, points = _tiles(viewer, _movie(), **CALIBRATION)
    pmap = _map(viewer, items, points)
    assert pmap.data.shape[0] == 2
    plane_t = [pmap.data_to_world((k, 0, 0))[0] for k in range(2)]
    np.testing.assert_allclose(plane_t, [30.0 + 2 * 10.2, 30.0 + 7 * 10.2])
    # every plane within the movie's time span, on the frames of its own snippet
    assert all(30.0 <= t <= 30.0 + 9 * 10.2 for t in plane_t)
    # spatially: map cell (0, 0) on the centre of tile (0, 0)
    np.testing.assert_allclose(pmap.data_to_world((0, 0, 0))[1:], [31.5 * 0.87] * 2)


# ---- bug 3: a reused map is placed anew ----------------------------------------------------
@pytest.mark.parametrize("second_frames", [5, 10])
def test_reused_proportion_map_takes_the_new_movies_placement(second_frames):
    from napari.components import ViewerModel

    viewer = ViewerModel()
    movie = _movie(10, 192)
    _map(viewer, *_tiles(viewer, movie, "first", scale=(1, 2.0, 2.0))[1:])
    pmap = _map(viewer, *_tiles(viewer, movie[:second_frames], "second",
                                scale=(1, 0.5, 0.5))[1:])
    np.testing.assert_allclose(pmap.scale[-2:], [32.0, 32.0])  # 64 px tiles at 0.5 µm
    np.testing.assert_allclose(pmap.translate[-2:], [15.75, 15.75])
    assert pmap.data.ndim == (2 if second_frames == 5 else 3)
    assert len([ly for ly in viewer.layers if ly.name.startswith("proportion map")]) == 1


# ---- bug 1: the model's read options -------------------------------------------------------
def _half_model(folder: Path):
    """An (untrained) mixture model saved as trained with ``--read-option half=true``."""
    from napari_cellcurator.core.io.mixture_readers import SnippetOptions
    from napari_cellcurator.core.models.registry import build_model
    from napari_cellcurator.core.store.modelio import ModelConfig, save_model

    spec = {"in_frames": 5, "input_size": 64, "n_outputs": 1, "head": "map"}
    extra = SnippetOptions.from_extra({"half": True}).as_extra()
    config = ModelConfig(task="mixture", arch="dcnn", model_spec=spec,
                         classes=["type_a", "type_b"],
                         preprocessing={"read_options": {"channels": None, "crop_size": None,
                                                         "extra": extra},
                                        "in_frames": 5, "input_size": 64})
    save_model(folder, build_model("dcnn", **spec), config)
    return folder


def test_predict_items_refuses_tiles_cut_otherwise_than_the_models(tmp_path):
    from napari.components import ViewerModel

    from napari_cellcurator.core.errors import InputError
    from napari_cellcurator.core.pipeline import predict_items, tiling_mismatch
    from napari_cellcurator.core.store.modelio import load_model

    model, config = load_model(_half_model(tmp_path / "half"))
    _, items, _ = _tiles(ViewerModel(), _movie())
    assert "scale=1 (model: 2)" in tiling_mismatch(config, items)
    with pytest.raises(InputError, match="scale=1"):
        predict_items(model, config, items, "cpu")


def test_napari_prediction_uses_the_models_read_options(make_napari_viewer, qtbot, tmp_path,
                                                        monkeypatch):
    """A model of movies read at half resolution: napari scores the tiles the CLI does. The
    proportions labelled on the default 64 px tiles do not pass to the 128 px tiles at the
    same corners (another region): they stay in the journal, said."""
    import tifffile

    from napari_cellcurator._qt import predict_widget
    from napari_cellcurator._qt.common import hub_for
    from napari_cellcurator._qt.predict_widget import FOLDER, PredictWidget
    from napari_cellcurator.core.pipeline import predict

    monkeypatch.setenv("CELLCURATOR_DATA_DIR", str(tmp_path / "user"))
    model_dir = _half_model(tmp_path / "half")
    movie = _movie()
    tifffile.imwrite(tmp_path / "movie.tif", movie)
    expected = predict(str(model_dir), str(tmp_path / "movie.tif"), "cpu")
    assert len(expected) == 2

    viewer = make_napari_viewer()
    image = viewer.add_image(movie, name="movie", **CALIBRATION)
    _load_movie_layer(viewer, image, qtbot)
    session = hub_for(viewer).session
    assert len(session.items) == 18
    corner = list(session.items.table["item_id"]).index("movie:t0:y0:x0")
    session.set_labels([corner, corner + 1, corner + 2], "0.25")
    notes = []
    monkeypatch.setattr(predict_widget, "notify_info", notes.append)
    widget = PredictWidget(viewer)
    widget._source.value, widget._folder.value = FOLDER, str(model_dir)
    worker = widget.predict()
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    qtbot.waitUntil(lambda: session.predictions is not None, timeout=10_000)
    got = session.predictions
    assert len(got) == len(session.items) == len(session.layer.data) == 2
    key = ["t0", "y0", "x0"]
    np.testing.assert_allclose(got.sort_values(key)["proportion"].to_numpy(),
                               expected.sort_values(key)["proportion"].to_numpy(), atol=1e-5)
    assert session.items.meta["tile"] == 128
    assert "movie:t0:y0:x0:s128" in set(session.items.table["item_id"])
    assert session.merged_table()["label"].isna().all()  # no 64 px label on a 128 px tile
    assert any("3 label(s) of the earlier tiles are on no new tile" in n for n in notes)
    assert len(session.journal.current_labels()) == 3  # nothing lost


# ---- bug 4: Curate shows the snippet's frames ----------------------------------------------
def test_going_to_a_snippet_sets_the_time_slider_to_its_frames(make_napari_viewer, qtbot,
                                                               tmp_path, monkeypatch):
    from napari_cellcurator._qt.common import hub_for
    from napari_cellcurator._qt.curate_widget import CurateWidget

    monkeypatch.setenv("CELLCURATOR_DATA_DIR", str(tmp_path / "user"))
    viewer = make_napari_viewer()
    image = viewer.add_image(_movie(), name="movie", **CALIBRATION)
    _load_movie_layer(viewer, image, qtbot)
    session = hub_for(viewer).session
    curate = CurateWidget(viewer)
    ids = list(session.items.table["item_id"])
    late = next(i for i, name in enumerate(ids) if ":t5:y64:x64" in name)
    early = next(i for i, name in enumerate(ids) if ":t0:y64:x64" in name)
    viewer.dims.set_point(0, 30.0)
    curate.go_to(late)
    assert viewer.dims.current_step[0] == 7  # frame 7: the middle of frames 5..9
    np.testing.assert_allclose(viewer.dims.point[0], 30.0 + 7 * 10.2)
    assert session.layer.selected_data == {late}
    curate.go_to(early)
    assert viewer.dims.current_step[0] == 2


def test_tiles_that_cannot_be_cut_again_are_refused_saying_what_differs(tmp_path):
    from napari.components import ViewerModel

    from napari_cellcurator._qt.model_reading import tiles_for_model
    from napari_cellcurator.core.store.modelio import load_model

    _, config = load_model(_half_model(tmp_path / "half"))
    viewer = ViewerModel()
    _, items, points = _tiles(viewer, _movie())
    session = types.SimpleNamespace(items=items, layer=points)
    items.meta["channel"] = 1  # a file read from channel 1; the model read channel 0
    with pytest.raises(RuntimeError, match=r"scale=1 \(model: 2\).*Load → channels"):
        tiles_for_model(viewer, session, config)
    del items.meta["channel"]
    del items.meta["t_stride"]  # a manifest's snippets: not a movie to tile again
    with pytest.raises(RuntimeError, match="cellcurator predict"):
        tiles_for_model(viewer, session, config)
    assert session.items is items and len(points.data) == 18  # nothing changed


# ---- a manifest row's region: the map starts where its tiles do --------------------------
def test_proportion_map_of_a_region_lies_on_its_tiles(tmp_path):
    import tifffile
    from napari.components import ViewerModel

    from napari_cellcurator.core.io.mixture_readers import SnippetOptions, read_manifest_items

    tifffile.imwrite(tmp_path / "m.tif", _movie(6, 96))
    (tmp_path / "box.csv").write_text("path,proportion,y0,x0\nm.tif,0,20,12\n")
    items = read_manifest_items(tmp_path / "box.csv", SnippetOptions(tile=32))
    viewer = ViewerModel()
    points = viewer.add_points(items.table[["y", "x"]].to_numpy())
    pmap = _map(viewer, items, points)
    last = items.table.iloc[-1]  # _map gives it proportion 1, the only cell of 1
    cell = np.argwhere(pmap.data == 1.0)
    assert len(cell) == 1
    # its map cell's centre on its tile's centre (napari pixel centres: − 0.5)
    np.testing.assert_allclose(pmap.data_to_world(cell[0])[-2:],
                               [last["y"] - 0.5, last["x"] - 0.5])


# ---- fine-tuning a model of half-resolution tiles -----------------------------------------
def test_fine_tuning_keeps_the_parents_tiling_and_rescores(make_napari_viewer, qtbot, tmp_path,
                                                           monkeypatch):
    """The session's tiles are cut again as the project's model reads movies, the new version
    records those read options, and re-scoring its own tiles works."""
    from napari_cellcurator._qt.common import hub_for
    from napari_cellcurator._qt.train_widget import TrainWidget

    monkeypatch.setenv("CELLCURATOR_DATA_DIR", str(tmp_path / "user"))
    viewer = make_napari_viewer()
    image = viewer.add_image(_movie(), name="movie")
    _load_movie_layer(viewer, image, qtbot)
    session = hub_for(viewer).session
    session.project.models.add_folder(_half_model(tmp_path / "half"))
    assert len(session.items) == 18  # cut with the reader's defaults
    widget = TrainWidget(viewer)
    widget._epochs.value, widget._device.value = 1, "cpu"
    outcome = []
    widget.done.connect(outcome.append)
    assert widget.train() is None  # tiles cut again (2 of 128 px), no labels on them yet
    assert len(session.items) == 2 and session.items.meta["tile"] == 128
    session.set_label(0, 0.2)
    session.set_label(1, 0.7)
    worker = widget.train()
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    qtbot.waitUntil(lambda: bool(outcome), timeout=60_000)
    assert outcome == ["trained"]
    extra = session.config.preprocessing["read_options"]["extra"]
    assert extra.get("half") in (True, "true") or extra.get("scale") == 2
    assert session.predictions is not None and len(session.predictions) == 2


def test_loaded_tiles_show_on_their_snippets_frames_before_any_prediction(
        make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from napari_cellcurator._qt.common import hub_for

    monkeypatch.setenv("CELLCURATOR_DATA_DIR", str(tmp_path / "user"))
    viewer = make_napari_viewer()
    image = viewer.add_image(_movie(), name="movie")
    _load_movie_layer(viewer, image, qtbot)
    assert hub_for(viewer).session.layer.projection_mode == "all"
    assert viewer.dims.thickness[0] == pytest.approx(4)  # 5-frame snippets


def test_shown_results_take_the_models_cell_type_names(make_napari_viewer):
    from napari_cellcurator._qt import layer_items
    from napari_cellcurator._qt.common import hub_for
    from napari_cellcurator._qt.show import show_task_results

    viewer = make_napari_viewer()
    items, _ = layer_items.mixture_from_movie(_movie(), False, "movie", "movie")
    show_task_results(viewer, "mixture", items, None, classes=["T98G", "C2C12"])
    assert hub_for(viewer).session.classes == ["T98G", "C2C12"]


def test_curation_commands_read_the_tiles_of_the_model_that_predicted(tmp_path, capsys):
    """`predict` with a model of half-resolution tiles (128 source px) → `review`, `labels`
    and `export` address those tiles with --model, or find the model the prediction table
    names; where it is gone, they say how to."""
    import pandas as pd
    import tifffile

    from napari_cellcurator.cli import main

    model = str(_half_model(tmp_path / "half"))
    tifffile.imwrite(tmp_path / "movie.tif", _movie(side=256))
    data = ["--data", str(tmp_path / "movie.tif"), "--project", str(tmp_path / "p")]
    assert main(["predict", "--model", model, *data[:2], "--out", str(tmp_path / "p.csv")]) == 0
    predictions = ["--predictions", str(tmp_path / "p.csv")]
    assert main(["review", *data, "--task", "mixture", *predictions, "--top", "2"]) == 0
    assert "read as the model that made the predictions" in capsys.readouterr().err
    moved = str(tmp_path / "moved")
    Path(model).rename(moved)
    assert main(["review", *data, "--task", "mixture", *predictions]) == 2
    assert "add --model MODEL_DIR" in capsys.readouterr().err
    model = moved
    assert main(["labels", *data, "--model", model, "--set", "movie.tif:t5:y0:x128:s128",
                 "0.3"]) == 0
    assert main(["review", *data, "--model", model, *predictions, "--include-labelled",
                 "--out", str(tmp_path / "order.csv")]) == 0
    order = pd.read_csv(tmp_path / "order.csv")
    assert len(order) == 8 and order["item_id"].iloc[-1] == "movie.tif:t5:y0:x128:s128"
    assert main(["export", *data, "--model", model, *predictions, "--out",
                 str(tmp_path / "curated.csv")]) == 0
    curated = pd.read_csv(tmp_path / "curated.csv").set_index("item_id")
    assert len(curated) == 8 and curated.loc["movie.tif:t5:y0:x128:s128", "curated"] == 0.3
