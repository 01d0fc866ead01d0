"""The cell-type report script (bench/celltype_report.py): merged balanced accuracy, smoke run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"


@pytest.fixture
def report_module(bench_module):
    return bench_module("celltype_report")


def test_merging_interphase_counts_g1_s_g2_confusions_as_correct(report_module):
    classes = ["G1", "S_phase", "G2", "Prophase"]
    confusion = [[6, 3, 1, 0],   # G1: 6 right, 4 confused within interphase
                 [2, 5, 3, 0],
                 [0, 0, 8, 2],   # G2: 2 called prophase (a real error after merging)
                 [0, 0, 1, 3]]
    merged = report_module.merged_balanced_accuracy(confusion, classes,
                                                    report_module.INTERPHASE)
    # interphase recall (30 - 2) / 30, prophase 3 / 4
    assert merged == pytest.approx(((28 / 30) + 0.75) / 2)


def test_classes_absent_from_the_truth_do_not_count(report_module):
    confusion = [[4, 0, 0], [1, 3, 0], [0, 0, 0]]
    merged = report_module.merged_balanced_accuracy(confusion, ["G1", "G2", "Telophase"],
                                                    ("G1", "G2"))
    assert merged == pytest.approx(1.0)


@pytest.mark.slow
def test_quick_report_writes_every_figure(tmp_path):
    data = REPO / ".." / "shared" / "data" / "celltype"
    if not (data / "jurkat_ifc").is_dir() or not (data / "chula_rbc12").is_dir():
        pytest.skip("shared cell-type data not available")
    proc = subprocess.run([sys.executable, str(BENCH / "celltype_report.py"), "--quick",
                           "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=900, cwd=str(REPO))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    res = json.loads((tmp_path / "celltype_report.json").read_text())
    lf = res["jurkat_label_free"]
    assert lf["channels"] == [0, 2] and res["jurkat_all_channels"]["channels"] == [0, 1, 2]
    assert set(lf["per_class_recall"]) >= {"G1", "G2", "S_phase", "Prophase"}
    assert 0 <= lf["balanced_accuracy_5_class"] <= 1
    chula = res["chula_rbc12"]
    assert chula["n_val"] > 0 and 0 <= chula["macro_f1"] <= 1
    # the figures without an epoch chosen on the reported cells, and macro-F1 over the
    # classes these cells have
    assert 0 <= chula["last_epoch_accuracy"] <= 1 and 0 <= lf["last_epoch_macro_f1"] <= 1
    assert chula["macro_f1_classes_present"] >= chula["macro_f1"]
    assert "balanced_accuracy_5_class" not in chula
