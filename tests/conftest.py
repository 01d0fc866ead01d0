"""Shared fixtures: paths to the real shared data (tests skip cleanly where it is absent)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of ``../shared/data`` (skip when the checkout has no shared folder beside it)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def jurkat_subset(shared_data, tmp_path_factory) -> Path:
    """A few real Jurkat cells per class (3 classes) in the folder-of-classes layout."""
    src = shared_data / "celltype" / "jurkat_ifc"
    dst = tmp_path_factory.mktemp("jurkat_subset")
    for cls in ("G1", "G2", "Prophase"):
        (dst / cls).mkdir()
        for f in sorted((src / cls).glob("*.tif"))[:12]:
            shutil.copy(f, dst / cls / f.name)
    return dst


@pytest.fixture(scope="session")
def tiny_celltype_model(jurkat_subset, tmp_path_factory) -> Path:
    """A real (briefly trained) seedcnn model folder on the Jurkat subset, channels 0,2."""
    from napari_cellcurator.core.pipeline import TrainRequest, train

    out = tmp_path_factory.mktemp("tiny_celltype_model")
    train(TrainRequest(task="celltype", data=[str(jurkat_subset)], out=str(out), arch="seedcnn",
                       channels=[0, 2], epochs=1, batch_size=8))
    return out


@pytest.fixture
def bench_module(monkeypatch):
    """Import a script of ``bench/`` by name (bench scripts import each other by plain name)."""
    import importlib

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "bench"))
    return importlib.import_module
