"""napari reader: which task a dropped file or folder belongs to (path sniffing only)."""

from __future__ import annotations

import shutil

import pytest

from napari_cellcurator._reader import detect_task


def test_split_folders_of_class_folders_are_celltype(jurkat_subset, tmp_path):
    for split in ("train", "test"):
        shutil.copytree(jurkat_subset, tmp_path / "data" / split)
    assert detect_task(tmp_path / "data") == "celltype"


@pytest.mark.parametrize(("header", "task"), [
    ("path,proportion,split", "mixture"),
    ("filename,label", "celltype"),
    ("Image File;Cell Type", "celltype"),
    ("file\tclass\tpatient", "celltype"),
    ("item_id,label,probability", None),  # our own export: left to napari
    ("x,y,z", None),
])
def test_tables_by_header(tmp_path, header, task):
    path = tmp_path / "table.csv"
    path.write_text(header + "\n")
    assert detect_task(path) == task
