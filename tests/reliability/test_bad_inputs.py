"""Bad cell-type input and the CLI: the package's error (which file, what is wrong, what was
expected) and exit status 2 — never a numpy/torch traceback, never a half-written output.

Some odd inputs are not errors and must just work (with a warning where the user should know):
NaN pixels, an empty class folder, a class with one example, file names that are not UTF-8,
images smaller than the crop.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _reliability_helpers import (
    NON_UTF8,
    assert_input_error,
    class_folders,
    cli_fails,
    read_or_error,
)

from napari_cellcurator.cli import main
from napari_cellcurator.core.errors import InputWarning
from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.tasks import ReadOptions

torch.set_num_threads(1)
TRAIN = ["--arch", "seedcnn", "--epochs", "1", "--device", "cpu", "--batch-size", "8"]


@pytest.fixture(scope="module")
def good_data(tmp_path_factory):
    return class_folders(tmp_path_factory.mktemp("good"))


@pytest.fixture(scope="module")
def model(good_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "model"
    assert main(["train", "--task", "celltype", "--data", str(good_data), "--out", str(out),
                 *TRAIN]) == 0
    return out


# ---- corrupt or unsupported image files: InputError naming the file ------------------------
BROKEN_FILES = {
    "corrupt TIFF": ("A/bad.tif", b"II*\x00garbage-not-a-tiff", ["no pixels"]),
    "truncated TIFF": ("A/bad.tif", None, ["cannot be read"]),  # filled in below
    "zero-byte TIFF": ("A/bad.tif", b"", ["cannot be read"]),
    "corrupt PNG": ("A/bad.png", b"\x89PNG\r\n\x1a\nnot really", ["cannot be read"]),
    "text as JPEG": ("A/bad.jpg", b"hello, I am text", ["cannot be read"]),
    "bool pixels": ("A/bad.tif", np.ones((3, 16, 16), bool), ["pixel type bool"]),
    "complex pixels": ("A/bad.tif", np.ones((3, 16, 16), np.complex64), ["pixel type complex"]),
    "4-D stack": ("A/bad.tif", np.zeros((2, 3, 16, 16), np.uint8), ["shape (2, 3, 16, 16)"]),
    "fewer channels": ("A/bad.tif", np.zeros((16, 16), np.uint8), ["channel counts"]),
}


def _truncated_tiff(tmp_path) -> bytes:
    import tifffile

    p = tmp_path / "full.tif"
    tifffile.imwrite(p, np.arange(3 * 64 * 64, dtype=np.uint16).reshape(3, 64, 64),
                     photometric="minisblack")
    data = p.read_bytes()
    return data[: len(data) // 3]


@pytest.mark.parametrize("case", sorted(BROKEN_FILES))
def test_broken_image_file_names_the_file(case, tmp_path):
    rel, content, words = BROKEN_FILES[case]
    if content is None:
        content = _truncated_tiff(tmp_path)
    root = class_folders(tmp_path / "d", extra={rel: content})
    result = read_or_error("celltype", [root])
    named = root if case == "fewer channels" else root / rel
    assert_input_error(result, named, *words)


def test_missing_channel_is_named(tmp_path):
    root = class_folders(tmp_path / "d", channels=2)
    result = read_or_error("celltype", [root], ReadOptions(channels=[0, 5]))
    assert_input_error(result, root, "channels [5] do not exist")


def test_not_a_class_folder_layout(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    assert_input_error(read_or_error("celltype", [tmp_path]), tmp_path, "not a recognised")


def test_a_broken_crop_in_a_folder_of_crops_is_named(tmp_path):
    """A folder of crops without classes is read (unlabelled); a broken file says so."""
    (tmp_path / "x.tif").write_bytes(b"")
    assert_input_error(read_or_error("celltype", [tmp_path]), tmp_path / "x.tif",
                       "cannot be read as an image")


def test_only_empty_class_folders(tmp_path):
    root = class_folders(tmp_path / "d", per_class=0, extra={"A": None, "B": None})
    assert_input_error(read_or_error("celltype", [root]), root, "no images")


# ---- odd but valid input: handled, the user warned -----------------------------------------
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_pixels_are_cleaned_with_a_warning(value, tmp_path):
    img = np.ones((3, 16, 16), np.float32)
    img[:, :4] = value
    root = class_folders(tmp_path / "d", extra={"B/odd.tif": img})
    with pytest.warns(InputWarning, match="odd.tif"):
        items = read_or_error("celltype", [root])
    assert isinstance(items, ItemSet)
    assert np.isfinite(items.arrays["image"]).all()
    row = items.table.index[items.table["item_id"] == "B/odd.tif"][0]
    assert items.arrays["image"][row].min() >= min(0.0, 1.0) - 1e-6  # NaN → 0, inf → 1


def test_empty_class_folder_is_ignored_with_a_warning(tmp_path):
    root = class_folders(tmp_path / "d", extra={"C_empty": None})
    with pytest.warns(InputWarning, match="C_empty"):
        items = read_or_error("celltype", [root])
    assert items.meta["classes"] == ["A", "B"]
    assert len(items) == 12


def test_images_smaller_than_the_crop_are_resized(tmp_path):
    root = class_folders(tmp_path / "d", size=8, extra={"A/one_pixel.tif":
                                                        np.full((3, 1, 1), 7, np.uint8)})
    items = read_or_error("celltype", [root], ReadOptions(crop_size=32))
    assert items.arrays["image"].shape == (13, 3, 32, 32)
    assert np.isfinite(items.arrays["image"]).all()


def test_non_utf8_names_read_train_and_predict(tmp_path, capsys):
    """Bytes file names (Linux) keep working; ids/labels become printable ``\\xNN`` text."""
    root = class_folders(tmp_path / "d", classes=("A", NON_UTF8), extra={
        f"A/{NON_UTF8}.tif": np.zeros((3, 16, 16), np.uint8)})
    items = read_or_error("celltype", [root])
    assert isinstance(items, ItemSet), items
    assert "\\xff\\xfe" in set(items.table["label"])
    assert "A/\\xff\\xfe.tif" in set(items.table["item_id"])
    out, pred = tmp_path / "m", tmp_path / "p.csv"
    assert main(["train", "--task", "celltype", "--data", str(root), "--out", str(out),
                 *TRAIN]) == 0
    assert "\\xff\\xfe" in json.loads((out / "config.json").read_text())["classes"]
    assert main(["predict", "--model", str(out), "--data", str(root), "--out", str(pred),
                 "--device", "cpu"]) == 0
    assert pred.read_text(encoding="utf-8").count("\n") == 14


def test_class_with_one_example_trains_with_a_warning(tmp_path):
    root = class_folders(tmp_path / "d", extra={"C/only.tif": np.zeros((3, 16, 16), np.uint8)})
    with pytest.warns(InputWarning, match="single labelled example"):
        code = main(["train", "--task", "celltype", "--data", str(root),
                     "--out", str(tmp_path / "m"), *TRAIN])
    assert code == 0
    assert json.loads((tmp_path / "m" / "config.json").read_text())["classes"] == ["A", "B", "C"]


# ---- the CLI: exit 2, nothing written ------------------------------------------------------
def test_single_class_refused_before_anything_is_written(tmp_path, capsys):
    root = class_folders(tmp_path / "d", classes=("A",))
    out = tmp_path / "m"
    cli_fails(["train", "--task", "celltype", "--data", str(root), "--out", str(out), *TRAIN],
              capsys, str(root), "one class", "two classes")
    assert not out.exists()


def test_train_on_corrupt_file_writes_no_model(tmp_path, capsys):
    root = class_folders(tmp_path / "d", extra={"B/bad.tif": b"II*\x00junk"})
    out = tmp_path / "m"
    cli_fails(["train", "--task", "celltype", "--data", str(root), "--out", str(out), *TRAIN],
              capsys, str(root / "B" / "bad.tif"))
    assert not out.exists()


def test_predict_on_corrupt_file_writes_no_table(model, tmp_path, capsys):
    root = class_folders(tmp_path / "d", extra={"B/bad.png": b"\x89PNG\r\n\x1a\n"})
    for suffix in (".csv", ".parquet"):
        out = tmp_path / f"p{suffix}"
        cli_fails(["predict", "--model", str(model), "--data", str(root), "--out", str(out),
                   "--device", "cpu"], capsys, "bad.png")
        assert not out.exists()


def test_explain_on_corrupt_file_writes_nothing(model, tmp_path, capsys):
    root = class_folders(tmp_path / "d", extra={"B/bad.tif": b""})
    out = tmp_path / "e.npy"
    cli_fails(["explain", "--model", str(model), "--data", str(root), "--item", "A/0.tif",
               "--method", "occlusion", "--out", str(out)], capsys, "bad.tif")
    assert not out.exists()


def test_explain_unknown_item_writes_nothing(model, good_data, tmp_path, capsys):
    out = tmp_path / "e.npy"
    cli_fails(["explain", "--model", str(model), "--data", str(good_data), "--item", "nope",
               "--method", "gradcam", "--out", str(out)], capsys, "nope")
    assert not out.exists()


def test_unknown_class_names_in_labels_are_scored_as_errors(model, tmp_path, capsys):
    """A held-out set with a class the model never saw is still evaluated: those items count
    as errors (recall 0), the JSON names the unknown class, and a warning says so."""
    root = class_folders(tmp_path / "d", classes=("A", "B", "Zebra"))
    with pytest.warns(InputWarning, match="Zebra"):
        code = main(["evaluate", "--model", str(model), "--data", str(root), "--json"])
    assert code == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["unknown_classes"] == ["Zebra"]
    assert metrics["per_class"]["Zebra"]["recall"] == 0.0
    assert metrics["per_class"]["Zebra"]["support"] > 0


def test_targets_refuse_a_class_outside_the_list():
    """Training targets still refuse a label they cannot map (metrics extend the list)."""
    import pandas as pd

    from napari_cellcurator.core.errors import InputError
    from napari_cellcurator.core.tasks import get_task

    table = pd.DataFrame({"item_id": ["1"], "source": ["x"], "label": ["Zebra"]})
    with pytest.raises(InputError, match="Zebra"):
        get_task("celltype").targets(table, ["A", "B"])


def test_wrong_channel_count_for_the_model(model, tmp_path, capsys):
    root = class_folders(tmp_path / "d", channels=1)
    out = tmp_path / "p.csv"
    cli_fails(["predict", "--model", str(model), "--data", str(root), "--out", str(out),
               "--device", "cpu"], capsys)
    assert not out.exists()


@pytest.mark.parametrize("config", [
    b"{ not json", b"\xff\xfe\x00garbage", b"[]", b'{"task": 3}',
    b'{"format_version": 1, "task": "celltype", "arch": "seedcnn", "model_spec": "oops", '
    b'"classes": [], "preprocessing": {}}',
    b'{"format_version": 1, "task": "celltype", "arch": "no_such_arch", "model_spec": {}, '
    b'"classes": ["A"], "preprocessing": {}}',
    b'{"format_version": 1, "task": "celltype", "arch": "seedcnn", '
    b'"model_spec": {"in_channels": "x"}, "classes": ["A"], "preprocessing": {}}',
])
def test_corrupt_model_config_exits_2(config, model, good_data, tmp_path, capsys):
    bad = tmp_path / "bad_model"
    bad.mkdir()
    (bad / "weights.safetensors").write_bytes((model / "weights.safetensors").read_bytes())
    (bad / "config.json").write_bytes(config)
    out = tmp_path / "p.csv"
    cli_fails(["predict", "--model", str(bad), "--data", str(good_data), "--out", str(out),
               "--device", "cpu"], capsys, str(bad))
    assert not out.exists()


def test_truncated_weights_exit_2(model, good_data, tmp_path, capsys):
    bad = tmp_path / "bad_model"
    bad.mkdir()
    (bad / "config.json").write_bytes((model / "config.json").read_bytes())
    w = (model / "weights.safetensors").read_bytes()
    (bad / "weights.safetensors").write_bytes(w[: len(w) // 2])
    cli_fails(["evaluate", "--model", str(bad), "--data", str(good_data)], capsys,
              "weights.safetensors")
