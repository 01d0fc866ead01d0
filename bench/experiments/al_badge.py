"""Experiment: BADGE-style review batches (Ash et al. 2020) in the active-learning benchmark.

Same protocol, data, features, seed sets and head as ``bench/active_learning.py``; only the
picking of each round's ``k`` items changes: k-means++ seeding over the *gradient embeddings*
``(p - onehot(argmax p)) ⊗ x`` of the unlabelled pool (uncertain = long embedding; diverse =
far from the items already picked this round). ``badge_balanced`` divides each item's
embedding by √(labels so far of its predicted class), the product's rare-class weighting.

    python bench/experiments/al_badge.py [jurkat|chula] [--orders badge,badge_balanced]

Prints corrections to the target per seed and the ratio to the random order of the main
benchmark's JSON (same seeds, seed sets and random order).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))
import active_learning as al  # noqa: E402


def badge_pick(proba: np.ndarray, x: np.ndarray, k: int, rng: np.random.Generator,
               class_weight: np.ndarray | None = None) -> np.ndarray:
    """k row positions by k-means++ seeding over gradient embeddings."""
    pred = proba.argmax(1)
    a = proba.copy()
    a[np.arange(len(a)), pred] -= 1.0  # dLoss/dlogits with the predicted label
    if class_weight is not None:
        a *= class_weight[pred][:, None]
    # squared distances via Gram matrices: ||a_i⊗x_i - a_j⊗x_j||² without forming C·D dims
    ax = (a * a).sum(1) * (x * x).sum(1)
    first = int(np.argmax(ax))  # the longest embedding (BADGE starts there)
    chosen = [first]
    d2 = ax + ax[first] - 2 * (a @ a[first]) * (x @ x[first])
    d2 = np.maximum(d2, 0)
    while len(chosen) < min(k, len(a)):
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(len(d2), 1 / len(d2))
        nxt = int(rng.choice(len(a), p=p))
        chosen.append(nxt)
        d_new = np.maximum(ax + ax[nxt] - 2 * (a @ a[nxt]) * (x @ x[nxt]), 0)
        d2 = np.minimum(d2, d_new)
        d2[chosen] = 0
    return np.array(chosen)


def simulate(x, y, classes, pool, test, order, seed, n_seed, k, rounds, target):
    """``active_learning.simulate`` with a BADGE picker."""
    labelled = list(np.random.default_rng(1000 + seed).choice(pool, n_seed, replace=False))
    head = al.Head(x.shape[1], classes).fit(x[labelled], y[labelled])
    xn = x.numpy().astype(np.float64)
    rng = np.random.default_rng(seed)
    curve = {"corrections": [0], "macro_f1": [al.macro_f1(y[test], head.proba(x[test]))]}
    rnd = 0
    while rnd < rounds or max(curve["macro_f1"]) < target:
        rest = np.setdiff1d(pool, labelled)
        if len(rest) == 0:
            break
        proba = head.proba(x[rest])
        weight = None
        if order == "badge_balanced":
            counts = np.bincount(y[labelled], minlength=len(classes))
            weight = 1 / np.sqrt(np.maximum(counts, 1))
        pick = badge_pick(proba, xn[rest], k, rng, weight)
        labelled += list(rest[pick])
        head.fit(x[labelled], y[labelled])
        curve["corrections"].append(curve["corrections"][-1] + len(pick))
        curve["macro_f1"].append(al.macro_f1(y[test], head.proba(x[test])))
        rnd += 1
    return curve


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("dataset", choices=["jurkat", "chula"])
    p.add_argument("--orders", default="badge,badge_balanced")
    a = p.parse_args()
    torch.set_num_threads(1)
    cfg = al.configs(False)[0 if a.dataset == "jurkat" else 1]
    items = cfg["read"]()
    feats = cfg["features"](items)
    labels = items.table["label"].astype(str).to_numpy()
    classes = sorted(set(labels))
    y = np.array([classes.index(v) for v in labels])
    test = al.stratified_test(labels, al.TEST_FRACTION)
    pool = np.setdiff1d(np.arange(len(y)), test)
    x = torch.from_numpy(feats)
    full = al.Head(x.shape[1], classes).fit(x[pool], y[pool], max_iter=500)
    target = al.TARGET_FRACTION * al.macro_f1(y[test], full.proba(x[test]))
    ref = json.loads((BENCH / "results" / "active_learning.json").read_text())
    ref = next(d for d in ref["datasets"] if d["dataset"] == cfg["name"])
    print(f"{cfg['name']}: target {target:.4f} (JSON {ref['target_macro_f1']:.4f}); "
          f"random {ref['corrections_random']:.0f}, balanced {ref['corrections_uncertainty']:.0f}")
    for order in a.orders.split(","):
        needed = []
        for s in cfg["seeds"]:
            c = simulate(x, y, classes, pool, test, order, s, cfg["n_seed"], cfg["k"],
                         cfg["rounds"], target)
            n, _ = al.first_reaching({**c, "wrong_predictions": c["corrections"]}, target)
            needed.append(n)
        mean = float(np.mean(needed))
        print(f"  {order:<15} {mean:.0f} per seed {needed} ratio to random "
              f"{mean / ref['corrections_random']:.2f}", flush=True)


if __name__ == "__main__":
    main()
