"""Folder-of-classes crops of varying size (RGB JPEG): one scale, cell size and shape kept."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_cellcurator.core.io.celltype_readers import read_class_folders
from napari_cellcurator.core.io.crop_fits import MAX_INPUT
from napari_cellcurator.core.tasks import ReadOptions, get_task


def _cell(h: int, w: int, radius: float, rng: np.random.Generator) -> np.ndarray:
    """A dark disc (a cell) on a light background, RGB uint8, ``h`` × ``w`` pixels."""
    yy, xx = np.mgrid[:h, :w]
    disc = np.hypot(yy - h / 2, xx - w / 2) < radius
    img = np.full((h, w, 3), 220, np.float32) + rng.normal(0, 3, (h, w, 3))
    img[disc] = (150, 60, 90)
    return np.clip(img, 0, 255).astype(np.uint8)


def _write_folder(root: Path, sizes: dict[str, list[tuple[int, int, float]]]) -> Path:
    rng = np.random.default_rng(0)
    for cls, shapes in sizes.items():
        (root / cls).mkdir(parents=True)
        for i, (h, w, r) in enumerate(shapes):
            Image.fromarray(_cell(h, w, r, rng)).save(root / cls / f"{cls}_{i}.jpg", quality=95)
    return root


def _dark_area(crop: np.ndarray) -> float:
    return float((crop.mean(axis=0) < 185).sum())


@pytest.fixture()
def varying(tmp_path) -> Path:
    # small cells in small crops, large cells in large crops, one non-square crop
    small = [(30, 30, 8), (34, 30, 8), (28, 32, 8), (30, 30, 8)]
    large = [(60, 60, 20), (58, 62, 20), (64, 60, 20), (60, 60, 20)]
    return _write_folder(tmp_path / "data", {"small": small, "large": large})


def test_varying_sizes_share_one_scale_so_cell_size_survives(varying):
    items = read_class_folders(varying, ReadOptions())
    crops = items.arrays["image"]
    assert crops.shape[1] == 3 and crops.shape[2] == crops.shape[3] <= MAX_INPUT
    assert items.meta["read_settings"]["fit"] == "canvas"
    areas = np.array([_dark_area(c) for c in crops])
    small = areas[(items.table["label"] == "small").to_numpy()]
    large = areas[(items.table["label"] == "large").to_numpy()]
    # radius 20 vs 8: areas differ ~6×; stretching every crop to the canvas would give ~1×
    assert large.min() > 4 * small.max()


def test_non_square_crop_keeps_its_aspect_ratio(tmp_path):
    root = _write_folder(tmp_path / "d", {"a": [(40, 40, 10), (40, 40, 10)],
                                          "b": [(20, 40, 6), (40, 40, 10)]})
    items = read_class_folders(root, ReadOptions())
    crop = items.arrays["image"][(items.table["item_id"] == "b/b_0.jpg").to_numpy()][0]
    rows = np.flatnonzero((crop.mean(axis=0) < 185).any(axis=1))
    cols = np.flatnonzero((crop.mean(axis=0) < 185).any(axis=0))
    assert abs(len(rows) - len(cols)) <= 2  # a round cell stays round (not squashed 2:1)


def test_same_size_square_crops_keep_their_size_up_to_the_cap(tmp_path):
    rng = np.random.default_rng(1)
    for side in (40, 100):
        root = tmp_path / f"s{side}"
        for cls in ("a", "b"):
            (root / cls).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(_cell(side, side, side / 4, rng)).save(root / cls / f"{i}.png")
        items = read_class_folders(root, ReadOptions())
        assert items.arrays["image"].shape[-1] == min(side, MAX_INPUT)
        assert items.meta["read_settings"]["fit"] == "pixel"


def test_prediction_reads_new_crops_with_the_training_scale(varying, tmp_path):
    task = get_task("celltype")
    train = task.read(varying, ReadOptions())
    prep = task.fit_preprocessing(train, ReadOptions())
    assert prep["read_options"]["extra"]["fit"] == "canvas"
    # new data with only large crops: the recorded scale, not a new one, must be applied
    new = _write_folder(tmp_path / "new", {"large": [(90, 90, 30), (90, 90, 30)],
                                           "small": [(30, 30, 8), (30, 30, 8)]})
    again = task.read(new, task.read_options_from(prep))
    assert again.arrays["image"].shape[1:] == train.arrays["image"].shape[1:]
    scale = prep["read_options"]["extra"]["scale"]
    small_train = _dark_area(train.arrays["image"][0 + 4])  # first "small" item
    small_new = _dark_area(again.arrays["image"][2])
    assert small_new == pytest.approx(small_train, rel=0.3)
    assert 0 < scale <= 1


def test_legacy_config_with_crop_size_and_no_fit_still_resizes(varying):
    items = read_class_folders(varying, ReadOptions(crop_size=24))
    assert items.arrays["image"].shape[-1] == 24
    assert items.meta["read_settings"]["fit"] == "resize"


def test_jpeg_crops_of_varying_size_train_and_evaluate_unchanged(varying, tmp_path):
    import torch

    from napari_cellcurator.core.pipeline import TrainRequest, evaluate, train

    torch.set_num_threads(1)
    saved = train(TrainRequest(task="celltype", data=[str(varying)], out=str(tmp_path / "m"),
                               epochs=1, batch_size=4, device="cpu"))
    metrics = evaluate(str(tmp_path / "m"), str(varying), device="cpu")
    assert metrics["n"] == 8 and 0 <= metrics["accuracy"] <= 1
    assert saved.config.preprocessing["read_options"]["extra"]["fit"] == "canvas"


def _tiffs_around(src: Path, dst: Path, pad: int) -> Path:
    """The same cells as ``src``'s crops in a larger (``pad`` > 0: edge-extended, as a wider
    export field) or smaller (``pad`` < 0: centre-cut) frame."""
    import tifffile

    for f in sorted(src.glob("*/*.tif")):
        arr = tifffile.imread(f)
        out = (np.pad(arr, ((0, 0), (pad, pad), (pad, pad)), mode="edge") if pad > 0
               else arr[:, -pad:pad, -pad:pad])
        (dst / f.parent.name).mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(dst / f.parent.name / f.name, out, photometric="minisblack")
    return dst


def test_larger_crops_of_the_same_cells_predict_as_the_training_crops(
        tiny_celltype_model, jurkat_subset, tmp_path):
    """A model trained on 40 px IFC crops must read 66 px crops of the same instrument at
    the same pixel scale (centre-cropped), not shrink the cells to 60 % by resizing."""
    from napari_cellcurator.core.errors import InputWarning
    from napari_cellcurator.core.pipeline import predict

    wider = _tiffs_around(jurkat_subset, tmp_path / "wider", 13)  # 40 → 66 px
    before = predict(str(tiny_celltype_model), str(jurkat_subset), device="cpu")
    with pytest.warns(InputWarning, match="36 of 36 crops are not 40×40 px"):
        after = predict(str(tiny_celltype_model), str(wider), device="cpu")
    assert list(after["item_id"]) == list(before["item_id"])
    prob = [c for c in before.columns if c.startswith("prob_")]
    np.testing.assert_allclose(after[prob].to_numpy(), before[prob].to_numpy(), atol=1e-5)


def test_smaller_crops_are_padded_at_the_training_pixel_scale(jurkat_subset, tmp_path):
    task = get_task("celltype")
    train = task.read(jurkat_subset, ReadOptions(channels=[0, 2]))
    prep = task.fit_preprocessing(train, ReadOptions(channels=[0, 2]))
    assert prep["read_options"]["extra"]["fit"] == "pixel"
    narrow = _tiffs_around(jurkat_subset, tmp_path / "narrow", -6)  # 40 → 28 px
    with pytest.warns(UserWarning, match="centre-cropped or padded to 40 px"):
        again = task.read(narrow, task.read_options_from(prep))
    assert again.arrays["image"].shape[1:] == train.arrays["image"].shape[1:]
    np.testing.assert_array_equal(again.arrays["image"][:, :, 6:34, 6:34],
                                  train.arrays["image"][:, :, 6:34, 6:34])


def test_exports_of_two_sizes_and_the_same_file_names_train_together(jurkat_subset, tmp_path):
    """Two experiments of one instrument, exported at 40 and 66 px with the same file names
    (IDEAS numbers each export's cells from 0): one pixel scale, and distinct item ids."""
    from napari_cellcurator.core.io.items import FORMER_ID

    wider = _tiffs_around(jurkat_subset, tmp_path / "exp2", 13)
    task = get_task("celltype")
    with pytest.warns(UserWarning, match="exp2: 36 of 36 crops are not 40×40 px"):
        both = task.read_many([jurkat_subset, wider], ReadOptions(channels=[0, 2]))
    alone = task.read(jurkat_subset, ReadOptions(channels=[0, 2]))
    images = both.arrays["image"]
    assert images.shape == (72, 2, 40, 40)
    np.testing.assert_array_equal(images[36:], images[:36])  # the same cells, centre-cut
    ids = both.table["item_id"]
    assert ids.is_unique and ids[36].startswith("exp2/")
    assert list(both.table[FORMER_ID][:36]) == list(alone.table["item_id"])
    renamed = tmp_path / "exp3"  # ids already distinct: left as they are
    for f in sorted(jurkat_subset.glob("*/*.tif")):
        (renamed / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, renamed / f.parent.name / f"exp3_{f.name}")
    plain = task.read_many([jurkat_subset, renamed], ReadOptions(channels=[0, 2]))
    assert list(plain.table["item_id"][:36]) == list(alone.table["item_id"])
    assert FORMER_ID not in plain.table.columns


def test_distinct_path_names_go_up_until_the_paths_differ(tmp_path):
    from napari_cellcurator.core.io.items import distinct_path_names

    assert distinct_path_names([tmp_path / "exp1", tmp_path / "exp2"]) == ["exp1", "exp2"]
    assert distinct_path_names([tmp_path / "a" / "data", tmp_path / "b" / "data"]) == [
        "a/data", "b/data"]


def test_a_data_path_given_twice_is_refused(jurkat_subset):
    from napari_cellcurator.core.errors import InputError

    with pytest.raises(InputError, match="given twice"):
        get_task("celltype").read_many([jurkat_subset, Path(str(jurkat_subset) + "/")])


def test_images_at_another_intensity_scale_are_said_before_scoring(
        tiny_celltype_model, jurkat_subset, tmp_path):
    """The model keeps absolute intensities (IFC: DNA content, size): an 8-bit export of
    the 16-bit cells is scored, but the user is told it is unlike the training data."""
    import tifffile

    from napari_cellcurator.core.errors import InputWarning
    from napari_cellcurator.core.pipeline import predict

    eight_bit = tmp_path / "eight_bit"
    for f in sorted(jurkat_subset.glob("*/*.tif")):
        (eight_bit / f.parent.name).mkdir(parents=True, exist_ok=True)
        arr = (tifffile.imread(f) // 16).clip(0, 255).astype(np.uint8)
        tifffile.imwrite(eight_bit / f.parent.name / f.name, arr, photometric="minisblack")
    with pytest.warns(InputWarning, match=r"eight_bit: channel 0 has a mean intensity of .*"
                                          r"standard deviations from the training data"):
        scored = predict(str(tiny_celltype_model), str(eight_bit), device="cpu")
    assert len(scored) == 36
    from napari_cellcurator.core.batch import predict_to_file

    with pytest.warns(InputWarning, match=r"eight_bit: channel 0 has a mean intensity"):
        predict_to_file(str(tiny_celltype_model), str(eight_bit), str(tmp_path / "p.csv"),
                        device="cpu")  # the CLI's predict
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)  # the training cells: nothing to say
        predict(str(tiny_celltype_model), str(jurkat_subset), device="cpu")
