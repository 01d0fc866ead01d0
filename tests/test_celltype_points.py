"""Celltype: point reader, crops, QC, proposals, items from napari layers (real Chula files)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from _celltype_helpers import chula_subset_at, expert_points, reads_as_the_points

from napari_cellcurator.core.data.proposals import match_points, propose_cells
from napari_cellcurator.core.data.quality import QCOptions, apply_qc, crop_quality
from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io import celltype_readers as cr
from napari_cellcurator.core.io.images import read_image_chw
from napari_cellcurator.core.io.point_crops import cut_crops
from napari_cellcurator.core.io.points import POINT_INPUT, is_points_folder, read_points_file
from napari_cellcurator.core.tasks import ReadOptions, get_task


@pytest.fixture(scope="module")
def chula(shared_data) -> Path:
    return shared_data / "celltype" / "chula_rbc12"


@pytest.fixture(scope="module")
def chula_subset(chula, tmp_path_factory) -> Path:
    return chula_subset_at(chula, tmp_path_factory.mktemp("chula") / "chula3")


def test_points_reader_real_chula(chula_subset):
    items = get_task("celltype").read(chula_subset, ReadOptions(extra={"qc": False}))
    n_lines = sum(len(read_points_file(p)[0]) for p in (chula_subset / "labels").glob("*.txt"))
    assert len(items) == n_lines == items.meta["qc"]["n_in"]
    assert items.arrays["image"].shape[1:] == (3, POINT_INPUT, POINT_INPUT)
    assert set(items.table["group"]) == {"1", "12", "103"}
    assert {"y", "x", "frame", "group"} <= set(items.table.columns)
    # Chula ids become names; the first line of 1.txt is "594 95 0" (x=col, y=row)
    first = items.table.iloc[0]
    assert (first["x"], first["y"], first["label"]) == (594, 95, "normal")
    assert len(items.meta["frames"]) == 3
    assert items.meta["classes"][0] == "normal" and len(items.meta["classes"]) == 13
    assert items.meta["classes"][12] == "elliptocyte"  # declared even when absent


def test_other_folder_names_of_frames_and_points(chula_subset, tmp_path):
    """The Chula RBC-12 repository's own Dataset/ + Label/ layout (any letter case) reads as
    images/ + labels/; a class folder that happens to be called "label" does not fool it."""
    from napari_cellcurator._reader import detect_task

    repo = tmp_path / "Chula-RBC-12-Dataset"
    shutil.copytree(chula_subset / "images", repo / "Dataset")
    shutil.copytree(chula_subset / "labels", repo / "Label")
    ours = get_task("celltype").read(chula_subset, ReadOptions(extra={"qc": False}))
    theirs = get_task("celltype").read(repo, ReadOptions(extra={"qc": False}))
    assert detect_task(repo) == "celltype"
    assert list(theirs.table["item_id"]) == list(ours.table["item_id"])
    np.testing.assert_array_equal(theirs.arrays["image"], ours.arrays["image"])
    classes = tmp_path / "classes"  # class folders "image" and "label": crops, not points
    for name in ("image", "label"):
        shutil.copytree(chula_subset / "images", classes / name)
    assert not is_points_folder(classes)
    assert set(get_task("celltype").read(classes, ReadOptions()).table["label"]) == {
        "image", "label"}


def test_crop_is_centred_on_x_column_y_row(chula):
    img = read_image_chw(chula / "images" / "1.jpg")
    crops, outside = cut_crops(img, np.array([[95.0, 594.0]]), 64)
    np.testing.assert_array_equal(crops[0], img[:, 95 - 32:95 + 32, 594 - 32:594 + 32])
    assert outside[0] == 0


def test_border_points_are_padded_and_flagged(chula):
    img = read_image_chw(chula / "images" / "1.jpg")
    h, w = img.shape[1:]
    pts = np.array([[0, 0], [h - 1, w - 1], [240, 2], [240, 320]], dtype=float)
    crops, outside = cut_crops(img, pts, 64, 32)
    assert crops.shape == (4, 3, 32, 32) and crops.dtype == np.uint8
    assert outside[0] == pytest.approx(1 - 0.5 * 0.5)  # a corner: 3/4 of the crop is padding
    assert outside[3] == 0
    items = cr.items_from_points(img, pts, ["a", "b", None, "c"], 64)
    flags = items.meta["qc"]["flagged"]
    assert flags["border"] == 3 and len(items) == 4  # the GUI default keeps every point
    dropped = apply_qc(items, QCOptions(max_outside=0.3))
    assert len(dropped) == 1 and dropped.meta["qc"]["dropped"]["border"] == 3


def test_qc_counts_defocus_and_empty(chula):
    img = read_image_chw(chula / "images" / "12.jpg")
    pts, _ = read_points_file(chula / "labels" / "12.txt")
    crops, outside = cut_crops(img, pts, 64, 32)
    from scipy import ndimage

    blurred = np.stack([ndimage.gaussian_filter(c.astype(np.float32), (0, 4, 4))
                        for c in crops[:5]])
    empty = np.full_like(crops[:3], 200)
    all_crops = np.concatenate([crops.astype(np.float32), blurred, empty.astype(np.float32)])
    q = crop_quality(all_crops, np.zeros(len(all_crops)))
    items = cr.items_from_points(img, np.zeros((len(all_crops), 2)) + 200, None, 64)
    for k, v in q.items():
        items.table[k] = v
    out = apply_qc(items, True)
    assert out.meta["qc"]["flagged"]["defocus"] >= 5 - 1
    assert out.meta["qc"]["flagged"]["empty"] == 3
    assert len(out) <= len(crops) + 1


def test_full_chula_qc_counts_are_small(chula_subset):
    items = get_task("celltype").read(chula_subset, ReadOptions())
    qc = items.meta["qc"]
    assert qc["applied"] and qc["n_out"] == len(items)
    assert 0 < qc["n_in"] - qc["n_out"] < 0.1 * qc["n_in"]  # QC drops few real cells


def test_bad_label_line(tmp_path, chula):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    shutil.copy(chula / "images" / "1.jpg", tmp_path / "images")
    (tmp_path / "labels" / "1.txt").write_text("10 20 0\nten 5 1\n")
    with pytest.raises(InputError, match="line 2"):
        get_task("celltype").read_checked(tmp_path, ReadOptions())


def test_non_chula_ids_stay_strings(tmp_path, chula):
    from PIL import Image

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    rgb = np.moveaxis(read_image_chw(chula / "images" / "1.jpg"), 0, -1)
    Image.fromarray(rgb[:300, :400]).save(tmp_path / "images" / "a.png")  # not Chula's 640×480
    (tmp_path / "labels" / "a.txt").write_text("100 100 0\n200 200 1\n300 250 0\n")
    items = get_task("celltype").read(tmp_path, ReadOptions())
    assert sorted(items.table["label"]) == ["0", "0", "1"]
    shutil.copy(chula / "images" / "1.jpg", tmp_path / "images")
    (tmp_path / "labels" / "1.txt").write_text("100 100 0\n200 200 1\n")
    named = get_task("celltype").read(tmp_path, ReadOptions())  # Chula frames: names
    assert set(named.table["label"]) == {"normal", "macrocyte"}
    raw = get_task("celltype").read(tmp_path, ReadOptions(extra={"class_names": False}))
    assert set(raw.table["label"]) == {"0", "1"}


@pytest.mark.parametrize("stem", ["1", "103"])
def test_proposals_find_labelled_cells(chula, stem):
    img = read_image_chw(chula / "images" / f"{stem}.jpg")
    truth, _ = read_points_file(chula / "labels" / f"{stem}.txt")
    centres, labels = propose_cells(img, cell_diameter=40)
    assert labels.shape == img.shape[1:] and labels.max() == len(centres)
    assert match_points(centres, truth, 15).mean() > 0.85
    assert len(centres) < 1.5 * len(truth)


def test_log_proposals(chula):
    img = read_image_chw(chula / "images" / "12.jpg")
    truth, _ = read_points_file(chula / "labels" / "12.txt")
    centres, _ = propose_cells(img, 40, method="log")
    assert match_points(centres, truth, 15).mean() > 0.75


def test_items_from_points_and_labels_layer_rgb(chula):
    rgb = np.moveaxis(read_image_chw(chula / "images" / "1.jpg"), 0, -1)  # napari RGB layer
    pts = np.array([[95, 594], [151, 601]], dtype=float)
    items = cr.items_from_points(rgb, pts, ["normal", float("nan")], 64)
    assert items.arrays["image"].shape == (2, 3, POINT_INPUT, POINT_INPUT)
    assert list(items.table["label"].isna()) == [False, True]
    np.testing.assert_allclose(items.table[["y", "x"]].to_numpy(), pts)
    lab = np.zeros(rgb.shape[:2], dtype=np.int32)
    lab[80:110, 580:610] = 3
    lab[300:320, 10:40] = 7
    li = cr.items_from_labels_layer(rgb, lab)
    assert list(li.table["label_id"]) == [3, 7]
    np.testing.assert_allclose(li.table[["y", "x"]].to_numpy(), [[94.5, 594.5], [309.5, 24.5]])
    assert li.table["item_id"].is_unique


def test_label_count_mismatch_is_input_error():
    with pytest.raises(InputError):
        cr.items_from_points(np.zeros((50, 50)), np.zeros((3, 2)), ["a"], 16)


def test_class_folders_count_qc_but_keep_every_crop(jurkat_subset):
    task = get_task("celltype")
    items = task.read(jurkat_subset, ReadOptions(channels=[0, 2]))
    qc = items.meta["qc"]
    assert not qc["applied"] and qc["n_out"] == qc["n_in"] == len(items) == 36
    assert {"qc_sharpness", "qc_contrast", "qc_outside"} <= set(items.table.columns)
    strict = task.read(jurkat_subset, ReadOptions(channels=[0, 2],
                                                  extra={"qc": {"blur_ratio": 0.9}}))
    assert strict.meta["qc"]["applied"] and len(strict) == 36 - strict.meta["qc"]["flagged"][
        "defocus"] < 36


def test_frame_normalisation_removes_a_slide_wide_colour_shift(chula):
    from napari_cellcurator.core.io.points import normalise_frame

    img = read_image_chw(chula / "images" / "12.jpg")
    dim = np.round(img * np.array([0.7, 0.8, 0.9])[:, None, None]).astype(np.uint8)
    a, b = normalise_frame(img).astype(float), normalise_frame(dim).astype(float)
    assert np.abs(img.astype(float) - dim).mean() > 15
    assert np.abs(a - b).mean() < 3
    dark = np.zeros((1, 100, 100), dtype=np.float32)
    dark[0, 40:60, 40:60] = 5.0  # fluorescence-like: left alone
    np.testing.assert_array_equal(normalise_frame(dark), dark)


def test_reader_defaults_are_recorded_in_the_preprocessing(shared_data, tmp_path):
    """A model records the reader settings it was trained with (defaults included), so a later
    change of a default cannot silently change what it sees."""
    import shutil

    from napari_cellcurator.core.tasks import ReadOptions, get_task

    src = shared_data / "celltype" / "chula_rbc12"
    for sub in ("images", "labels"):
        (tmp_path / sub).mkdir()
    for stem in ("1", "12"):
        shutil.copy(src / "images" / f"{stem}.jpg", tmp_path / "images")
        shutil.copy(src / "labels" / f"{stem}.txt", tmp_path / "labels")
    task = get_task("celltype")
    items = task.read_many([tmp_path], ReadOptions())
    prep = task.fit_preprocessing(items, ReadOptions())
    extra = prep["read_options"]["extra"]
    assert extra["frame_norm"] is True and extra["point_crop"] == items.meta["crop_size"]
    again = task.read_many([tmp_path], task.read_options_from(prep))
    np.testing.assert_array_equal(np.asarray(again.arrays["image"]),
                                  np.asarray(items.arrays["image"]))


def test_point_item_ids_survive_deleting_a_point(chula):
    """Ids come from positions: removing a point from a napari layer must not move the
    journal's labels onto other cells."""
    rgb = np.moveaxis(read_image_chw(chula / "images" / "1.jpg"), 0, -1)
    pts = np.array([[100.0, 120.0], [200.25, 300.0], [100.0, 120.0]])
    ids = list(cr.items_from_points(rgb, pts, None, 64).table["item_id"])
    assert ids == ["image:y100.0x120.0", "image:y200.2x300.0", "image:y100.0x120.0#2"]
    after = list(cr.items_from_points(rgb, pts[1:], None, 64).table["item_id"])
    assert after[0] == ids[1]


def test_pascal_voc_boxes_read_as_points_at_their_centres(chula_subset, tmp_path):
    """The Chula frames annotated as Pascal VOC boxes (JPEGImages/ + Annotations/*.xml, as
    LabelImg/CVAT/Roboflow export; 1-based pixels, class names): the points' cells."""
    from napari_cellcurator.core.io.points import CHULA_NAMES

    voc = tmp_path / "voc"
    shutil.copytree(chula_subset / "images", voc / "JPEGImages")
    (voc / "Annotations").mkdir()
    for stem, points in expert_points(chula_subset).items():
        objects = []
        for x, y, cls in points:
            objects.append(f"<object><name>{CHULA_NAMES[cls]}</name><bndbox>"
                           f"<xmin>{x - 17}</xmin><ymin>{y - 19}</ymin><xmax>{x + 19}</xmax>"
                           f"<ymax>{y + 21}</ymax></bndbox></object>")  # centre (x+1, y+1)
        (voc / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><filename>{stem}.jpg</filename><size><width>640</width><height>480"
            f"</height></size>{''.join(objects)}</annotation>")
    reads_as_the_points(chula_subset, voc)
    first = sorted((voc / "Annotations").iterdir())[0]
    first.write_text(first.read_text().replace("<width>640</width>", "<width>1280</width>"))
    with pytest.raises(InputError, match=rf"{first.name}: annotates .* as 1280×480 px"):
        get_task("celltype").read(voc, ReadOptions())
    (voc / "Annotations" / "1.xml").write_text("<annotation><object><name>normal</name>"
                                                "<bndbox><xmin>3</xmin></bndbox></object>")
    with pytest.raises(InputError, match="1.xml: is not readable Pascal VOC XML"):
        get_task("celltype").read(voc, ReadOptions())
    (voc / "Annotations" / "1.xml").write_text("<annotation><object><name>normal</name>"
                                                "<bndbox><xmin>3</xmin></bndbox></object>"
                                                "</annotation>")
    with pytest.raises(InputError, match="1.xml: object 1 has no numeric bndbox"):
        get_task("celltype").read(voc, ReadOptions())


def _coco(chula_subset, names) -> dict:
    """The Chula points as COCO boxes ([x, y, w, h], centre at the point's pixel)."""
    images, annotations = [], []
    for k, txt in enumerate(sorted((chula_subset / "labels").glob("*.txt")), start=1):
        images.append({"id": k, "file_name": f"{txt.stem}.jpg", "width": 640, "height": 480})
        for line in txt.read_text().split("\n"):
            if line.strip():
                x, y, cls = (int(v) for v in line.split())
                annotations.append({"id": len(annotations) + 1, "image_id": k,
                                    "category_id": cls, "bbox": [x - 17.5, y - 20.5, 36, 42]})
    return {"images": images, "annotations": annotations,
            "categories": [{"id": i, "name": n} for i, n in enumerate(names)]}


def test_coco_boxes_read_as_points_at_their_centres(chula_subset, tmp_path):
    """Roboflow's export (_annotations.coco.json beside the frames) and COCO's own
    (annotations/*.json + images/): the cells of the point files, named by category."""
    import json

    from napari_cellcurator._reader import detect_task
    from napari_cellcurator.core.io.points import CHULA_NAMES

    ours = get_task("celltype").read(chula_subset, ReadOptions(extra={"qc": False}))
    coco = _coco(chula_subset, CHULA_NAMES)
    roboflow = tmp_path / "roboflow" / "train"
    shutil.copytree(chula_subset / "images", roboflow)
    (roboflow / "_annotations.coco.json").write_text(json.dumps(coco))
    original = tmp_path / "coco"
    shutil.copytree(chula_subset / "images", original / "images")
    (original / "annotations").mkdir()
    (original / "annotations" / "instances_train.json").write_text(json.dumps(coco))
    for folder in (roboflow, original):
        theirs = get_task("celltype").read(folder, ReadOptions(extra={"qc": False}))
        assert detect_task(folder) == "celltype"
        assert list(theirs.table["label"]) == list(ours.table["label"])
        assert list(theirs.table["item_id"]) == list(ours.table["item_id"])
        np.testing.assert_array_equal(theirs.arrays["image"], ours.arrays["image"])
    coco["annotations"][3]["bbox"] = "somewhere"
    (roboflow / "_annotations.coco.json").write_text(json.dumps(coco))
    with pytest.raises(InputError, match="_annotations.coco.json: annotation 3 lacks"):
        get_task("celltype").read(roboflow, ReadOptions())


def test_only_colour_smears_get_the_blood_cell_names():
    """Integer classes 0–7 on two-channel fluorescence frames keep their ids; Chula's 0–12 on
    RGB smears get RBC-12's names."""
    from napari_cellcurator.core.io.points import class_names_for

    ids = {str(k) for k in range(8)}
    assert class_names_for(ids, (2, 300, 300)) == {}
    assert class_names_for(ids, (1, 300, 300)) == {}
    named = class_names_for(ids, (3, 300, 300))
    assert named["0"] == "normal" and named["1"] == "macrocyte"
    assert class_names_for({"0", "1"}, (3, 480, 640))["1"] == "macrocyte"
    assert class_names_for({"0", "1"}, (3, 300, 300)) == {}


def test_yolo_boxes_read_as_points_at_their_centres(chula_subset, tmp_path):
    """The Chula frames as a Roboflow / Ultralytics YOLO export: labels/<stem>.txt lines
    'class cx cy w h' (fractions of the frame), names in data.yaml: the points' cells."""
    from napari_cellcurator.core.io.points import CHULA_NAMES

    yolo = tmp_path / "yolo"
    shutil.copytree(chula_subset / "images", yolo / "images")
    (yolo / "labels").mkdir()
    for stem, points in expert_points(chula_subset).items():
        # the pixel centre x sits at fraction (x + 0.5) / width
        lines = [f"{cls} {(x + 0.5) / 640:.6f} {(y + 0.5) / 480:.6f} 0.06 0.08"
                 for x, y, cls in points]
        (yolo / "labels" / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    names = "\n".join(f"  - {n}" for n in CHULA_NAMES)
    (yolo / "data.yaml").write_text(f"train: images\nnc: {len(CHULA_NAMES)}\nnames:\n{names}\n")
    ours = get_task("celltype").read(chula_subset, ReadOptions(extra={"qc": False}))
    theirs = get_task("celltype").read(yolo, ReadOptions(extra={"qc": False}))
    assert list(theirs.table["label"]) == list(ours.table["label"])
    np.testing.assert_array_equal(theirs.arrays["image"], ours.arrays["image"])
    (yolo / "data.yaml").unlink()  # no names: the ids stay (never RBC-12's names)
    plain = get_task("celltype").read(yolo, ReadOptions(extra={"qc": False}))
    assert set(plain.table["label"]) <= {str(k) for k in range(13)}


def test_points_all_dropped_by_the_quality_filter_say_so(chula_subset, tmp_path):
    """Points in the wrong place (here: every cell at the top-left corner) give one clear
    error, not an empty data set."""
    wrong = tmp_path / "wrong"
    shutil.copytree(chula_subset / "images", wrong / "images")
    (wrong / "labels").mkdir()
    for txt in (chula_subset / "labels").glob("*.txt"):
        (wrong / "labels" / txt.name).write_text("0 0 1\n1 1 1\n")
    with pytest.raises(InputError, match="all 6 cells were dropped by the quality filter"):
        get_task("celltype").read(wrong, ReadOptions())


def test_qc_measures_focus_at_full_resolution_whatever_the_input_size(chula):
    """Which cells the filter calls defocused must not depend on the model's input size:
    sharpness measured on resized crops did (Chula: 131 dropped at 32 px, 120 at 64 px)."""
    from scipy import ndimage

    img = read_image_chw(chula / "images" / "12.jpg").astype(np.float32)
    pts, labels = read_points_file(chula / "labels" / "12.txt")
    blurred_cells = [0, 1, 2]
    for y, x in np.round(pts[blurred_cells]).astype(int):  # defocus three cells in the frame
        y0, x0 = max(y - 40, 0), max(x - 40, 0)
        patch = img[:, y0:y + 40, x0:x + 40]
        img[:, y0:y + 40, x0:x + 40] = ndimage.gaussian_filter(patch, (0, 3, 3))
    frame = np.round(img).astype(np.uint8)
    at = {size: cr.items_from_points(frame, pts, labels, 64, size, qc=False)
          for size in (32, 64)}
    np.testing.assert_array_equal(at[32].table["qc_sharpness"], at[64].table["qc_sharpness"])
    kept = {size: apply_qc(items, True) for size, items in at.items()}
    assert list(kept[32].table["item_id"]) == list(kept[64].table["item_id"])
    dropped = set(at[32].table["item_id"]) - set(kept[32].table["item_id"])
    assert {at[32].table["item_id"][i] for i in blurred_cells} <= dropped
    assert kept[32].arrays["image"].shape[-1] == 32 and kept[64].arrays["image"].shape[-1] == 64


def test_prediction_scores_every_cell_and_marks_the_ones_qc_would_drop(chula_subset,
                                                                        tmp_path):
    """Training and evaluation drop cells cut by the border; a prediction must not lose
    them: they are scored and marked in qc_flag."""
    from napari_cellcurator.core.batch import predict_to_file
    from napari_cellcurator.core.pipeline import TrainRequest, evaluate, predict, train

    train(TrainRequest(task="celltype", data=[str(chula_subset)], out=str(tmp_path / "m"),
                       epochs=1, batch_size=16, device="cpu"))
    n_points = sum(len(read_points_file(f)[0]) for f in (chula_subset / "labels").glob("*"))
    with pytest.warns(UserWarning, match="marked in column qc_flag, and not trained on"):
        table = predict(str(tmp_path / "m"), str(chula_subset), device="cpu")
    assert len(table) == n_points
    flagged = table["qc_flag"] != ""
    assert 0 < flagged.sum() < len(table) and set(table["qc_flag"][flagged]) == {"border"}
    assert (table["qc_outside"][flagged] > 0.3).all()
    with pytest.warns(UserWarning, match="the quality filter dropped"):
        metrics = evaluate(str(tmp_path / "m"), str(chula_subset), device="cpu")
    assert metrics["n"] == len(table) - flagged.sum()
    out = predict_to_file(str(tmp_path / "m"), str(chula_subset), str(tmp_path / "p.csv"),
                          device="cpu")
    import pandas as pd

    assert len(pd.read_csv(out)) == n_points
    _curation_commands_keep_every_cell(chula_subset, tmp_path, table, flagged)


def _curation_commands_keep_every_cell(data, tmp_path, table, flagged) -> None:
    """``review`` and ``export`` read the data as napari's Load does: every cell, the marked
    ones reviewed after the others and exported with their flag."""
    import pandas as pd

    from napari_cellcurator.cli import main

    table.to_csv(tmp_path / "pred.csv", index=False)
    common = ["--data", str(data), "--project", str(tmp_path / "proj")]
    assert main(["review", *common, "--predictions", str(tmp_path / "pred.csv"),
                 "--out", str(tmp_path / "order.csv")]) == 0
    order = pd.read_csv(tmp_path / "order.csv", dtype={"item_id": str}, keep_default_na=False)
    assert len(order) == len(table)
    n_good = int((~flagged).sum())
    assert (order["qc_flag"].iloc[:n_good] == "").all() and (order["qc_flag"].iloc[n_good:]
                                                              != "").all()
    assert main(["export", *common, "--predictions", str(tmp_path / "pred.csv"),
                 "--out", str(tmp_path / "curated.csv")]) == 0
    curated = pd.read_csv(tmp_path / "curated.csv", dtype={"item_id": str},
                          keep_default_na=False).set_index("item_id")
    assert len(curated) == len(table)
    marked = table.loc[flagged.to_numpy(), "item_id"].astype(str)
    assert (curated.loc[marked, "qc_flag"] == "border").all()
    assert (curated.loc[marked, "curated"] != "").all()  # their expert labels are kept


def test_training_skips_the_cells_the_quality_filter_marks(chula_subset):
    """Items read with every cell kept (napari's Load, the curation commands) train on what
    a filtered read trains on: the marked cells are left out, said; the split is the same."""
    from napari_cellcurator.core.pipeline import TrainRequest, prepare_training

    req = TrainRequest(task="celltype", data=[str(chula_subset)], epochs=1, device="cpu")
    with pytest.warns(UserWarning, match="the quality filter dropped"):
        *_, train, val, _ = prepare_training(req)
    with pytest.warns(UserWarning, match="marked in column qc_flag"):
        every = get_task("celltype").read(chula_subset, ReadOptions.every_item())
    flagged = (every.table["qc_flag"] != "") & every.labelled
    assert flagged.sum() > 0
    with pytest.warns(UserWarning, match=f"{int(flagged.sum())} labelled items fail the "
                                         "quality filter"):
        *_, train_all, val_all, _ = prepare_training(req, every)
    assert list(train_all.table["item_id"]) == list(train.table["item_id"])
    assert list(val_all.table["item_id"]) == list(val.table["item_id"])
    # napari's fine-tuning passes the session's read options (every cell kept): the model
    # must not record that, or `evaluate` would score the marked cells
    req.read_extra = dict(every.meta.get("read_options", {}).get("extra") or {"qc_keep": True})
    with pytest.warns(UserWarning, match="labelled items fail the quality filter"):
        prep = prepare_training(req, every)[3]
    assert "qc_keep" not in prep["read_options"]["extra"]


def test_crop_quality_in_batches_equals_one_pass(chula_subset, monkeypatch):
    """Quality is measured in batches (100,000 crops must not make three float copies at
    once): the same figures as one pass over every crop."""
    from napari_cellcurator.core.data import quality

    items = get_task("celltype").read(chula_subset, ReadOptions(extra={"qc": False}))
    crops, outside = items.arrays["image"], np.linspace(0, 1, len(items))
    whole = quality.crop_quality(crops, outside)
    monkeypatch.setattr(quality, "QUALITY_BATCH", 7)
    batched = quality.crop_quality(crops, outside)
    for key, values in whole.items():
        np.testing.assert_array_equal(batched[key], values)
    assert len(whole["qc_sharpness"]) == len(items) > 7


def test_metrics_leave_out_the_cells_the_quality_filter_marks():
    """Metrics of a table read with every cell kept (napari's before/after, the demo) count
    the cells evaluation counts: the marked ones are left out."""
    import pandas as pd

    table = pd.DataFrame({"label": ["a", "b", "a"], "qc_flag": ["", "", "border"]})
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9]])  # the marked cell is wrong
    metrics = get_task("celltype").metrics(table, scores, ["a", "b"])
    assert metrics["accuracy"] == 1.0 and metrics["n"] == 2
