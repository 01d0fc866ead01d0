"""npe2 reader on real data, the CSV writer round trip, sample data registration."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.gui


def test_reader_class_folders(jurkat_copy, tmp_path):
    from napari_cellcurator._reader import detect_task, get_reader

    assert detect_task(jurkat_copy) == "celltype"
    (tmp_path / "notes.txt").write_text("hello")
    assert get_reader(str(tmp_path / "notes.txt")) is None
    reader = get_reader(str(jurkat_copy))
    assert callable(reader)
    layers = reader(str(jurkat_copy))
    kinds = [kind for _, _, kind in layers]
    assert kinds == ["image", "points"]
    image, meta, _ = layers[0]
    assert image.shape[0] == 3 and meta["channel_axis"] == 0  # 3 channels, mosaic
    points, pmeta, _ = layers[1]
    feats = pmeta["features"]
    assert len(points) == len(feats) == 36
    assert set(feats["label"]) == {"G1", "G2", "Prophase"}
    # each point sits at the centre of its crop in the mosaic
    y, x = points[0]
    assert np.allclose(image[:, int(y - 19.5):int(y + 20.5), int(x - 19.5):int(x + 20.5)].shape,
                       (3, 40, 40))


def test_reader_npz_of_colour_crops_is_one_rgb_layer(shared_data, tmp_path):
    """Real Chula smear cells saved as MedMNIST-style 8-bit RGB arrays."""
    from PIL import Image

    from napari_cellcurator._reader import get_reader

    root = shared_data / "celltype" / "chula_rbc12"
    smear = np.asarray(Image.open(root / "images" / "1.jpg").convert("RGB"))
    rows = [tuple(int(v) for v in line.split()[:3])
            for line in (root / "labels" / "1.txt").read_text().splitlines() if line.strip()]
    rows = [(x, y, c) for x, y, c in rows if 16 <= x < smear.shape[1] - 16
            and 16 <= y < smear.shape[0] - 16][:12]
    crops = np.stack([smear[y - 16:y + 16, x - 16:x + 16] for x, y, _ in rows])
    np.savez(tmp_path / "chula.npz", images=crops, labels=np.array([c for *_, c in rows]))
    layers = get_reader(str(tmp_path / "chula.npz"))(str(tmp_path / "chula.npz"))
    (image, meta, kind), (points, pmeta, _) = layers
    assert kind == "image" and meta["rgb"] and image.shape[-1] == 3
    assert len(points) == len(pmeta["features"]) == len(rows)


def test_reader_detects_real_cellness_formats(shared_data, tmp_path):
    from napari_cellcurator._reader import detect_task

    allen = shared_data / "cellness" / "allen_croissant" / "train_rois.json"
    fissa = shared_data / "cellness" / "suite2p_0.x" / "fissa_example"
    if allen.is_file():
        assert detect_task(allen) == "cellness"
    if fissa.is_dir():
        assert detect_task(fissa) == "cellness"
    (tmp_path / "config.json").write_text('{"not": "rois"}')
    assert detect_task(tmp_path / "config.json") is None


def test_writer_round_trip(tmp_path):
    from napari_cellcurator._writer import write_features_csv, write_labels_features_csv

    feats = pd.DataFrame({"item_id": ["a", "b"], "label": ["G1", ""],
                          "probability": [0.9, 0.4]})
    out = write_features_csv(str(tmp_path / "pts"), np.array([[1.0, 2.0], [3.0, 4.0]]),
                             {"features": feats})
    back = pd.read_csv(out[0], keep_default_na=False)
    from napari_cellcurator._reader import get_reader

    assert get_reader(out[0]) is None  # our own CSV is not mistaken for a mixture manifest
    assert out[0].endswith("pts.csv")
    assert list(back.columns) == ["item_id", "label", "probability", "y", "x"]
    assert back["x"].tolist() == [2.0, 4.0] and back["label"].tolist() == ["G1", ""]
    out = write_labels_features_csv(str(tmp_path / "rois.csv"), np.zeros((4, 4), int),
                                    {"features": feats})
    assert list(pd.read_csv(out[0]).columns) == ["item_id", "label", "probability"]


def test_sample_data_that_exists_loads():
    from napari_cellcurator._sample_data import SAMPLES, _load, sample_root

    present = [k for k, (_, rel) in SAMPLES.items() if (sample_root() / rel).exists()]
    if not present:
        pytest.skip("no sample_data/ folders yet")
    for key in present:
        layers = _load(key)
        assert any(m.get("metadata", {}).get("cellcurator_role") == "items"
                   for _, m, _ in layers), key


def test_open_sample_through_napari(make_napari_viewer):
    from napari_cellcurator._sample_data import sample_root

    if not (sample_root() / "cellness_sim").exists():
        pytest.skip("sample_data/cellness_sim missing")
    viewer = make_napari_viewer()
    viewer.open_sample("napari-cellcurator", "cellness_sim")
    kinds = {ly._type_string for ly in viewer.layers}
    assert kinds == {"image", "labels"}
    labels = next(ly for ly in viewer.layers if ly._type_string == "labels")
    assert len(labels.features) == int(labels.data.max()) > 0


def test_load_widget_reads_a_folder_of_frames_as_a_movie(make_napari_viewer, qtbot, tmp_path):
    """Mixture time-lapse exported as one PNG per frame: Load (task mixture) shows the movie
    and the snippet grid, frames in natural name order."""
    import tifffile
    from PIL import Image

    from napari_cellcurator._qt.common import hub_for
    from napari_cellcurator._qt.load_widget import LoadWidget
    from napari_cellcurator._sample_data import sample_root

    movie = tifffile.imread(sample_root() / "mixture" / "t98g_crop.tif")
    frames = tmp_path / "frames"
    frames.mkdir()
    for t, frame in enumerate(movie):
        Image.fromarray(frame).save(frames / f"frame_{t}.png")
    viewer = make_napari_viewer()
    load = LoadWidget(viewer)
    worker = load.load(frames, task="mixture")
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: hub_for(viewer).session is not None, timeout=10_000)
    session = hub_for(viewer).session
    assert session.task_name == "mixture" and len(session.items) > 0
    shown = [ly for ly in viewer.layers if ly._type_string == "image"]
    assert shown and shown[0].data.shape == movie.shape
    np.testing.assert_array_equal(np.asarray(shown[0].data[len(movie) - 1]), movie[-1])


def test_use_layers_movie_and_labels_become_cellness_candidates(make_napari_viewer, qtbot,
                                                                shared_data, tmp_path,
                                                                monkeypatch):
    """A (T, Y, X) movie + a Labels layer of ROIs (ids not 1..n): one candidate per label,
    the user's Labels layer becomes the item layer and stays linked by label value."""
    import tifffile

    from napari_cellcurator._qt.common import hub_for
    from napari_cellcurator._qt.load_widget import LoadWidget

    monkeypatch.setenv("CELLCURATOR_DATA_DIR", str(tmp_path / "user"))
    movie = tifffile.imread(shared_data / "calcium" / "miniscope_1p" / "miniscope_1p.tif")
    yy, xx = np.mgrid[:100, :100]
    masks = np.zeros((100, 100), np.int32)
    masks[(yy - 30) ** 2 + (xx - 30) ** 2 <= 25] = 7
    masks[(yy - 60) ** 2 + (xx - 70) ** 2 <= 16] = 3
    viewer = make_napari_viewer()
    image = viewer.add_image(movie, name="movie")
    rois = viewer.add_labels(masks, name="my rois")
    load = LoadWidget(viewer)
    worker = load.load_layers(image, rois)
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: hub_for(viewer).session is not None, timeout=10_000)
    session = hub_for(viewer).session
    assert session.task_name == "cellness" and len(session.items) == 2
    assert session.layer is rois
    assert list(rois.features["index"]) == [3, 7]
    np.testing.assert_allclose(session.items.table["npix"], [(masks == 3).sum(),
                                                             (masks == 7).sum()])
    # a new project has no model: Predict uses the shipped cellness model; the scores land
    # on the user's layer, by label value
    from napari_cellcurator._qt.predict_widget import PredictWidget

    worker = PredictWidget(viewer).predict()
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: rois.features["prediction"].notna().all(), timeout=10_000)
    assert session.version.endswith("cellness_twobranch")  # the model of a completed run
    assert set(rois.features["prediction"]) <= {"cell", "not_cell"}
    session.set_label(1, "cell")  # the ROI drawn with value 7
    session.refresh_layer()
    assert rois.features.set_index("index").loc[7, "label"] == "cell"
    # the layers had no file: the project sits under the user's data folder, found again
    # from the image's content
    folder = session.project.folder
    assert folder.parent == tmp_path / "user" / "layers"
    from napari_cellcurator.core.store.project import Project

    again = Project.for_array("movie", movie)
    assert again.folder == folder
    assert again.journal.label_of(session.items.table["item_id"].iloc[1]) == "cell"


def test_use_layers_movie_and_shapes_become_cellness_candidates(make_napari_viewer, qtbot,
                                                                shared_data, tmp_path,
                                                                monkeypatch):
    """ROIs drawn with napari's Shapes tools on a movie frame: one candidate per area shape
    (overlaps kept in the traces, lines skipped), curated on a new Labels layer."""
    import tifffile

    from napari_cellcurator._qt.common import hub_for
    from napari_cellcurator._qt.load_widget import LoadWidget

    monkeypatch.setenv("CELLCURATOR_DATA_DIR", str(tmp_path / "user"))
    movie = tifffile.imread(shared_data / "calcium" / "miniscope_1p" / "miniscope_1p.tif")
    viewer = make_napari_viewer()
    image = viewer.add_image(movie, name="movie")
    # drawn on frame 40: 3-D vertices (t, y, x)
    ellipse = np.array([[40, 20, 20], [40, 20, 32], [40, 28, 32], [40, 28, 20]])
    square = np.array([[40, 24, 28], [40, 24, 38], [40, 34, 38], [40, 34, 28]])
    line = np.array([[40, 60, 60], [40, 70, 70]])
    shapes = viewer.add_shapes([ellipse, square, line], shape_type=["ellipse", "rectangle",
                                                                      "line"], name="drawn")
    load = LoadWidget(viewer)
    worker = load.load_layers(image, shapes)  # (the skipped line: a worker warning)
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: hub_for(viewer).session is not None, timeout=10_000)
    session = hub_for(viewer).session
    table = session.items.table
    assert session.task_name == "cellness" and len(table) == 2
    assert list(table["shape_index"]) == [0, 1]
    assert abs(table["npix"].iloc[0] - np.pi * 6 * 4) < 8  # 12 × 8 ellipse
    assert table["npix"].iloc[1] == 121  # 11 × 11 pixel centres on or inside the square
    assert session.layer is viewer.layers["drawn ROIs"] and shapes in viewer.layers
    assert set(np.unique(session.layer.data)) == {0, 1, 2}  # shape k ↔ value k + 1
    assert list(session.layer.features["index"]) == [1, 2]
    ys, xs, _ = session.items.meta["footprints"][1]
    np.testing.assert_allclose(session.items.arrays["trace"].shape, (2, movie.shape[0]))
    # traces follow the whole square, overlap with the ellipse included
    from napari_cellcurator.core.io.pcaica import project_traces

    np.testing.assert_allclose(
        project_traces(movie, session.items.meta["footprints"])[1],
        movie[:, ys, xs].mean(axis=1), rtol=1e-5)
    assert table["item_id"].iloc[1] == "movie:shape:y29.0x33.0"


def test_use_layers_smear_and_points_with_a_class_feature(make_napari_viewer, qtbot, shared_data,
                                                         tmp_path, monkeypatch):
    """A Chula smear + its expert points as a Points layer with a ``class`` feature."""
    import pandas as pd
    from PIL import Image

    from napari_cellcurator._qt.load_widget import LoadWidget

    monkeypatch.setenv("CELLCURATOR_DATA_DIR", str(tmp_path / "user"))
    root = shared_data / "celltype" / "chula_rbc12"
    smear = np.asarray(Image.open(root / "images" / "1.jpg").convert("RGB"))
    rows = np.array([[int(v) for v in line.split()[:3]] for line in
                     (root / "labels" / "1.txt").read_text().splitlines() if line.strip()])
    viewer = make_napari_viewer()
    image = viewer.add_image(smear, name="smear", rgb=True)
    points = viewer.add_points(rows[:, [1, 0]].astype(float), name="cells",
                               features=pd.DataFrame({"class": rows[:, 2].astype(str)}))
    from conftest import use_layers

    session = use_layers(LoadWidget(viewer), qtbot, image, points)
    assert session.task_name == "celltype" and len(session.items) == len(rows)
    assert list(session.items.table["label"]) == list(rows[:, 2].astype(str))
    assert session.layer is points


def test_use_layers_smear_and_shapes_with_a_class_feature(make_napari_viewer, qtbot, shared_data,
                                                         tmp_path, monkeypatch):
    """Cells outlined with Shapes on a 2-D smear: one crop per area shape, the class from a
    ``class`` feature, curated on a new Labels layer of the shapes."""
    import pandas as pd
    from PIL import Image

    from napari_cellcurator._qt.common import hub_for
    from napari_cellcurator._qt.load_widget import LoadWidget

    monkeypatch.setenv("CELLCURATOR_DATA_DIR", str(tmp_path / "user"))
    root = shared_data / "celltype" / "chula_rbc12"
    smear = np.asarray(Image.open(root / "images" / "1.jpg").convert("RGB"))
    viewer = make_napari_viewer()
    image = viewer.add_image(smear, name="smear", rgb=True)
    # around the first two expert points of 1.txt: (x 594, y 95) and (x 601, y 151)
    boxes = [np.array([[95 - 20, 594 - 20], [95 - 20, 594 + 20], [95 + 20, 594 + 20],
                       [95 + 20, 594 - 20]]),
             np.array([[151 - 18, 601 - 18], [151 - 18, 601 + 18], [151 + 18, 601 + 18],
                       [151 + 18, 601 - 18]]),
             np.array([[10, 10], [30, 30]])]
    shapes = viewer.add_shapes(boxes, shape_type=["ellipse", "rectangle", "line"],
                               name="outlined",
                               features=pd.DataFrame({"class": ["normal", "macrocyte", ""]}))
    from napari_cellcurator._qt import load_widget

    warned = []  # napari relays a worker's warnings to its notifications
    real_thread_worker = load_widget.thread_worker

    def recorded(*args, **kwargs):  # listen before the worker starts (it may warn at once)
        make = real_thread_worker(*args, **kwargs)

        def build(*a, **k):
            worker = make(*a, **k)
            worker.warned.connect(warned.append)
            return worker

        return build

    monkeypatch.setattr(load_widget, "thread_worker", recorded)
    worker = LoadWidget(viewer).load_layers(image, shapes)
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: hub_for(viewer).session is not None, timeout=10_000)
    assert any("outlined: 1 line/path shape" in str(w[0]) for w in warned), warned
    session = hub_for(viewer).session
    assert session.task_name == "celltype" and len(session.items) == 2
    table = session.items.table
    assert list(table["label"]) == ["normal", "macrocyte"]
    assert list(table["label_id"]) == [1, 2]
    np.testing.assert_allclose(table[["y", "x"]].to_numpy(), [[95, 594], [151, 601]],
                               atol=0.6)
    assert session.layer is viewer.layers["outlined cells"] and shapes in viewer.layers


def test_load_widget_browses_files_or_folders(make_napari_viewer):
    from napari_cellcurator._qt.load_widget import LoadWidget

    load = LoadWidget(make_napari_viewer())
    assert load._path.mode.value == "r"
    load._pick_folder.value = True
    assert load._path.mode.value == "d"
    load._pick_folder.value = False
    assert load._path.mode.value == "r"


def test_use_layers_mixture_tiles_over_a_movie_layer(make_napari_viewer, qtbot, tmp_path,
                                                    monkeypatch):
    """A movie opened by another reader (here: added as a layer) with task "mixture": tiles
    over it read lazily from the layer's data, a Points layer of tile centres, and Predict
    with a trained model writes proportions onto it."""
    from pathlib import Path

    import tifffile

    from napari_cellcurator._qt.load_widget import LoadWidget
    from napari_cellcurator.core.pipeline import TrainRequest, train

    monkeypatch.setenv("CELLCURATOR_DATA_DIR", str(tmp_path / "user"))
    sample = (Path(__file__).resolve().parents[2] / "src" / "napari_cellcurator"
              / "sample_data" / "mixture")
    movie = tifffile.imread(sample / "t98g_crop.tif")
    viewer = make_napari_viewer()
    image = viewer.add_image(movie, name="t98g")
    load = LoadWidget(viewer)
    load._task.value = "mixture"
    from conftest import use_layers

    session = use_layers(load, qtbot, image)
    assert session.task_name == "mixture" and len(session.items) > 0
    assert session.layer is viewer.layers["t98g tiles"]
    table = session.items.table
    assert table["item_id"].iloc[0].startswith("t98g:t0:")
    first = session.items.arrays["frames"][:1]
    y0, x0 = int(table["y0"].iloc[0]), int(table["x0"].iloc[0])
    tile = first.shape[-1]
    cut = np.asarray(first)[0, 0].ravel()  # the layer's pixels (the snippet is normalised)
    raw = movie[0, y0:y0 + tile, x0:x0 + tile].ravel().astype(float)
    assert np.corrcoef(cut, raw)[0, 1] > 0.999
    saved = train(TrainRequest(task="mixture", data=[str(sample / "manifest.csv")],
                               out=str(tmp_path / "model"), epochs=1, seed=0))
    from napari_cellcurator._qt.predict_widget import PredictWidget

    predict = PredictWidget(viewer)
    from napari_cellcurator._qt.predict_widget import FOLDER

    predict._source.value = FOLDER
    predict._folder.value = str(saved.model_dir)
    worker = predict.predict()
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    qtbot.waitUntil(lambda: session.predictions is not None, timeout=20_000)
    assert session.layer.features["probability"].notna().all()


def test_use_layers_a_movie_alone_finds_cellness_candidates(make_napari_viewer, qtbot,
                                                            shared_data, tmp_path,
                                                            monkeypatch):
    """Task cellness and no cells layer: PCA/ICA candidates found in the movie layer (the
    one-photon miniscope recording), curated on a new Labels layer; other tasks ask for a
    cells layer instead of guessing."""
    import dask.array as da
    import tifffile

    from napari_cellcurator._qt.common import hub_for
    from napari_cellcurator._qt.load_widget import NO_CELLS, LoadWidget

    monkeypatch.setenv("CELLCURATOR_DATA_DIR", str(tmp_path / "user"))
    movie = tifffile.imread(shared_data / "calcium" / "miniscope_1p" / "miniscope_1p.tif")
    viewer = make_napari_viewer()
    image = viewer.add_image(da.from_array(movie, chunks=(8, 100, 100)), name="mini")
    load = LoadWidget(viewer)
    assert load._items_layer.value == NO_CELLS  # the only choice without a cells layer
    assert load.load_layers(image) is None and hub_for(viewer).session is None  # auto
    load._task.value = "cellness"
    worker = load.load_layers(image)
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    qtbot.waitUntil(lambda: hub_for(viewer).session is not None, timeout=10_000)
    session = hub_for(viewer).session
    assert session.task_name == "cellness" and len(session.items) > 0
    assert session.layer is viewer.layers["mini candidates"]
    shown = set(np.unique(session.layer.data)) - {0}  # overlaps: the stronger pixel wins
    assert shown <= set(session.items.table["label_id"]) and len(shown) > 0


def test_reader_shows_the_journal_labels_without_making_a_project(jurkat_copy, tmp_path):
    # drag and drop (viewer.open) shows what people labelled, as the Load widget does
    from napari_cellcurator._reader import get_reader
    from napari_cellcurator.core.store.project import Project, project_folder

    fresh = get_reader(str(jurkat_copy))(str(jurkat_copy))[1][1]["features"]
    assert not project_folder(jurkat_copy).exists()  # opening creates nothing
    item = fresh["item_id"].iloc[0]
    other = "Prophase" if fresh["label"].iloc[0] != "Prophase" else "G1"
    with Project.for_data(jurkat_copy) as p:
        p.journal.set_label(item, other)
    feats = get_reader(str(jurkat_copy))(str(jurkat_copy))[1][1]["features"]
    row = feats.set_index("item_id").loc[item]
    assert row["label"] == other and row["label_source"] == "human"
