"""Bad or odd data found in review: a broken COCO file, NaN pixels in mixture movies, NaN
Suite2p traces, empty subsets of snippets. Each gives one clear error, or is cleaned with one
warning naming the file; never a silent wrong result or a numpy traceback."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.tasks import ReadOptions, get_task

SNIPPETS = {"length": 5, "tile": 16}


def _input_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, InputWarning)]


# ---- COCO: a broken annotation file is an error, not a folder of unlabelled frames ------------
def _coco(frames: list[str]) -> dict:
    images = [{"id": k, "file_name": name, "width": 60, "height": 50}
              for k, name in enumerate(frames, start=1)]
    annotations = [{"id": 2 * k + c, "image_id": k, "category_id": c,
                    "bbox": [10 + 20 * c, 15, 12, 12]}
                   for k in range(1, len(frames) + 1) for c in (1, 2)]
    return {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}


def _frames(folder: Path, names=("f0.png", "f1.png")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 255, (50, 60, 3), dtype=np.uint8)).save(folder / name)
    return folder


def _roboflow(tmp_path: Path, text: str) -> Path:
    folder = _frames(tmp_path / "train")
    (folder / "_annotations.coco.json").write_text(text)
    return folder


def _read_celltype(path: Path):
    return get_task("celltype").read_many([path], ReadOptions(extra={"qc": False}))


def test_a_valid_coco_folder_reads_its_boxes(tmp_path):
    items = _read_celltype(_roboflow(tmp_path, json.dumps(_coco(["f0.png", "f1.png"]))))
    assert len(items) == 4 and items.labelled.all()


def test_a_truncated_coco_json_is_an_error_naming_it(tmp_path):
    from napari_cellcurator._reader import detect_task

    folder = _roboflow(tmp_path, json.dumps(_coco(["f0.png", "f1.png"]))[:150])
    assert detect_task(folder) == "celltype"  # napari and the CLI reach the error below
    with pytest.raises(InputError, match=r"_annotations\.coco\.json: is not valid JSON"):
        _read_celltype(folder)


@pytest.mark.parametrize("text, match", [
    ("{not json", "is not valid JSON"),
    (json.dumps({"images": [], "annotations": []}), "is not COCO"),
])
def test_a_broken_json_in_annotations_beside_images_is_an_error(tmp_path, text, match):
    _frames(tmp_path / "coco" / "images")
    (tmp_path / "coco" / "annotations").mkdir()
    (tmp_path / "coco" / "annotations" / "instances_train.json").write_text(text)
    with pytest.raises(InputError, match=rf"instances_train\.json: {match}"):
        _read_celltype(tmp_path / "coco")


def test_a_captions_json_beside_the_boxes_is_not_an_error(tmp_path):
    """COCO's own annotations/ holds captions files (no categories) beside the boxes."""
    _frames(tmp_path / "coco" / "images")
    notes = tmp_path / "coco" / "annotations"
    notes.mkdir()
    (notes / "captions_train.json").write_text(json.dumps({"images": [], "annotations": []}))
    (notes / "instances_train.json").write_text(json.dumps(_coco(["f0.png", "f1.png"])))
    assert _read_celltype(tmp_path / "coco").labelled.sum() == 4


def test_a_missing_frame_is_named_in_a_warning(tmp_path):
    folder = _roboflow(tmp_path, json.dumps(_coco(["f0.png", "f1.png", "deleted.png"])))
    with pytest.warns(InputWarning, match=r"1 of the 3 frames .*deleted\.png.* 2 boxes"):
        items = _read_celltype(folder)
    assert len(items) == 4 and items.labelled.all()


def test_coco_frames_all_missing_is_an_error(tmp_path):
    folder = _roboflow(tmp_path, json.dumps(_coco(["x0.png", "x1.png"])))
    with pytest.raises(InputError, match=r"_annotations\.coco\.json: names 2 frames .* none"):
        _read_celltype(folder)


# ---- annotations made on an image of another size: refused, not cut at the wrong places -----
def _declaring(fmt: str, folder: Path, width, height) -> str:
    """Two boxes on f0.png (60 × 50 px) in format ``fmt``, declaring the image ``width`` ×
    ``height``; returns the annotation file's name."""
    box = [(10, 15, 22, 27), (30, 15, 42, 27)]  # x0, y0, x1, y1
    if fmt == "coco":
        data = _coco(["f0.png"])
        data["images"][0].update(width=width, height=height)
        (folder / "_annotations.coco.json").write_text(json.dumps(data))
        return "_annotations.coco.json"
    if fmt == "voc":
        objects = "".join(f"<object><name>a</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
                          f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
                          for x0, y0, x1, y1 in box)
        (folder / "f0.xml").write_text(f"<annotation><filename>f0.png</filename><size><width>"
                                       f"{width}</width><height>{height}</height><depth>3"
                                       f"</depth></size>{objects}</annotation>")
        return "f0.xml"
    if fmt == "labelme":
        shapes = [{"label": "a", "points": [[x0, y0], [x1, y1]], "shape_type": "rectangle"}
                  for x0, y0, x1, y1 in box]
        (folder / "f0.json").write_text(json.dumps({"shapes": shapes, "imagePath": "f0.png",
                                                    "imageWidth": width,
                                                    "imageHeight": height}))
        return "f0.json"
    boxes = "".join(f'<box label="a" xtl="{x0}" ytl="{y0}" xbr="{x1}" ybr="{y1}"/>'
                    for x0, y0, x1, y1 in box)
    (folder / "annotations.xml").write_text(
        f'<annotations><image id="0" name="f0.png" width="{width}" height="{height}">'
        f"{boxes}</image></annotations>")
    return "annotations.xml"


@pytest.mark.parametrize("fmt", ["coco", "voc", "labelme", "cvat"])
def test_annotations_of_an_image_of_another_size_are_refused(tmp_path, fmt):
    """Boxes drawn on a 1280 × 1000 copy (the original was resized, or the export was):
    their centres would land on other cells of the 60 × 50 image."""
    folder = _frames(tmp_path / fmt, names=("f0.png",))
    name = _declaring(fmt, folder, 1280, 1000)
    with pytest.raises(InputError, match=rf"{name}: annotates f0.png as 1280×1000 px "
                                         r"\(width × height\) but the image is 60×50 px"):
        _read_celltype(folder)
    for width, height in ((60, 50), (0, 0)):  # the image's size, or none recorded (0)
        _declaring(fmt, folder, width, height)
        items = _read_celltype(folder)
        assert len(items) == 2 and items.table["label"].notna().all()


# ---- mixture: NaN pixels are cleaned with one warning; NaN scores get no class --------------
def _float_movie(path: Path, nan: bool, seed: int = 0) -> Path:
    movie = np.random.default_rng(seed).normal(1000, 50, (6, 32, 32)).astype(np.float32)
    if nan:
        movie[:, :4, :5] = np.nan  # a NaN corner, as motion correction leaves
        movie[0, 20, 20] = np.inf
    np.save(path, movie)
    return path


def test_nan_pixels_of_a_movie_are_cleaned_with_one_warning(tmp_path):
    path = _float_movie(tmp_path / "mov.npy", nan=True)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        items = get_task("mixture").read(path, ReadOptions(extra=SNIPPETS))
        frames = items.load(np.arange(len(items)), "frames")
    messages = _input_warnings(record)
    assert messages and all("mov.npy: has NaN/inf pixels" in m for m in messages), messages
    assert np.isfinite(frames).all()
    assert np.abs(frames).max() <= 8  # NaN read as the tile's median: no extreme edge


def test_nan_pixels_in_a_manifest_movie_are_named(tmp_path):
    _float_movie(tmp_path / "a.npy", nan=True)
    _float_movie(tmp_path / "b.npy", nan=False, seed=1)
    (tmp_path / "m.csv").write_text("path,proportion\na.npy,0\nb.npy,1\n")
    items = get_task("mixture").read(tmp_path / "m.csv", ReadOptions(extra=SNIPPETS))
    with pytest.warns(InputWarning, match=r"a\.npy: has NaN/inf pixels"):
        frames = items.load(np.arange(len(items)), "frames")
    assert np.isfinite(frames).all()


def test_a_nan_score_gets_no_class():
    table = pd.DataFrame({"item_id": ["a", "b", "c"]})
    out = get_task("mixture").prediction_table(table, np.array([0.2, np.nan, 0.9], np.float32),
                                               ["T98G", "C2C12"])
    assert out["prediction"].isna().tolist() == [False, True, False]
    assert out["prediction"][[0, 2]].tolist() == ["T98G", "C2C12"]


# ---- cellness: NaN traces are cleaned with one warning naming the file -----------------------
def _roiset(traces: np.ndarray, path: Path):
    from napari_cellcurator.core.io.rois import RoiSet

    fps = [(np.array([5, 5, 6, 6]) + 8 * i, np.array([5, 6, 5, 6]), np.ones(4))
           for i in range(len(traces))]
    return RoiSet(fps, traces, (40, 40), path, "suite2p")


def test_nan_traces_warn_naming_the_file_and_the_rois(tmp_path):
    from napari_cellcurator.core.io.rois import roiset_to_items

    traces = np.random.default_rng(0).normal(100, 5, (4, 30)).astype(np.float32)
    traces[0] = np.nan
    traces[1, 3:9] = np.nan
    traces[2, 4] = np.inf
    with pytest.warns(InputWarning, match=r"plane0: 3 of 4 ROI traces have NaN/inf values, "
                                          r"1 of them entirely"):
        items = roiset_to_items(_roiset(traces, tmp_path / "plane0"))
    assert np.isfinite(items.arrays["trace"]).all()
    np.testing.assert_array_equal(items.arrays["trace"][3], traces[3])


def test_an_all_nan_suite2p_plane_warns(tmp_path):
    plane = tmp_path / "plane0"
    plane.mkdir()
    stat = np.empty(3, dtype=object)
    for i in range(3):
        stat[i] = {"ypix": np.array([4, 4, 5, 5]) + 6 * i, "xpix": np.array([4, 5, 4, 5]),
                   "lam": np.ones(4)}
    np.save(plane / "stat.npy", stat, allow_pickle=True)
    np.save(plane / "F.npy", np.full((3, 40), np.nan, np.float32))
    np.save(plane / "ops.npy", np.array({"Ly": 32, "Lx": 32}, dtype=object), allow_pickle=True)
    with pytest.warns(InputWarning, match=r"plane0: 3 of 3 ROI traces .* 3 of them entirely"):
        items = get_task("cellness").read_many([plane], ReadOptions())
    assert np.isfinite(items.arrays["trace"]).all()


# ---- mixture: empty subsets of snippets (an empty validation split) --------------------------
def test_an_empty_subset_of_snippets_is_empty(tmp_path):
    _float_movie(tmp_path / "a.npy", nan=False)
    _float_movie(tmp_path / "b.npy", nan=False, seed=1)
    (tmp_path / "m.csv").write_text("path,proportion,composite_of,n,grid\na.npy,0,,,\n"
                                    "b.npy,1,,,\n,,1 2,3,2\n")
    items = get_task("mixture").read(tmp_path / "m.csv", ReadOptions(extra=SNIPPETS))
    empty = items.subset([])
    assert len(empty) == 0 and empty.arrays["frames"].shape == (0, 5, 16, 16)
    assert np.asarray(empty.arrays["frames"]).shape == (0, 5, 16, 16)
    assert empty.arrays["frames"].blocks.shape == (0, 4, 4)  # 2×2 composites keep G


def test_an_unlabelled_movie_says_it_has_no_labels(tmp_path):
    from napari_cellcurator.core.pipeline import TrainRequest, prepare_training

    path = _float_movie(tmp_path / "mov.npy", nan=False)
    req = TrainRequest(task="mixture", data=[str(path)], read_extra=SNIPPETS)
    with pytest.raises(InputError, match="only 0 labelled items"):
        prepare_training(req)


def test_mixture_trains_with_an_empty_validation_split(tmp_path):
    """Two pure movies, no composites: every validation tile touches the training side and is
    left out, so validation is empty; training goes on without it."""
    from napari_cellcurator.core.pipeline import TrainRequest, train

    _float_movie(tmp_path / "a.npy", nan=False)
    _float_movie(tmp_path / "b.npy", nan=False, seed=1)
    (tmp_path / "m.csv").write_text("path,proportion\na.npy,0\nb.npy,1\n")
    saved = train(TrainRequest(task="mixture", data=[str(tmp_path / "m.csv")], epochs=1,
                               device="cpu", init="none", read_extra=SNIPPETS))
    assert saved.config.metrics["n_val"] == 0 and saved.config.metrics["n_train"] > 0


def test_a_nan_score_gets_no_class_in_a_classifier_either():
    table = pd.DataFrame({"item_id": ["a", "b"]})
    scores = np.array([[0.2, 0.8], [np.nan, np.nan]], np.float32)
    out = get_task("celltype").prediction_table(table, scores, ["G1", "G2"])
    assert out["prediction"].tolist()[0] == "G2" and pd.isna(out["prediction"][1])
