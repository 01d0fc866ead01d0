"""Smoke tests of the benchmarks: every ``bench/*.py`` runs its smallest configuration.

Timings are never asserted (they depend on the machine); the tests check that each benchmark
runs end to end and writes the figures it promises.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"


def _run(name: str, out: Path, timeout: int = 600, result: str | None = None) -> dict:
    """``python bench/<name>.py --quick --out <out>``; returns the JSON it wrote."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), "--quick", "--out",
                           str(out)], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=str(REPO))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads((out / f"{result or name}.json").read_text())


@pytest.fixture
def bench_modules(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))


def test_machine_facts_and_gpu_skip(tmp_path):
    machine = _run("common", tmp_path, result="machine")["machine"]
    assert machine["logical_cores"] >= 1 and machine["torch_version"]
    gpu = _run("gpu", tmp_path)
    import torch

    if not torch.cuda.is_available():
        assert gpu["skipped"] == "no CUDA device"
    else:
        assert gpu["tasks"]


def test_gap_stats_and_subset_quota(bench_modules, shared_data, tmp_path):
    import gui

    stats = gui.gap_stats(np.array([10.0, 12.0, 150.0, 9.0]))
    assert stats["max_gap_ms"] == 150.0 and stats["gaps_over_100ms"] == 1 and stats["ticks"] == 5
    data = gui.jurkat_subset(tmp_path / "j", 40)
    counts = {d.name: len(list(d.glob("*.tif"))) for d in data.iterdir()}
    assert sum(counts.values()) == 40 and len(counts) == 7 and min(counts.values()) >= 5


def test_zarr_store_chunks_are_batches(bench_modules, tmp_path):
    import cases
    import zarr

    arrays = {"image": np.arange(10 * 2 * 4 * 4, dtype=np.uint16).reshape(10, 2, 4, 4)}
    cases.write_zarr_store(tmp_path / "s.zarr", arrays, chunk=4)
    z = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")["image"]
    assert z.chunks == (4, 2, 4, 4)
    np.testing.assert_array_equal(z[:], arrays["image"])


@pytest.mark.slow
def test_inference_quick(tmp_path):
    res = _run("inference", tmp_path)
    assert res["matmul_peak_gflops"] > 0
    ran = {k: v for k, v in res["tasks"].items() if "skipped" not in v}
    assert "celltype" in ran
    for r in ran.values():
        assert r["end_to_end_items_per_s"] > 0 and r["forward_only_items_per_s"] > 0
        assert r["ratio"] > 0 and r["achieved_gflops"] > 0
        # the end-to-end scores are the forward pass's scores
        assert r["end_to_end_max_abs_diff_vs_forward"] < 1e-4


@pytest.mark.slow
def test_memory_quick(tmp_path):
    res = _run("memory", tmp_path)
    assert res["crops"]["n_items"] == 20_000
    assert 0 < res["peak_rss_mb_crops"] < 4000
    assert res["candidates"]["n_candidates"] > 0 and res["peak_rss_mb_candidates"] > 0


def test_baselines_quick(shared_data, tmp_path):
    res = _run("baselines", tmp_path)["jurkat_label_free"]
    assert [p["fraction"] for p in res["curve"]] == [0.5, 1.0]
    for method in ("cnn", "knn_pixels", "svm_pixels", "knn_cnn", "svm_cnn"):
        assert 0 <= res["full"][method]["accuracy"] <= 1, method
    assert (tmp_path / "baselines_jurkat_label_free.png").stat().st_size > 1000


@pytest.mark.slow
@pytest.mark.gui
def test_gui_benchmarks_quick(shared_data, tmp_path):
    res = _run("responsiveness", tmp_path)
    assert res["predict"]["ticks"] > 2 and res["train"]["ticks"] > 2
    assert res["max_gap_ms_predict"] > 0 and res["train"]["outcome"] == "trained"
    res = _run("retrain", tmp_path)
    assert res["outcome"] == "trained" and res["n_labels"] == 60
    assert res["seconds_click_to_rescored"] > 0
    res = _run("item_table", tmp_path)
    assert [r["items"] for r in res["rows"]] == [2_000, 10_000]
    assert all(r["item_table_fill_ms"] > 0 and r["qtablewidget_fill_ms"] > 0
               for r in res["rows"])
    res = _run("triage", tmp_path)
    assert [(r["items"], r["cluster_labelled"]) for r in res["rows"]] == [
        (2_000, False), (2_000, True)]
    assert all(r["row_refresh_without_draw_ms"] > 0 and r["journal_events"] > 1_000
               for r in res["rows"])
