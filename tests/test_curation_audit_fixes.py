"""Imported labels count as a person's in the review order; Parquet keeps a mixture's
curated proportions as numbers and ids as text."""

from __future__ import annotations

import pandas as pd

from napari_cellcurator.core.curation import curated_table, export_table
from napari_cellcurator.core.triage import human_labels, merge_labels


def test_labels_imported_from_an_earlier_project_are_a_persons():
    table = pd.DataFrame({"item_id": ["a", "b", "c"], "label": [None, None, None]})
    journal = pd.DataFrame({"item_id": ["a", "b", "c"], "label": ["x", "y", "x"],
                            "source": ["import", "human", "cluster"]})
    labelled, counts = human_labels(merge_labels(table, journal))
    assert labelled == {"a", "b"} and counts == {"x": 1, "y": 1}


def test_parquet_keeps_proportions_numbers_and_ids_text(tmp_path):
    items = pd.DataFrame({"item_id": ["007", "008"], "label": [None, None]})
    journal = pd.DataFrame({"item_id": ["007"], "label": ["0.25"], "source": ["human"]})
    preds = pd.DataFrame({"item_id": ["007", "008"], "proportion": [0.5, 0.75]})
    table = curated_table(items, preds, journal, proportions=True)
    back = pd.read_parquet(export_table(table, tmp_path / "c.parquet"))
    assert back["curated"].dtype.kind == "f" and list(back["curated"]) == [0.25, 0.75]
    assert list(back["item_id"]) == ["007", "008"]


def test_macro_f1_counts_predicted_classes_absent_from_the_truth():
    from sklearn.metrics import f1_score

    from napari_cellcurator.core.metrics import classification_metrics

    y_true = [0, 0, 1, 1, 1, 0]
    y_pred = [0, 2, 1, 1, 3, 0]  # classes 2 and 3 are predicted but not in this subset
    got = classification_metrics(y_true, y_pred, ["a", "b", "c", "d"])
    assert got["macro_f1"] == f1_score(y_true, y_pred, average="macro")
    assert got["balanced_accuracy"] == (2 / 3 + 2 / 3) / 2  # recall over the true classes


def test_yolo_class_names_are_utf8_without_a_byte_order_mark(tmp_path, monkeypatch):
    import locale

    from napari_cellcurator.core.io.yolo import yolo_class_names

    (tmp_path / "classes.txt").write_bytes("\ufeffZelle 5 µm\r\nnot cell\r\n".encode())
    monkeypatch.setattr(locale, "getpreferredencoding", lambda *a: "cp1252")  # Windows
    assert yolo_class_names(tmp_path) == {"0": "Zelle 5 µm", "1": "not cell"}


def test_relative_paths_written_on_windows_are_found_elsewhere(tmp_path):
    from pathlib import Path

    from napari_cellcurator.core.io.names import table_path

    table = tmp_path / "crops.csv"
    assert table_path(r"imgs\c1.png ", table) == tmp_path / "imgs" / "c1.png"
    assert table_path("imgs/c1.png", table) == tmp_path / "imgs" / "c1.png"
    assert table_path("/abs/c1.png", table) == Path("/abs/c1.png")


def test_cli_output_never_fails_on_a_narrow_console_encoding(monkeypatch, capsys):
    import io
    import sys

    from napari_cellcurator import cli

    narrow = io.TextIOWrapper(io.BytesIO(), encoding="cp1252")  # Windows, redirected
    monkeypatch.setattr(sys, "stdout", narrow)
    cli._tolerant_stdout()
    print("wrote Ζελλε ≥ 細胞.csv")
    narrow.flush()
    assert narrow.buffer.getvalue().startswith(b"wrote \\u0396")


def test_an_output_naming_the_input_file_otherwise_is_refused(tmp_path):
    """Another name of the same file (a hard link here; on macOS and Windows the same name
    in other letter case) is still the input."""
    import os

    import pytest

    from napari_cellcurator.core.errors import InputError
    from napari_cellcurator.core.store.atomic import check_not_input

    table = tmp_path / "Cells.csv"
    table.write_text("item_id\n")
    alias = tmp_path / "cells.csv"
    os.link(table, alias)
    with pytest.raises(InputError, match="is an input"):
        check_not_input(alias, [table])
    check_not_input(tmp_path / "other.csv", [table])


def test_class_folder_names_are_composed_unicode(tmp_path):
    import numpy as np
    import tifffile

    from napari_cellcurator.core.tasks import ReadOptions, get_task

    for name in ("agre\u0301ge\u0301e", "normal"):  # decomposed, as macOS may keep it
        (tmp_path / name).mkdir()
        for k in range(2):
            tifffile.imwrite(tmp_path / name / f"c{k}.tif", np.full((16, 16), k + 1, np.uint8))
    labels = set(get_task("celltype").read(tmp_path, ReadOptions()).table["label"])
    assert labels == {"agrégée", "normal"}


def test_embedding_of_no_items_is_empty():
    import numpy as np

    from napari_cellcurator.core.embedding import embed_2d

    for method in ("pca", "tsne"):
        assert embed_2d(np.zeros((0, 16)), method).shape == (0, 2)
