"""Helpers shared by the cell-type format audits (real Jurkat crops, a one-epoch CLI run)."""

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
