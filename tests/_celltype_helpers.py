"""Helpers shared by the cell-type format audits (real Jurkat crops, real Chula frames in
other annotation formats, a one-epoch CLI run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile


def cli_train_tiny(data, out: Path) -> int:
    """``cellcurator train`` of a small seed CNN for one epoch (a smoke run of a layout)."""
    from napari_cellcurator.cli import main

    return main(["train", "--task", "celltype", "--data", str(data), "--out", str(out),
                 "--arch", "seedcnn", "--epochs", "1", "--batch-size", "8", "--device", "cpu"])


def jurkat_cells(shared_data: Path, cls: str, n: int) -> list[np.ndarray]:
    """The first ``n`` real Jurkat cells of class ``cls``, (3, 40, 40) each."""
    files = sorted((shared_data / "celltype" / "jurkat_ifc" / cls).glob("*.tif"))[:n]
    return [tifffile.imread(f) for f in files]


def chula_subset_at(chula: Path, dst: Path, stems=("1", "12", "103")) -> Path:
    """Three real Chula smear frames in the images/ + labels/ layout at ``dst``."""
    import shutil

    (dst / "images").mkdir(parents=True)
    (dst / "labels").mkdir()
    for stem in stems:
        shutil.copy(chula / "images" / f"{stem}.jpg", dst / "images")
        shutil.copy(chula / "labels" / f"{stem}.txt", dst / "labels")
    return dst


def expert_points(chula_subset) -> dict[str, list[tuple[int, int, int]]]:
    """``{frame stem: [(x, y, class)...]}`` of the Chula subset's point files."""
    return {txt.stem: [tuple(int(v) for v in line.split())
                       for line in txt.read_text().split("\n") if line.strip()]
            for txt in sorted((chula_subset / "labels").glob("*.txt"))}


def reads_as_the_points(chula_subset: Path, folder: Path) -> None:
    """``folder`` (the Chula subset in another annotation format) is found as celltype data
    and gives the same cells, labels and crops as the subset's point files."""
    from napari_cellcurator._reader import detect_task
    from napari_cellcurator.core.tasks import ReadOptions, get_task

    ours = get_task("celltype").read(chula_subset, ReadOptions(extra={"qc": False}))
    theirs = get_task("celltype").read(folder, ReadOptions(extra={"qc": False}))
    assert detect_task(folder) == "celltype"
    assert list(theirs.table["item_id"]) == list(ours.table["item_id"])
    assert list(theirs.table["label"]) == list(ours.table["label"])
    np.testing.assert_array_equal(theirs.arrays["image"], ours.arrays["image"])
