"""Audit: Chula-style ``images/`` + ``labels/`` folders written the ways other tools write them
(headers, commas, tabs, CSV files, other column orders, blank lines, points off the image,
images without labels, labels without images). Built from real Chula RBC-12 smears."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.io.points import read_points_file
from napari_cellcurator.core.tasks import ReadOptions, get_task

TASK = get_task("celltype")
NO_QC = ReadOptions(extra={"qc": False})


@pytest.fixture(scope="module")
def chula(shared_data) -> Path:
    return shared_data / "celltype" / "chula_rbc12"


def _folder(tmp_path: Path, chula: Path, labels: dict[str, str],
            stems: tuple[str, ...] = ("1", "12")) -> Path:
    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for stem in stems:
        shutil.copy(chula / "images" / f"{stem}.jpg", root / "images")
    for name, text in labels.items():
        (root / "labels" / name).write_text(text)
    return root


def _chula_lines(chula: Path, stem: str) -> list[list[str]]:
    text = (chula / "labels" / f"{stem}.txt").read_text()
    return [ln.split() for ln in text.splitlines() if ln.strip()]


def _reference(tmp_path: Path, chula: Path):
    root = _folder(tmp_path / "ref", chula, {f"{s}.txt": (chula / "labels" / f"{s}.txt")
                                             .read_text() for s in ("1", "12")})
    return TASK.read_many([root], NO_QC)


@pytest.mark.parametrize("style", ["header", "comma", "tab", "csv", "crlf_blank", "semicolon",
                                   "reordered", "TXT", "napari"])
def test_label_file_styles_read_like_the_original(style, tmp_path, chula):
    ref = _reference(tmp_path, chula)
    labels = {}
    for stem in ("1", "12"):
        rows = _chula_lines(chula, stem)
        if style == "header":
            name, text = f"{stem}.txt", "x y class\n" + "\n".join(" ".join(r) for r in rows)
        elif style == "comma":
            name, text = f"{stem}.txt", "\n".join(",".join(r) for r in rows)
        elif style == "tab":
            name, text = f"{stem}.txt", "\n".join("\t".join(r) for r in rows)
        elif style == "csv":
            name, text = f"{stem}.csv", "x,y,class\n" + "\n".join(",".join(r) for r in rows)
        elif style == "crlf_blank":
            name, text = f"{stem}.txt", "\r\n".join(" ".join(r) for r in rows) + "\r\n\r\n\n  \n"
        elif style == "semicolon":
            name, text = f"{stem}.csv", "x;y;class\n" + "\n".join(";".join(r) for r in rows)
        elif style == "reordered":  # a table exported with named columns in another order
            name = f"{stem}.csv"
            text = "label,y,x\n" + "\n".join(f"{r[2]},{r[1]},{r[0]}" for r in rows)
        elif style == "napari":  # napari Points layer saved as CSV: axis-0 = row
            name = f"{stem}.csv"
            text = "index,axis-0,axis-1,class\n" + "\n".join(
                f"{i},{r[1]}.0,{r[0]}.0,{r[2]}" for i, r in enumerate(rows))
        else:
            name, text = f"{stem}.TXT", "\n".join(" ".join(r) for r in rows)
        labels[name] = text
    items = TASK.read_many([_folder(tmp_path, chula, labels)], NO_QC)
    assert len(items) == len(ref)
    assert list(items.table["label"]) == list(ref.table["label"])
    np.testing.assert_array_equal(items.table[["y", "x"]], ref.table[["y", "x"]])


@pytest.mark.parametrize(("name", "text", "error"), [
    ("a.txt", "x y class\n10 20 0\nx y class\n", "line 3"),  # a header only on line 1
    ("a.csv", "foo,bar,baz\n1,2,3\n", "x.*y"),  # a header naming no x/y columns
])
def test_bad_headers_are_one_error(tmp_path, name, text, error):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(InputError, match=error):
        read_points_file(p)


def test_points_outside_the_image_are_dropped_with_a_warning(tmp_path, chula):
    rows = _chula_lines(chula, "1")[:5]
    text = "\n".join(" ".join(r) for r in rows) + "\n5000 100 0\n-300 -40 1\n"
    root = _folder(tmp_path, chula, {"1.txt": text}, stems=("1",))
    with pytest.warns(InputWarning, match="2 point.*outside") as record:
        items = TASK.read_many([root], NO_QC)
    assert any(str(root / "labels" / "1.txt") in str(w.message) for w in record)
    assert len(items) == 5  # points off the 640×480 frame are not cells of it
    assert list(items.table["item_id"]) == [f"1:y{float(y):.1f}x{float(x):.1f}"
                                            for x, y, _ in rows]


def test_only_points_outside_is_one_error(tmp_path, chula):
    root = _folder(tmp_path, chula, {"1.txt": "5000 100 0\n"}, stems=("1",))
    with pytest.warns(InputWarning), pytest.raises(InputError, match="inside"):
        TASK.read_many([root], NO_QC)


def test_image_without_labels_and_labels_without_image(tmp_path, chula):
    root = _folder(tmp_path, chula, {"1.txt": (chula / "labels" / "1.txt").read_text(),
                                     "1 (copy).txt": "10 10 0\n"}, stems=("1", "12"))
    with pytest.warns(InputWarning, match=r"1 \(copy\)"):
        items = TASK.read_many([root], NO_QC)
    assert set(items.table["group"]) == {"1"}  # 12.jpg has no label file: no items, no error


def test_junk_files_in_images_and_labels(tmp_path, chula):
    root = _folder(tmp_path, chula, {"1.txt": (chula / "labels" / "1.txt").read_text(),
                                     "._1.txt": "\x00\x05\x16\x07"}, stems=("1",))
    (root / "images" / "._1.jpg").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    (root / "images" / ".DS_Store").write_bytes(b"junk")
    (root / "images" / "Thumbs.db").write_bytes(b"junk")
    items = TASK.read_many([root], NO_QC)
    assert set(items.table["group"]) == {"1"}


def test_corrupt_frame_is_one_error_naming_it(tmp_path, chula):
    root = _folder(tmp_path, chula, {"1.txt": "10 10 0\n", "12.txt": "10 10 1\n"})
    data = (root / "images" / "12.jpg").read_bytes()
    (root / "images" / "12.jpg").write_bytes(data[:200])
    with pytest.raises(InputError) as err:
        TASK.read_many([root], NO_QC)
    assert str(root / "images" / "12.jpg") in str(err.value)


def test_label_file_name_differs_only_in_letter_case(tmp_path, chula):
    root = _folder(tmp_path, chula, {"img_1.txt": "100 100 0\n200 200 1\n"}, stems=())
    shutil.copy(chula / "images" / "1.jpg", root / "images" / "IMG_1.JPG")
    items = TASK.read_many([root], NO_QC)
    assert len(items) == 2 and set(items.table["group"]) == {"IMG_1"}


def test_cli_train_and_predict_with_csv_labels(tmp_path, chula):
    import pandas as pd
    import torch

    from napari_cellcurator.cli import main

    torch.set_num_threads(1)
    labels = {}
    for stem in ("1", "12"):
        rows = _chula_lines(chula, stem)
        labels[f"{stem}.csv"] = "x,y,class\n" + "\n".join(",".join(r) for r in rows) + "\n\n"
    root = _folder(tmp_path, chula, labels)
    out, pred = tmp_path / "m", tmp_path / "p.csv"
    assert main(["train", "--task", "celltype", "--data", str(root), "--out", str(out),
                 "--arch", "seedcnn", "--epochs", "1", "--batch-size", "16",
                 "--device", "cpu"]) == 0
    assert main(["predict", "--model", str(out), "--data", str(root), "--out", str(pred),
                 "--device", "cpu"]) == 0
    table = pd.read_csv(pred)  # every cell is scored, the ones QC drops in training marked
    assert len(table) == len(TASK.read_many([root], ReadOptions(extra={"qc": False})))
    assert (table["qc_flag"].fillna("") != "").sum() == TASK.read_many([root]).meta["qc"][
        "flagged"]["border"]


def test_deleting_a_line_of_a_label_file_keeps_the_other_cells_ids(tmp_path, chula):
    # ids are the cells' positions: a point removed from (or inserted into) the file must not
    # shift the journal's labels onto the next cells, as line numbers would
    lines = _chula_lines(chula, "1")
    by_class = {}
    for row in lines:
        by_class.setdefault(row[2], []).append(row)
    first, second = list(by_class.values())[:2]
    rows = [r for pair in zip(first[:3], second[:3], strict=True) for r in pair]  # alternating
    full = _folder(tmp_path / "a", chula, {"1.txt": "\n".join(map(" ".join, rows))},
                   stems=("1",))
    edited = _folder(tmp_path / "b", chula, {"1.txt": "\n".join(map(" ".join, rows[1:]))},
                     stems=("1",))
    before = TASK.read_many([full], NO_QC).table.set_index("item_id")["label"]
    after = TASK.read_many([edited], NO_QC).table.set_index("item_id")["label"]
    assert len(after) == 5 and after.index.isin(before.index).all()
    assert (before[after.index] == after).all()


def test_labels_saved_under_the_former_line_number_ids_still_apply(tmp_path, chula):
    # journals of versions before December 2026 keyed point-file cells by line number
    from napari_cellcurator.core.curation import curated_table

    rows = _chula_lines(chula, "1")[:3]
    root = _folder(tmp_path, chula, {"1.txt": "\n".join(map(" ".join, rows))}, stems=("1",))
    table = TASK.read_many([root], NO_QC).table
    journal = pd.DataFrame({"item_id": ["1:1", "1:2", table["item_id"][2]],
                            "label": ["old_label", "older", "newer"],
                            "source": "human"})
    out = curated_table(table, None, journal).set_index("item_id")
    ids = list(table["item_id"])
    assert out.loc[ids[1], "curated"] == "old_label" and out.loc[ids[1], "label_source"] == "human"
    assert out.loc[ids[2], "curated"] == "newer"  # a label under the current id wins


def test_cells_dropped_by_the_quality_filter_are_said(tmp_path, chula):
    # a point at the frame's corner is cut by the border: dropped, with counts and the way out
    rows = _chula_lines(chula, "1")[:3] + [["2", "2", "0"]]
    root = _folder(tmp_path, chula, {"1.txt": "\n".join(map(" ".join, rows))}, stems=("1",))
    with pytest.warns(InputWarning, match=r"quality filter dropped 1 of 4 cells \(border 1"):
        items = TASK.read_many([root])
    assert len(items) == 3


def test_read_option_qc_false_keeps_them_and_stays_with_the_model(tmp_path, chula):
    from napari_cellcurator.cli import main

    lines = _chula_lines(chula, "1")
    two = [r for r in lines if r[2] == lines[0][2]][:3] + [r for r in lines
                                                          if r[2] != lines[0][2]][:2]
    rows = two + [["2", "2", lines[0][2]]]  # the last one at the corner: cut by the border
    root = _folder(tmp_path, chula, {"1.txt": "\n".join(map(" ".join, rows))}, stems=("1",))
    assert main(["train", "--data", str(root), "--out", str(tmp_path / "m"), "--epochs", "1",
                 "--read-option", "qc=false", "--init", "none"]) == 0
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["preprocessing"]["read_options"]["extra"]["qc"] is False
    assert config["metrics"]["n_train"] + config["metrics"]["n_val"] == 6
