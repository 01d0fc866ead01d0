"""The active-learning benchmark: its simulated annotator and its quick run on real Jurkat data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"


@pytest.fixture
def al(bench_module):
    return bench_module("active_learning")


def _toy(n_per_class: int = 60, seed: int = 0):
    """Three Gaussian classes in 5-D; the third is rare and far from the others."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0, 0, 0], [3, 0, 0, 0, 0], [0, 6, 0, 0, 0]], dtype=np.float32)
    sizes = [n_per_class, n_per_class, n_per_class // 6]
    x = np.concatenate([c + rng.normal(size=(s, 5)) for c, s in zip(centres, sizes,
                                                                     strict=True)])
    y = np.concatenate([np.full(s, i) for i, s in enumerate(sizes)])
    return torch.from_numpy(x.astype(np.float32)), y


def _session(al, order: str, seed: int = 0, **kw) -> dict:
    """One simulated annotator session on the toy data (30 % stratified test split)."""
    x, y = _toy(seed=seed)
    test = al.stratified_test(y.astype(str), 0.3)
    pool = np.setdiff1d(np.arange(len(y)), test)
    kw = {"seed": 0, "n_seed": 4, "k": 5, **kw}
    return al.simulate(x, y, ["a", "b", "c"], pool, test, order, **kw), len(pool)


def test_head_learns_only_labelled_classes(al):
    x, y = _toy()
    seen = np.flatnonzero(y < 2)
    head = al.Head(x.shape[1], ["a", "b", "c"]).fit(x[seen], y[seen])
    proba = head.proba(x)
    assert np.allclose(proba.sum(1), 1) and np.all(proba[:, 2] == 0)
    assert (proba[seen].argmax(1) == y[seen]).mean() > 0.9
    # macro-F1 counts every class of the task: the never-labelled one scores 0
    assert al.macro_f1(y, proba) < 0.7
    head.fit(x, y)  # warm start, now with the third class
    assert al.macro_f1(y, head.proba(x)) > 0.9


def test_simulate_counts_corrections_and_wrong_predictions(al):
    curve, _ = _session(al, "uncertain", rounds=6)
    assert curve["corrections"] == [0, 5, 10, 15, 20, 25, 30]
    wrong = np.diff(curve["wrong_predictions"])
    assert np.all(wrong >= 0) and np.all(wrong <= 5)
    assert curve["macro_f1"][-1] > 0.8
    n, w = al.first_reaching(curve, curve["macro_f1"][-1])
    assert n is not None and n <= 30 and w <= n
    assert al.first_reaching(curve, 1.01) == (None, None)


def test_simulate_goes_on_until_the_target_or_the_pool_ends(al):
    first, _ = _session(al, "random", rounds=1)
    target = 0.9
    assert first["macro_f1"][-1] < target  # one round is not enough ...
    curve, _ = _session(al, "random", rounds=1, target=target)
    assert curve["macro_f1"][:2] == first["macro_f1"]  # ... so the same run goes on
    assert curve["macro_f1"][-1] >= target and max(curve["macro_f1"][:-1]) < target
    never, n_pool = _session(al, "random", rounds=1, target=1.01, k=50)
    assert never["corrections"][-1] == n_pool - 4  # stops when the pool is used up


def test_balanced_order_reaches_the_rare_class(al):
    """The product's default order finds the rare, far class and learns it (toy data)."""
    curve, _ = _session(al, "balanced", seed=1, n_seed=6, k=4, rounds=8)
    assert curve["reviewed_per_class"]["c"] >= 1
    assert curve["macro_f1"][-1] > 0.8


def test_stratified_test_keeps_every_class(al):
    labels = np.array(["a"] * 50 + ["b"] * 10 + ["c"] * 2)
    test = al.stratified_test(labels, 0.3)
    assert set(labels[test]) == {"a", "b", "c"} and len(test) == 15 + 3 + 1


@pytest.mark.slow  # ~20 s of wall time on an idle 2-core machine, ~50 s when it is busy
def test_quick_run_writes_results(shared_data, tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH / "active_learning.py"), "--quick",
                           "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=300, cwd=str(REPO))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    res = json.loads((tmp_path / "active_learning.json").read_text())
    for key in ("dataset", "target_macro_f1", "corrections_uncertainty", "corrections_random",
                "seeds", "k", "rounds", "curves", "datasets", "full_label_macro_f1"):
        assert key in res, key
    assert res["dataset"] == "jurkat_ch02" and res["quick"] is True
    assert 0 < res["target_macro_f1"] < res["full_label_macro_f1"] <= 1
    for order in ("uncertainty", "margin", "random"):
        curves = res["curves"][order]
        assert len(curves) == len(res["seeds"])
        for c in curves:  # runs that miss the target go on past the plotted rounds
            assert len(c["macro_f1"]) >= res["rounds"] + 1
            assert c["corrections"][-1] >= res["rounds"] * res["k"]
            assert len(c["corrections"]) == len(c["macro_f1"])
        assert 0 <= res[f"corrections_{order}"] <= res["n_pool"] - res["seed_set_size"]
    low, high = res["ratio_uncertainty_to_random_95ci"]
    assert low <= res["ratio_uncertainty_to_random"] <= high
    assert (tmp_path / "active_learning.png").stat().st_size > 1000


def test_paired_bootstrap_interval_of_the_ratio(al):
    assert al.paired_bootstrap_ratio([100, 200, 300], [200, 400, 600]) == (0.5, 0.5)
    uncertainty, random = [160, 340, 200, 520, 240], [500, 380, 620, 760, 400]
    low, high = al.paired_bootstrap_ratio(uncertainty, random)
    assert low < np.mean(uncertainty) / np.mean(random) < high
    assert min(u / r for u, r in zip(uncertainty, random, strict=True)) <= low
    assert high <= max(u / r for u, r in zip(uncertainty, random, strict=True))
