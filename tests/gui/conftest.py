"""Fixtures of the napari GUI tests: a fresh copy of real data per test, with a project."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture
def jurkat_copy(jurkat_subset, tmp_path) -> Path:
    """A per-test copy of the real Jurkat subset (its project folder is created beside it)."""
    dst = tmp_path / "jurkat"
    shutil.copytree(jurkat_subset, dst)
    return dst


@pytest.fixture
def loaded(make_napari_viewer, qtbot, jurkat_copy, tiny_celltype_model):
    """A viewer with the Jurkat copy loaded through the Load widget and a current model."""
    from napari_cellcurator._qt.common import open_project

    open_project(jurkat_copy).models.add_folder(tiny_celltype_model)
    return load_jurkat(make_napari_viewer(), qtbot, jurkat_copy)


def load_jurkat(viewer, qtbot, folder: Path):
    """Load ``folder`` (label-free channels) through the Load widget; (viewer, session)."""
    from napari_cellcurator._qt.common import hub_for
    from napari_cellcurator._qt.load_widget import LoadWidget

    load = LoadWidget(viewer)
    viewer.window.add_dock_widget(load)
    load._channels.value = "0,2"
    worker = load.load(folder, "celltype")
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        pass
    qtbot.waitUntil(lambda: hub_for(viewer).session is not None, timeout=10_000)
    return viewer, hub_for(viewer).session


def use_layers(load, qtbot, *layers, timeout: int = 60_000):
    """Load → *Use these layers* on ``layers`` and wait for its worker; the new session."""
    from napari_cellcurator._qt.common import hub_for

    before = hub_for(load._viewer).session
    worker = load.load_layers(*layers)
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=timeout):
        pass
    qtbot.waitUntil(lambda: hub_for(load._viewer).session is not before, timeout=10_000)
    return hub_for(load._viewer).session


def press(layer, key: str) -> None:
    """Call the handler bound to ``key`` on ``layer`` (what napari does on a key press)."""
    from app_model.types import KeyBinding

    layer.keymap[KeyBinding.from_str(key)](layer)
