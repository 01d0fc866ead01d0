"""Error versus true proportion (the dCNN paper's Fig. 9) and the evaluate --plot PNGs."""

import json

import numpy as np
import pytest

from napari_cellcurator.cli import main
from napari_cellcurator.core.metrics import proportion_metrics
from napari_cellcurator.core.plots import plot_evaluation


def test_error_by_target_groups_by_true_proportion():
    y = np.array([0, 0, 0.5, 0.5, 1, 1])
    p = np.array([0.1, 0.3, 0.5, 0.7, 0.9, 0.9])
    m = proportion_metrics(y, p)
    by = m["error_by_target"]
    assert set(by) == {"0", "0.5", "1"}
    assert by["0"]["mean_error"] == pytest.approx(0.2)
    assert by["0.5"]["mean_abs_error"] == pytest.approx(0.1)
    assert by["1"]["mean_error"] == pytest.approx(-0.1)
    assert m["A"] == pytest.approx(1 - np.mean(np.abs(y - p)))


@pytest.mark.parametrize("kind", ["mixture", "classification"])
def test_plot_evaluation_writes_a_png(kind, tmp_path):
    if kind == "mixture":
        metrics = proportion_metrics(np.array([0, 0.5, 1]), np.array([0.1, 0.4, 0.8]))
    else:
        metrics = {"confusion": [[3, 1], [0, 4]], "classes": ["a", "b"], "accuracy": 0.875,
                   "macro_f1": 0.87}
    out = plot_evaluation(metrics, tmp_path / "plot.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_evaluate_plot(tiny_celltype_model, jurkat_subset, tmp_path, capsys):
    png = tmp_path / "confusion.png"
    assert main(["evaluate", "--model", str(tiny_celltype_model), "--data", str(jurkat_subset),
                 "--json", "--plot", str(png), "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["n"] == 36
    assert png.stat().st_size > 1000
