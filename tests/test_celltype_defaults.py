"""Celltype defaults that depend on the data: normalisation and the number of epochs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_cellcurator.core.tasks import ReadOptions, get_task
from napari_cellcurator.core.tasks.base import Hyper
from napari_cellcurator.core.tasks.celltype import default_norm

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data" / "celltype"


def test_eight_bit_colour_crops_are_normalised_per_cell():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(5, 3, 16, 16)).astype(np.float32)
    assert default_norm(rgb) == "cell"
    assert default_norm(rgb * 10) == "dataset"  # 16-bit range: quantitative intensities
    assert default_norm(rgb[:, :2]) == "dataset"  # two channels are not a colour photograph
    assert default_norm(rgb[:, :1]) == "dataset"


@pytest.mark.parametrize(("sample", "channels", "expected"), [
    ("chula_small", None, "cell"),  # RGB smear photographs
    ("jurkat_small", [0, 2], "dataset"),  # 16-bit IFC bright/dark field
    ("jurkat_small", None, "dataset"),  # 16-bit IFC, three channels
])
def test_real_data_gets_its_normalisation(sample, channels, expected):
    task = get_task("celltype")
    options = ReadOptions(channels=channels)
    items = task.read(SAMPLES / sample, options)
    assert task.fit_preprocessing(items, options)["norm"] == expected


def test_a_norm_read_option_overrides_the_default():
    task = get_task("celltype")
    options = ReadOptions(extra={"norm": "dataset"})
    items = task.read(SAMPLES / "chula_small", options)
    assert task.fit_preprocessing(items, options)["norm"] == "dataset"


def test_default_epochs_shrink_on_large_sets_within_bounds():
    hyper = get_task("celltype").hyper
    assert hyper.epochs_for(2_158) == hyper.epochs  # Jurkat
    assert hyper.epochs_for(4_171) == hyper.epochs  # Chula, 150 smears
    assert hyper.epochs_for(17_000) == 10  # 4x Chula: the sample budget caps the epochs
    assert hyper.epochs_for(1_000_000) == hyper.min_epochs
    assert Hyper(epochs=7, sample_budget=10).epochs_for(100) == 7  # never above epochs
    assert Hyper(epochs=30).epochs_for(10**9) == 30  # no budget: epochs as given
