"""Audit: folder-of-classes layouts and image encodings a biologist may hand the celltype task.

Built from real Jurkat imaging-flow-cytometry TIFFs (``(3, 40, 40)`` uint16) and Chula RGB
JPEG smears, re-saved in other layouts and encodings.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from _celltype_helpers import cli_train_tiny, jurkat_cells
from PIL import Image

from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.io.images import read_image_chw
from napari_cellcurator.core.tasks import ReadOptions, get_task

TASK = get_task("celltype")




def _split_tree(root: Path, shared_data: Path, splits: dict[str, int]) -> Path:
    """``root/<split>/<class>/*.tif`` from real Jurkat cells (different cells per split)."""
    for cls in ("G1", "G2"):
        cells = jurkat_cells(shared_data, cls, sum(splits.values()))
        start = 0
        for split, n in splits.items():
            (root / split / cls).mkdir(parents=True)
            for i, arr in enumerate(cells[start:start + n]):
                tifffile.imwrite(root / split / cls / f"{cls}_{start + i}.tif", arr,
                                 photometric="minisblack")
            start += n
    return root


# ---- (a) ImageFolder split layout: root/train|val|test/<class>/* ------------------------------
def test_split_layout_trains_on_train_and_val_with_the_split_kept(shared_data, tmp_path):
    from napari_cellcurator.core.data.splits import hash_split

    root = _split_tree(tmp_path / "d", shared_data, {"train": 6, "val": 3, "test": 2})
    with pytest.warns(InputWarning, match="test"):
        items = TASK.read_many([root])
    assert set(items.table["label"]) == {"G1", "G2"}  # never 'train' / 'val' as classes
    assert len(items) == 18  # test/ kept aside for evaluation
    assert set(items.table["split"]) == {"train", "val"}
    train_idx, val_idx = hash_split(items.table, TASK.hyper.val_fraction)
    assert set(items.table.loc[val_idx, "split"]) == {"val"}
    assert set(items.table.loc[train_idx, "split"]) == {"train"}
    assert items.table["item_id"].is_unique


def test_split_layout_without_val_uses_the_hash_split(shared_data, tmp_path):
    root = _split_tree(tmp_path / "d", shared_data, {"Train": 8, "Test": 2})
    with pytest.warns(InputWarning, match="Test"):
        items = TASK.read_many([root])
    assert len(items) == 16 and set(items.table["label"]) == {"G1", "G2"}
    assert items.table["group"].nunique() == 16  # no forced side: each cell hashed alone


def test_split_layout_test_folder_evaluates(shared_data, tmp_path):
    root = _split_tree(tmp_path / "d", shared_data, {"train": 6, "val": 2, "test": 3})
    items = TASK.read_many([root / "test"])
    assert len(items) == 6 and set(items.table["label"]) == {"G1", "G2"}


def test_split_layout_cli_train_then_evaluate_test(shared_data, tmp_path):
    from napari_cellcurator.cli import main

    root = _split_tree(tmp_path / "d", shared_data, {"train": 6, "val": 3, "test": 3})
    out = tmp_path / "m"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        assert cli_train_tiny(root, out) == 0
        assert main(["evaluate", "--model", str(out), "--data", str(root / "test")]) == 0
    import json

    cfg = json.loads((out / "config.json").read_text())
    assert cfg["classes"] == ["G1", "G2"]
    assert cfg["metrics"]["n_val"] == 6 and cfg["metrics"]["n_train"] == 12


def test_only_a_test_split_is_read(shared_data, tmp_path):
    root = _split_tree(tmp_path / "d", shared_data, {"test": 3})
    items = TASK.read_many([root])
    assert len(items) == 6 and set(items.table["split"]) == {"test"}


# ---- (b) extensions and junk files ---------------------------------------------------------
def test_mixed_extensions_and_junk_files(shared_data, tmp_path):
    root = tmp_path / "d"
    for cls in ("G1", "G2"):
        (root / cls).mkdir(parents=True)
        for i, arr in enumerate(jurkat_cells(shared_data, cls, 3)):
            suffix = (".TIF", ".tiff", ".Tif")[i]
            tifffile.imwrite(root / cls / f"c{i}{suffix}", arr, photometric="minisblack")
        (root / cls / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        (root / cls / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
        (root / cls / "._c0.TIF").write_bytes(b"\x00\x05\x16\x07AppleDouble junk")
        (root / cls / "notes.txt").write_text("counts")
    (root / ".hidden_class").mkdir()
    (root / "__MACOSX").mkdir()
    (root / "__MACOSX" / "._x.tif").write_bytes(b"\x00\x05\x16\x07")
    items = TASK.read_many([root])
    assert len(items) == 6
    assert set(items.table["label"]) == {"G1", "G2"}


@pytest.mark.parametrize("suffix", [".jpeg", ".JPG", ".png", ".PNG", ".bmp", ".BMP"])
def test_pil_extensions_upper_and_lower_case(suffix, tmp_path):
    root = tmp_path / "d"
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            img = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
            Image.fromarray(img).save(root / cls / f"{i}{suffix}")
    items = TASK.read_many([root])
    assert items.arrays["image"].shape[:2] == (4, 3)


# ---- (c) encodings ---------------------------------------------------------------------------
def test_8bit_and_16bit_grayscale_png(shared_data, tmp_path):
    dna = jurkat_cells(shared_data, "G2", 1)[0][1]  # uint16 DNA channel
    p16, p8 = tmp_path / "a16.png", tmp_path / "a8.png"
    Image.fromarray(dna.astype(np.uint16)).save(p16)
    Image.fromarray((dna >> 4).astype(np.uint8)).save(p8)
    a16, a8 = read_image_chw(p16), read_image_chw(p8)
    assert a16.shape == (1, 40, 40) and a8.shape == (1, 40, 40)
    np.testing.assert_array_equal(a16[0], dna)  # 16-bit values kept, not squashed to 8 bits
    assert a8.dtype == np.uint8


def test_rgba_png_drops_alpha(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 255, (20, 20, 3), dtype=np.uint8)
    rgba = np.dstack([rgb, np.full((20, 20), 255, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "x.png")
    arr = read_image_chw(tmp_path / "x.png")
    assert arr.shape == (3, 20, 20)
    np.testing.assert_array_equal(np.moveaxis(arr, 0, -1), rgb)


def test_rgb_and_rgba_png_mix_in_one_folder(tmp_path):
    rng = np.random.default_rng(2)
    root = tmp_path / "d"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        img = rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)
        Image.fromarray(img).save(root / cls / "rgb.png")
        Image.fromarray(np.dstack([img, np.full((20, 20), 255, np.uint8)])).save(
            root / cls / "rgba.png")
    items = TASK.read_many([root])
    assert items.arrays["image"].shape == (4, 3, 20, 20)


def test_palette_and_bilevel_png(tmp_path):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[4:12, 4:12] = (200, 30, 60)
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.png")
    arr = read_image_chw(tmp_path / "p.png")
    assert arr.shape == (3, 16, 16)
    assert tuple(arr[:, 8, 8]) == (200, 30, 60)  # colours, not palette indices
    mask = np.zeros((16, 16), bool)
    mask[4:12, 4:12] = True
    Image.fromarray(mask).save(tmp_path / "b.png")
    arr = read_image_chw(tmp_path / "b.png")
    assert arr.shape == (1, 16, 16) and arr[0, 8, 8] > arr[0, 0, 0]


def _random_classes(root: Path, rng: np.random.Generator, shape: tuple[int, ...],
                    save) -> Path:
    """Two class folders ``a``, ``b`` of two random uint8 images each, written by ``save``."""
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            save(rng.integers(0, 255, shape, dtype=np.uint8), root / cls, i)
    return root


def test_gray_jpeg_among_rgb_jpegs_is_promoted(tmp_path):
    rng = np.random.default_rng(3)
    root = _random_classes(tmp_path / "d", rng, (20, 20, 3),
                           lambda a, d, i: Image.fromarray(a).save(d / f"{i}.jpg"))
    Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8)).save(root / "a" / "g.jpg")
    with pytest.warns(InputWarning, match="g.jpg"):
        items = TASK.read_many([root])
    assert items.arrays["image"].shape == (5, 3, 20, 20)


def test_tiff_channels_last_and_2d_and_singleton_axes(shared_data, tmp_path):
    cell = jurkat_cells(shared_data, "G1", 1)[0]  # (3, 40, 40)
    tifffile.imwrite(tmp_path / "hwc.tif", np.moveaxis(cell, 0, -1))
    tifffile.imwrite(tmp_path / "hwc_rgb.tif", np.moveaxis(cell, 0, -1), photometric="rgb")
    tifffile.imwrite(tmp_path / "chw.tif", cell, photometric="minisblack")
    tifffile.imwrite(tmp_path / "one.tif", cell[0])
    tifffile.imwrite(tmp_path / "imagej.tif", cell[None, :, None], imagej=True)  # TZCYX
    for name in ("hwc", "hwc_rgb", "chw", "imagej"):
        np.testing.assert_array_equal(read_image_chw(tmp_path / f"{name}.tif"), cell, name)
    assert read_image_chw(tmp_path / "one.tif").shape == (1, 40, 40)


def test_many_channels_last_tiff(tmp_path):
    """An imaging-flow-cytometry export with 12 channels stored last (H, W, 12)."""
    arr = np.random.default_rng(4).integers(0, 4000, (40, 40, 12)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "x.tif", arr, photometric="minisblack", planarconfig="contig")
    out = read_image_chw(tmp_path / "x.tif")
    assert out.shape == (12, 40, 40)
    np.testing.assert_array_equal(out, np.moveaxis(arr, -1, 0))


def _jurkat_classes(root: Path, shared_data: Path, n: int) -> Path:
    """``G1/`` and ``G2/`` folders of ``n`` real Jurkat cells each."""
    for cls in ("G1", "G2"):
        (root / cls).mkdir(parents=True)
        for i, arr in enumerate(jurkat_cells(shared_data, cls, n)):
            tifffile.imwrite(root / cls / f"{i}.tif", arr, photometric="minisblack")
    return root


# ---- (d) empty class folder, (e) corrupt file -------------------------------------------------
def test_empty_class_folder_warns_and_is_not_a_class(shared_data, tmp_path):
    root = _jurkat_classes(tmp_path / "d", shared_data, 3)
    (root / "Anaphase").mkdir()
    (root / "Anaphase" / ".DS_Store").write_bytes(b"junk")
    with pytest.warns(InputWarning, match="Anaphase"):
        items = TASK.read_many([root])
    assert items.meta["classes"] == ["G1", "G2"]


def test_truncated_jurkat_tiff_is_one_error_naming_it(shared_data, tmp_path):
    src = shared_data / "celltype" / "jurkat_ifc" / "G1"
    root = tmp_path / "d"
    for cls in ("G1", "G2"):
        (root / cls).mkdir(parents=True)
        for f in sorted((shared_data / "celltype" / "jurkat_ifc" / cls).glob("*.tif"))[:3]:
            shutil.copy(f, root / cls / f.name)
    data = (src / "G1_0001.tif").read_bytes()
    bad = root / "G2" / "broken.tif"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as err:
        TASK.read_many([root])
    assert str(bad) in str(err.value)
    assert "\n" not in str(err.value)


def test_class_folders_with_patient_subfolders(shared_data, tmp_path):
    """``<class>/<patient>/*.tif``: every image read, the patient is the split group."""
    from napari_cellcurator.core.data.splits import hash_split

    root = tmp_path / "d"
    for cls in ("G1", "G2"):
        for k, arr in enumerate(jurkat_cells(shared_data, cls, 8)):
            sub = root / cls / f"patient{k % 4}"
            sub.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(sub / f"{k}.tif", arr, photometric="minisblack")
        tifffile.imwrite(root / cls / "loose.tif", arr, photometric="minisblack")
    (root / "G1" / ".thumbs").mkdir()
    (root / "G1" / ".thumbs" / "0.tif").write_bytes(b"junk")
    items = TASK.read_many([root])
    assert len(items) == 18 and items.table["item_id"].is_unique
    assert "G1/patient0/0.tif" in set(items.table["item_id"])
    train, val = hash_split(items.table, TASK.hyper.val_fraction)
    groups = items.table["group"]
    assert not set(groups[train]) & set(groups[val])
    patient = items.table["item_id"].str.extract(r"(patient\d)")[0]
    for p in patient.dropna().unique():  # one patient: one side, across both classes
        rows = np.flatnonzero((patient == p).to_numpy())
        assert set(rows) <= set(train) or set(rows) <= set(val)


def test_symlink_loop_in_a_class_folder_is_read_once(shared_data, tmp_path):
    root = _jurkat_classes(tmp_path / "d", shared_data, 2)
    (root / "G1" / "loop").symlink_to(root / "G1", target_is_directory=True)
    items = TASK.read_many([root])
    assert len(items) == 4


# ---- one file per channel (imaging flow cytometry export) ----------------------------------
def _per_channel_tree(root: Path, shared_data: Path, n: int = 4) -> Path:
    """Jurkat cells exported IDEAS-style: ``<class>/<cell>_Ch3|Ch4|Ch6.ome.tif``."""
    for cls in ("G1", "G2"):
        (root / cls).mkdir(parents=True)
        for i, cell in enumerate(jurkat_cells(shared_data, cls, n)):
            for ch, plane in zip((3, 4, 6), cell, strict=True):
                tifffile.imwrite(root / cls / f"{i + 1}_Ch{ch}.ome.tif", plane)
    return root


def test_one_file_per_channel_is_one_multichannel_cell(shared_data, tmp_path):
    root = _per_channel_tree(tmp_path / "d", shared_data)
    items = TASK.read_many([root])
    assert len(items) == 8 and items.arrays["image"].shape == (8, 3, 40, 40)
    assert "G1/1" in set(items.table["item_id"])
    cells = jurkat_cells(shared_data, "G1", 1)[0]
    row = int(np.flatnonzero(items.table["item_id"] == "G1/1")[0])
    np.testing.assert_array_equal(items.arrays["image"][row], cells)  # Ch3, Ch4, Ch6 in order
    label_free = TASK.read_many([root], ReadOptions(channels=[0, 2]))
    np.testing.assert_array_equal(label_free.arrays["image"][row], cells[[0, 2]])


def test_a_model_reads_the_channels_it_was_trained_on_by_number(shared_data, tmp_path):
    """Label-free training on Ch3, Ch4, Ch6 (--channels 0,2: Ch3 and Ch6); another export
    holds Ch1 … Ch6: positions 0 and 2 there are Ch1 and Ch3, so the model picks Ch3 and Ch6
    by number; an export without Ch6 is one error naming the channels."""
    root = _per_channel_tree(tmp_path / "d", shared_data)
    train = TASK.read_many([root], ReadOptions(channels=[0, 2]))
    prep = TASK.fit_preprocessing(train, ReadOptions(channels=[0, 2]))
    assert prep["read_options"]["extra"]["channel_numbers"] == [3, 6]
    wider = tmp_path / "all_channels"
    for f in sorted(root.glob("*/*_Ch3.ome.tif")):
        (wider / f.parent.name).mkdir(parents=True, exist_ok=True)
        cell = f.name.split("_Ch")[0]
        for ch in range(1, 7):
            src = f.with_name(f"{cell}_Ch{ch}.ome.tif")
            plane = tifffile.imread(src) if src.exists() else tifffile.imread(f) * 0 + ch
            tifffile.imwrite(wider / f.parent.name / src.name, plane)
    again = TASK.read_many([wider], TASK.read_options_from(prep))
    np.testing.assert_array_equal(again.arrays["image"], train.arrays["image"])
    for f in wider.glob("*/*_Ch6.ome.tif"):
        f.unlink()
    with pytest.raises(InputError, match=r"has channels Ch1, Ch2, Ch3, Ch4, Ch5, not Ch6"):
        TASK.read_many([wider], TASK.read_options_from(prep))


def test_one_file_per_channel_with_a_channel_missing(shared_data, tmp_path):
    root = _per_channel_tree(tmp_path / "d", shared_data, n=2)
    (root / "G2" / "2_Ch4.ome.tif").unlink()
    with pytest.raises(InputError, match=r"channels \[3, 6\]") as err:
        TASK.read_many([root])
    assert str(root / "G2" / "2_Ch*") in str(err.value)


def test_a_file_named_otherwise_among_channel_files_is_named(shared_data, tmp_path):
    """One plain image dropped among per-channel files would silently make every cell
    single-channel items (new ids, orphaned labels): it is named instead."""
    root = _per_channel_tree(tmp_path / "d", shared_data, n=2)
    plane = tifffile.imread(root / "G1" / "1_Ch3.ome.tif")
    tifffile.imwrite(root / "G1" / "newcell.tif", plane)
    with pytest.raises(InputError, match=r"newcell.tif.*not named <cell>_Ch<k>"):
        TASK.read_many([root])


def test_names_ending_in_ch_digits_without_channel_sets_stay_single_files(tmp_path):
    rng = np.random.default_rng(5)
    root = _random_classes(tmp_path / "d", rng, (3, 16, 16), lambda a, d, i: tifffile.imwrite(
        d / f"cell{i}_ch1.tif", a, photometric="minisblack"))
    items = TASK.read_many([root])
    assert items.arrays["image"].shape == (4, 3, 16, 16)


# ---- a table of crop files and classes ------------------------------------------------------
def _flat_with_csv(root: Path, shared_data: Path, sep: str = ",") -> Path:
    (root / "crops").mkdir(parents=True)
    lines = [sep.join(["Filename", "Class", "patient"])]
    for cls in ("G1", "G2"):
        for i, arr in enumerate(jurkat_cells(shared_data, cls, 4)):
            tifffile.imwrite(root / "crops" / f"{cls}_{i}.tif", arr, photometric="minisblack")
            lines.append(sep.join([f"crops/{cls}_{i}.tif", cls, f"p{i % 2}"]))
    tifffile.imwrite(root / "crops" / "new.tif", arr, photometric="minisblack")
    lines.append(sep.join(["crops/new.tif", "", "p9"]))
    (root / "cells.csv").write_text("\n".join(lines) + "\n")
    return root / "cells.csv"


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_crop_table_csv(sep, shared_data, tmp_path):
    csv = _flat_with_csv(tmp_path / "d", shared_data, sep)
    items = TASK.read_many([csv])
    assert len(items) == 9 and items.arrays["image"].shape == (9, 3, 40, 40)
    assert items.table["label"].isna().sum() == 1  # the unlabelled new cell
    assert items.meta["classes"] == ["G1", "G2"]
    assert "crops/G1_0.tif" in set(items.table["item_id"])
    assert set(items.table["patient"]) == {"p0", "p1", "p9"}


def test_crop_table_missing_file_and_no_file_column(shared_data, tmp_path):
    csv = _flat_with_csv(tmp_path / "d", shared_data)
    (tmp_path / "d" / "crops" / "G2_1.tif").unlink()
    with pytest.raises(InputError, match="G2_1.tif does not exist") as err:
        TASK.read_many([csv])
    assert str(csv) in str(err.value)
    (tmp_path / "d" / "bad.csv").write_text("foo,bar\n1,2\n")
    with pytest.raises(InputError, match="no file column"):
        TASK.read_many([tmp_path / "d" / "bad.csv"])


def test_crop_table_cli_train_and_predict(shared_data, tmp_path):
    import pandas as pd

    from napari_cellcurator.cli import main

    csv = _flat_with_csv(tmp_path / "d", shared_data)
    out, pred = tmp_path / "m", tmp_path / "p.csv"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        assert cli_train_tiny(csv, out) == 0
        assert main(["predict", "--model", str(out), "--data", str(csv), "--out", str(pred),
                     "--device", "cpu"]) == 0
    assert len(pd.read_csv(pred)) == 9


def test_crop_table_with_a_file_column_only(shared_data, tmp_path):
    csv = _flat_with_csv(tmp_path / "d", shared_data)
    only = tmp_path / "d" / "only.csv"
    only.write_text("filename\n" + "\n".join(line.split(",")[0] for line in
                                            csv.read_text().splitlines()[1:]) + "\n")
    items = TASK.read_many([only])
    assert len(items) == 9 and items.table["label"].isna().all()


def test_kaggle_layout_with_an_unlabelled_test_folder(tmp_path):
    """``train/<class>/`` + ``test/*.png`` (no classes): train/ is the data, test/ is kept
    aside and read on its own as unlabelled crops — split names never become classes."""
    rng = np.random.default_rng(8)
    root = tmp_path / "kaggle"
    _random_classes(root / "train", rng, (20, 20, 3),
                    lambda a, d, i: Image.fromarray(a).save(d / f"{i}.png"))
    (root / "test").mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(
            root / "test" / f"cell{i}.png")
    with pytest.warns(InputWarning, match="3 images of \\['test'\\] are kept aside"):
        items = TASK.read_many([root])
    assert set(items.table["label"]) == {"a", "b"} and len(items) == 4
    test = TASK.read_many([root / "test"])
    assert len(test) == 3 and test.table["label"].isna().all()
    assert list(test.table["item_id"]) == ["cell0.png", "cell1.png", "cell2.png"]
