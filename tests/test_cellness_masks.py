"""Cellness candidates from a movie + a label image of ROIs (Cellpose / Fiji / napari Labels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.pcaica import neuropil_traces
from napari_cellcurator.core.io.roi_masks import (
    mask_file_for,
    read_label_image,
    rois_from_masks,
)
from napari_cellcurator.core.tasks import get_task

TASK = get_task("cellness")
PRETRAINED = (Path(__file__).resolve().parents[1] / "src" / "napari_cellcurator" / "core"
              / "pretrained" / "cellness_twobranch")


def _disk(shape, cy, cx, r) -> np.ndarray:
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


@pytest.fixture
def miniscope(shared_data) -> np.ndarray:
    return tifffile.imread(shared_data / "calcium" / "miniscope_1p" / "miniscope_1p.tif")


def _two_rois(shape) -> np.ndarray:
    labels = np.zeros(shape, np.uint16)
    labels[_disk(shape, 30, 30, 5)] = 7  # ids need not be 1..n
    labels[_disk(shape, 60, 70, 4)] = 3
    return labels


def test_traces_are_the_movie_mean_inside_each_mask(miniscope):
    labels = _two_rois(miniscope.shape[1:])
    rois = rois_from_masks(miniscope, labels, "movie.tif")
    assert list(rois.columns["mask_id"]) == [3, 7]  # ascending ids
    for k, roi in enumerate((3, 7)):
        expected = miniscope[:, labels == roi].mean(axis=1)
        np.testing.assert_allclose(rois.traces[k], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rois.mean_image, miniscope.mean(axis=0), rtol=1e-5, atol=1e-6)
    # neuropil rings avoid every ROI
    assert rois.neuropil.shape == rois.traces.shape


def test_neuropil_ring_excludes_all_rois(miniscope):
    shape = miniscope.shape[1:]
    a, b = _disk(shape, 30, 30, 5), _disk(shape, 30, 42, 5)
    fps = [(*np.nonzero(m), np.ones(m.sum(), np.float32)) for m in (a, b)]
    ring_only = miniscope * 0 + np.where(a | b, 1000.0, 1.0).astype(np.float32)
    np.testing.assert_allclose(neuropil_traces(ring_only, fps), 1.0)


def test_a_movie_with_masks_beside_it_reads_them(miniscope, tmp_path):
    tifffile.imwrite(tmp_path / "rec.tif", miniscope)
    tifffile.imwrite(tmp_path / "rec_cp_masks.tif", _two_rois(miniscope.shape[1:]))
    assert mask_file_for(tmp_path / "rec.tif") == tmp_path / "rec_cp_masks.tif"
    from napari_cellcurator._reader import detect_task

    assert detect_task(tmp_path / "rec.tif") == "cellness"  # CLI and napari find the task
    assert detect_task(tmp_path / "rec_cp_masks.tif") is None
    assert detect_task(tmp_path) is None  # the movie's folder: no frames of cells to crop
    items = TASK.read_many([tmp_path / "rec.tif"])
    assert len(items) == 2 and items.meta["format"] == "masks"
    assert list(items.table["mask_id"]) == [3, 7]
    assert items.arrays["image"].shape[0] == 2 and items.arrays["trace"].shape == (2, 104)


def test_a_zarr_movie_finds_its_masks_too(miniscope, tmp_path):
    import zarr

    from napari_cellcurator._reader import detect_task

    zarr.save_array(str(tmp_path / "rec.zarr"), miniscope)
    assert detect_task(tmp_path / "rec.zarr") is None  # a movie alone: mixture or PCA/ICA?
    tifffile.imwrite(tmp_path / "rec_masks.tif", _two_rois(miniscope.shape[1:]))
    assert detect_task(tmp_path / "rec.zarr") == "cellness"
    items = TASK.read_many([tmp_path / "rec.zarr"])
    assert list(items.table["mask_id"]) == [3, 7] and items.meta["format"] == "masks"


def _cellpose_seg(labels: np.ndarray, filename: str) -> dict:
    """What Cellpose's GUI / command line save as ``<image>_seg.npy`` (cellpose 3)."""
    return {"masks": labels, "outlines": (labels > 0).astype(np.uint16),
            "chan_choose": [0, 0], "ismanual": np.zeros(labels.max(), bool),
            "filename": filename, "flows": [np.zeros((*labels.shape, 3), np.uint8),
                                            np.zeros((2, *labels.shape), np.float32)],
            "est_diam": np.float64(12.0), "diameter": 12.0, "model_path": "cyto3",
            "flow_threshold": 0.4, "cellprob_threshold": 0.0,
            "normalize_params": {"lowhigh": None, "percentile": [1.0, 99.0]}}


@pytest.mark.parametrize("name", ["rec_seg.npy", "AVG_rec_seg.npy", "rec_mean_cp_masks.tif",
                                  "MAX_rec_masks.png"])
def test_cellpose_output_of_the_movie_or_its_projection_is_found(miniscope, tmp_path, name):
    """Cellpose is run on the mean / max projection (Fiji's Z Project names it AVG_rec.tif)
    and saves ``_seg.npy`` (a pickled dict, read without running anything) by default."""
    from PIL import Image

    from napari_cellcurator._reader import detect_task

    tifffile.imwrite(tmp_path / "rec.tif", miniscope)
    labels = _two_rois(miniscope.shape[1:])
    target = tmp_path / name
    if name.endswith("_seg.npy"):
        np.save(target, _cellpose_seg(labels, str(tmp_path / "AVG_rec.tif")), allow_pickle=True)
    elif name.endswith(".png"):
        Image.fromarray(labels.astype(np.uint8)).save(target)
    else:
        tifffile.imwrite(target, labels)
    assert mask_file_for(tmp_path / "rec.tif") == target
    assert detect_task(tmp_path / "rec.tif") == "cellness"
    items = TASK.read_many([tmp_path / "rec.tif"])
    assert list(items.table["mask_id"]) == [3, 7] and items.meta["format"] == "masks"


def test_a_seg_npy_that_would_run_code_or_holds_no_masks_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            import os

            return os.system, (f"touch {tmp_path / 'hacked'}",)

    np.save(tmp_path / "a_seg.npy", {"masks": Evil()}, allow_pickle=True)
    with pytest.raises(InputError, match=r"a_seg.npy.*unsafe"):
        read_label_image(tmp_path / "a_seg.npy")
    assert not (tmp_path / "hacked").exists()
    np.save(tmp_path / "b_seg.npy", {"outlines": np.zeros((4, 4))}, allow_pickle=True)
    with pytest.raises(InputError, match=r"b_seg.npy.*without 'masks'"):
        read_label_image(tmp_path / "b_seg.npy")


def test_shapes_become_footprints_with_overlaps_kept():
    """napari Shapes: a rotated ellipse fills as an ellipse; overlapping shapes keep all their
    pixels; lines are skipped with one warning; shapes off the frame are dropped."""
    from napari_cellcurator.core.io.shapes import footprints_from_shapes, shape_mask

    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    box = np.array([[-10, -6], [-10, 6], [10, 6], [10, -6]]) @ np.array([[c, s], [-s, c]])
    ellipse = box + 50
    mask = shape_mask(ellipse, "ellipse", (100, 100))
    assert abs(mask.sum() - np.pi * 10 * 6) / (np.pi * 60) < 0.03
    assert mask[50, 50] and not mask[41, 41]  # centre in, box corner out
    square = np.array([[45, 45], [45, 60], [60, 60], [60, 45]])
    outside = np.array([[200, 200], [200, 210], [210, 210]])
    with pytest.warns(UserWarning, match="1 line/path shape"):
        fps, kept = footprints_from_shapes(
            [ellipse, square, np.array([[0, 0], [9, 9]]), outside],
            ["ellipse", "rectangle", "line", "polygon"], (100, 100), "drawn")
    assert kept == [0, 1]
    both = {(y, x) for y, x in zip(*fps[0][:2], strict=True)} & \
        {(y, x) for y, x in zip(*fps[1][:2], strict=True)}
    assert (50, 50) in both and len(fps[1][0]) == 16 * 16
    with pytest.raises(InputError, match="drawn: no shape encloses"):
        footprints_from_shapes([outside], ["polygon"], (100, 100), "drawn")


@pytest.mark.parametrize(("labels", "message"), [
    (np.zeros((50, 50), np.uint16), "does not match"),
    (np.zeros((100, 100), np.uint16), "no ROIs"),
    (np.full((100, 100), 0.5, np.float32), "fractional"),
    (np.zeros((2, 100, 100), np.uint16) + 1, "2-D"),
])
def test_bad_label_image_is_one_error_naming_it(miniscope, tmp_path, labels, message):
    tifffile.imwrite(tmp_path / "rec.tif", miniscope)
    tifffile.imwrite(tmp_path / "rec_masks.tif", labels)
    with pytest.raises(InputError, match=message) as err:
        TASK.read_many([tmp_path / "rec.tif"])
    assert "rec_masks.tif" in str(err.value)


def test_label_image_png_and_npy(tmp_path):
    from PIL import Image

    labels = _two_rois((100, 100)).astype(np.uint8)
    Image.fromarray(labels).save(tmp_path / "m.png")
    np.save(tmp_path / "m.npy", labels)
    for name in ("m.png", "m.npy"):
        np.testing.assert_array_equal(read_label_image(tmp_path / name), labels)


def test_shipped_model_on_masks_of_unseen_simulated_recordings(tmp_path):
    """Masks of true somata (cell) and dendrites (not cell) over recordings the shipped model
    never saw: the masks path feeds the model what it learnt from."""
    from napari_cellcurator.core.data.simulate_calcium import simulate_recording
    from napari_cellcurator.core.pipeline import predict

    correct = total = 0
    for seed in (101, 102):
        sim = simulate_recording(seed)
        labels, truth = np.zeros(sim.movie.shape[1:], np.uint16), {}
        for kind, masks in (("cell", [w > 0.25 for w in sim.cell_weights]),
                            ("not_cell", sim.dendrite_masks)):
            for m in masks:
                m = m & (labels == 0)
                if m.sum() >= 10:
                    labels[m] = len(truth) + 1
                    truth[len(truth) + 1] = kind
        tifffile.imwrite(tmp_path / f"rec{seed}.tif", sim.movie)
        tifffile.imwrite(tmp_path / f"rec{seed}_masks.tif", labels)
        pred = predict(str(PRETRAINED), [str(tmp_path / f"rec{seed}.tif")], device="cpu")
        truth_col = pred["mask_id"].map(truth)
        correct += int((pred["prediction"] == truth_col).sum())
        total += len(pred)
    assert total >= 40
    assert correct / total >= 0.85  # measured 0.96 (48 of 50)


def test_cli_predict_keeps_the_mask_ids(miniscope, tmp_path):
    from napari_cellcurator.cli import main

    tifffile.imwrite(tmp_path / "rec.tif", miniscope)
    tifffile.imwrite(tmp_path / "rec_masks.tif", _two_rois(miniscope.shape[1:]))
    assert main(["predict", "--model", "shipped:cellness", "--data", str(tmp_path / "rec.tif"),
                 "--out", str(tmp_path / "p.csv"), "--device", "cpu"]) == 0
    out = pd.read_csv(tmp_path / "p.csv")
    assert list(out["mask_id"]) == [3, 7] and set(out["prediction"]) <= {"cell", "not_cell"}


def test_item_ids_follow_the_mask_values_not_the_row(miniscope):
    """A ROI added with a lower value later must not shift the others' ids (labels in the
    journal are keyed by item id)."""
    labels = _two_rois(miniscope.shape[1:])
    from napari_cellcurator.core.io.rois import roiset_to_items

    first = roiset_to_items(rois_from_masks(miniscope, labels, "rec.tif"))
    labels[_disk(labels.shape, 80, 20, 4)] = 1
    second = roiset_to_items(rois_from_masks(miniscope, labels, "rec.tif"))
    assert list(first.table["item_id"]) == ["rec:mask3", "rec:mask7"]
    assert list(second.table["item_id"]) == ["rec:mask1", "rec:mask3", "rec:mask7"]


def test_write_back_makes_a_label_image_of_the_cells_only(miniscope, tmp_path):
    """predict → a person overrides one ROI → export --write-back: ``rec_cells.tif`` keeps
    the ROIs decided cells with their values; the user's mask file is untouched."""
    from napari_cellcurator.cli import main

    movie, masks = tmp_path / "rec.tif", tmp_path / "rec_masks.tif"
    tifffile.imwrite(movie, miniscope)
    labels = _two_rois(miniscope.shape[1:])
    tifffile.imwrite(masks, labels)
    before = masks.read_bytes()
    pred = tmp_path / "p.csv"
    assert main(["predict", "--model", str(PRETRAINED), "--data", str(movie), "--out",
                 str(pred), "--device", "cpu"]) == 0
    predicted = pd.read_csv(pred).set_index("mask_id")["prediction"]
    # the person says ROI 7 is a cell and ROI 3 is not, whatever the model said
    assert main(["labels", "--data", str(movie), "--task", "cellness",
                 "--set", "rec:mask7", "cell"]) == 0
    assert main(["labels", "--data", str(movie), "--task", "cellness",
                 "--set", "rec:mask3", "not_cell"]) == 0
    assert main(["export", "--data", str(movie), "--predictions",
                 str(pred), "--write-back"]) == 0
    cells = tifffile.imread(tmp_path / "rec_cells.tif")
    assert set(np.unique(cells)) == {0, 7}
    np.testing.assert_array_equal(cells == 7, labels == 7)
    assert masks.read_bytes() == before
    assert set(predicted.index) == {3, 7}


def test_write_back_refuses_masks_segmented_again_since_read(miniscope, tmp_path):
    """Items read, then Cellpose run again (the two cells' values swapped): the cells-only
    image would keep the wrong cell, so nothing is written and the error names the masks."""
    from napari_cellcurator.core.errors import InputError
    from napari_cellcurator.core.tasks import ReadOptions, get_task

    movie, masks = tmp_path / "rec.tif", tmp_path / "rec_masks.tif"
    tifffile.imwrite(movie, miniscope)
    labels = _two_rois(miniscope.shape[1:])
    tifffile.imwrite(masks, labels)
    task = get_task("cellness")
    items = task.read_many([str(movie)], ReadOptions())
    preds = pd.DataFrame({"item_id": items.table["item_id"],
                          "prediction": np.where(items.table["mask_id"] == 7, "cell",
                                                 "not_cell")})
    swapped = np.where(labels == 7, 3, np.where(labels == 3, 7, 0)).astype(np.uint16)
    tifffile.imwrite(masks, swapped)
    with pytest.raises(InputError, match=r"rec_masks.tif.*changed since it was read"):
        task.write_back(items, preds, movie)
    assert not (tmp_path / "rec_cells.tif").exists()
    tifffile.imwrite(masks, labels)  # as read: written
    task.write_back(items, preds, movie)
    assert set(np.unique(tifffile.imread(tmp_path / "rec_cells.tif"))) == {0, 7}


def test_cli_shipped_model_names(capsys):
    from napari_cellcurator.cli import main

    for name, message in (("shipped:celltype", "no model is shipped"),
                          ("shipped:nope", "unknown task")):
        with pytest.raises(SystemExit) as exit_info:
            main(["predict", "--model", name, "--data", "x", "--out", "y.csv"])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_sparse_and_negative_label_values():
    from napari_cellcurator.core.io.roi_masks import footprints_from_label_image

    labels = np.zeros((20, 20), np.int64)
    labels[2:4, 2:4] = 1_000_000_000
    labels[10:12, 5:8] = 5
    labels[15, 15] = -3  # background
    fps, ids = footprints_from_label_image(labels)
    assert list(ids) == [5, 1_000_000_000]
    assert [len(f[0]) for f in fps] == [6, 4]
    assert (fps[1][0].min(), fps[1][1].min()) == (2, 2)


def test_cells_only_mask_keeps_negative_background_as_background(tmp_path):
    """Negative values are background when read; written back they stayed negative and
    wrapped to 65,535 — an ROI id — in the uint16 file."""
    import tifffile

    from napari_cellcurator.core.io.writeback import write_cell_masks

    labels = np.full((20, 20), -1, np.int32)
    labels[2:6, 2:6], labels[10:15, 10:15] = 3, 7
    mask = tmp_path / "rec_masks.tif"
    tifffile.imwrite(mask, labels)
    (tmp_path / "rec.tif").write_bytes(b"")
    written = write_cell_masks(mask, tmp_path / "rec.tif", np.array([3, 7]),
                               np.array([True, False]))
    cells = tifffile.imread(written)
    assert set(np.unique(cells)) == {0, 3} and cells.dtype == np.uint16
