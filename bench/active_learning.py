"""Active learning: does "most uncertain first" save corrections over random order? (issue 6)

A simulated annotator on real labels. Per dataset: a fixed stratified held-out test split (30 %),
the rest is the pool whose labels are hidden. Each seed starts from the same small random seed set
of labelled items for every order; every round the current model scores the unlabelled pool, the
product's :func:`napari_cellcurator.core.triage.review_order` ranks it, the annotator labels the
top ``k`` items (a *correction* = one item the annotator labels; we also count how many of them
the model had predicted wrongly), the model is retrained and macro-F1 is measured on the test
split. Orders compared:

- ``uncertainty``: the Curate widget's default, ``"balanced"`` — margin uncertainty (1 − p1 + p2)
  divided by √(labels so far of the predicted class), so uncertain items of rare classes come first;
- ``margin``: plain margin uncertainty (``"uncertain"``), the textbook order, for reference;
- ``random``: a seeded shuffle.

The model, stated exactly (the product's CNN fine-tune takes minutes per retrain on 2 busy CPU
cores, ×rounds×seeds×orders would take hours): a *fixed random-weight CNN* feature extractor
(3 conv layers of 64 zero-mean, unit-norm random 5×5 filters, ReLU, 2× average pooling, seed 0;
each layer's maps — and the input's — pooled over 4 concentric rings plus a global max, so the
features are rotation-invariant; never trained, so it sees no label), standardised over all
items; then a multinomial logistic-regression head (L2 ``WEIGHT_DECAY``, class-balanced loss,
L-BFGS) trained on the labelled items, warm-started from the previous round's head like the
product's one-click fine-tune. The head knows only the classes labelled so far (as the product),
so a class nobody labelled yet scores F1 = 0 on the test split.

Datasets: Jurkat (label-free channels 0, 2; 7 classes, 3 of them rare), Chula RBC-12 (1,800
random expert-labelled cells cropped around their points, 12 classes present) and the 70 Allen
ROIs (cellness: random-CNN features of the footprint patches + 6 trace statistics). Allen is a
smoke check of the cellness path, not evidence: 21 test ROIs make macro-F1 move in steps of
about 0.05, the 49-ROI pool is used up after 10 rounds of 4, and the data README warns that its
labels are not separable by classical features.

Target: 90 % of the macro-F1 the same head reaches with every pool item labelled. Corrections to
reach it are counted beyond the seed set. Every run does ``rounds`` rounds (the plotted curves);
a run that has not reached the target by then goes on until it does, so slow orders are
measured rather than cut off; only a run that uses up the pool without reaching it counts as
the whole pool (then the mean is a lower bound, flagged ``censored``).

    python bench/active_learning.py [--quick] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DATA = (REPO / ".." / "shared" / "data").resolve()
TARGET_FRACTION = 0.9
WEIGHT_DECAY = 1e-2
TEST_FRACTION = 0.3
ORDERS = {"uncertainty": "balanced", "margin": "uncertain", "random": "random"}


# ---- data ------------------------------------------------------------------------------------
def read_jurkat():
    from napari_cellcurator.core.tasks import ReadOptions, get_task

    return get_task("celltype").read_many([DATA / "celltype" / "jurkat_ifc"],
                                          ReadOptions(channels=[0, 2]))


def read_chula(n_cells: int):
    """Crops around Chula RBC-12's expert points (the few-labels benchmark's reader)."""
    sys.path.insert(0, str(BENCH))
    from few_labels import read_chula as _read

    return _read(n_cells)


def read_allen():
    from napari_cellcurator.core.tasks import ReadOptions, get_task

    path = DATA / "cellness" / "allen_croissant" / "train_rois.json"
    return get_task("cellness").read_many([path], ReadOptions())


def stratified_test(labels: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Row positions of a stratified held-out split (at least one item of every class)."""
    rng = np.random.default_rng(seed)
    out = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) > 1:
            out.append(rng.choice(members, max(1, int(round(fraction * len(members)))),
                                  replace=False))
    return np.sort(np.concatenate(out))


# ---- fixed features --------------------------------------------------------------------------
def _ring_pool(h: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) → (N, 5C): mean over 4 concentric rings + global max (rotation-invariant)."""
    size = h.shape[-1]
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    r = ((yy - (size - 1) / 2) ** 2 + (xx - (size - 1) / 2) ** 2).sqrt() / (size / 2)
    outs = []
    for lo, hi in ((0, 0.35), (0.35, 0.6), (0.6, 0.85), (0.85, 2.0)):
        m = ((r >= lo) & (r < hi)).to(h.dtype)
        outs.append((h * m).sum((2, 3)) / m.sum())
    outs.append(h.amax((2, 3)))
    return torch.cat(outs, 1)


def random_cnn_features(images: np.ndarray, filters: int = 64, layers: int = 3,
                        seed: int = 0, batch: int = 512) -> np.ndarray:
    """Standardised features of a fixed random-weight CNN (see the module docstring)."""
    x = torch.from_numpy(np.asarray(images, dtype=np.float32))
    x = (x - x.mean((0, 2, 3), keepdim=True)) / (x.std((0, 2, 3), keepdim=True) + 1e-6)
    gen = torch.Generator().manual_seed(seed)
    weights, cin = [], x.shape[1]
    for _ in range(layers):
        w = torch.randn(filters, cin, 5, 5, generator=gen)
        w = w - w.mean((1, 2, 3), keepdim=True)
        weights.append(w / w.flatten(1).norm(dim=1).view(-1, 1, 1, 1))
        cin = filters
    parts = []
    with torch.inference_mode():
        for start in range(0, len(x), batch):
            h = x[start:start + batch]
            feats = [_ring_pool(h)]
            for w in weights:
                h = torch.relu(torch.nn.functional.conv2d(h, w, padding=2))
                feats.append(_ring_pool(h))
                h = torch.nn.functional.avg_pool2d(h, 2)
            parts.append(torch.cat(feats, 1))
    f = torch.cat(parts).numpy()
    return ((f - f.mean(0)) / (f.std(0) + 1e-6)).astype(np.float32)


def allen_features(items) -> np.ndarray:
    """Allen ROIs: random-CNN features of the footprint patches + trace summary statistics."""
    img = random_cnn_features(items.arrays["image"], filters=16, layers=2)
    tr = np.asarray(items.arrays["trace"], dtype=np.float32).reshape(len(items), -1)
    tr = (tr - tr.mean(1, keepdims=True)) / (tr.std(1, keepdims=True) + 1e-6)
    stats = np.column_stack([np.percentile(tr, [50, 90, 99], axis=1).T, (tr > 2).mean(1),
                             (tr[:, 1:] * tr[:, :-1]).mean(1), (tr ** 3).mean(1)])
    stats = (stats - stats.mean(0)) / (stats.std(0) + 1e-6)
    return np.hstack([img, stats]).astype(np.float32)


# ---- the head --------------------------------------------------------------------------------
class Head:
    """Multinomial logistic regression on fixed features, over the classes labelled so far."""

    def __init__(self, n_features: int, classes: list[str]):
        self.classes = classes
        self.w = torch.zeros(n_features, len(classes))
        self.b = torch.zeros(len(classes))
        self.seen = np.zeros(len(classes), dtype=bool)

    def fit(self, x: torch.Tensor, y: np.ndarray, max_iter: int = 40) -> Head:
        """Retrain on labelled rows (warm start from the current weights)."""
        self.seen[np.unique(y)] = True
        cols = np.flatnonzero(self.seen)
        remap = np.full(len(self.classes), -1)
        remap[cols] = np.arange(len(cols))
        target = torch.as_tensor(remap[y])
        counts = np.bincount(remap[y], minlength=len(cols))
        weight = torch.tensor(len(y) / (len(cols) * np.maximum(counts, 1)), dtype=torch.float32)
        w = self.w[:, cols].clone().requires_grad_(True)
        b = self.b[cols].clone().requires_grad_(True)
        # a short L-BFGS memory: its two-loop recursion is Python overhead per iteration
        opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=10,
                                line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(x @ w + b, target, weight=weight)
            loss = loss + WEIGHT_DECAY * (w ** 2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        self.w[:, cols], self.b[cols] = w.detach(), b.detach()
        return self

    def proba(self, x: torch.Tensor) -> np.ndarray:
        """(N, K) probabilities; classes never labelled get 0."""
        cols = np.flatnonzero(self.seen)
        out = np.zeros((len(x), len(self.classes)))
        with torch.no_grad():
            out[:, cols] = torch.softmax(x @ self.w[:, cols] + self.b[cols], 1).numpy()
        return out


def macro_f1(y_true: np.ndarray, proba: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, proba.argmax(1), average="macro",
                          labels=np.arange(proba.shape[1]), zero_division=0))


# ---- the simulated annotator -----------------------------------------------------------------
def simulate(x: torch.Tensor, y: np.ndarray, classes: list[str], pool: np.ndarray,
             test: np.ndarray, order: str, seed: int, n_seed: int, k: int, rounds: int,
             target: float | None = None) -> dict:
    """One annotator session; returns the per-round curve.

    ``rounds`` rounds at least; with a ``target``, more until macro-F1 reaches it or the pool
    is used up.
    """
    from napari_cellcurator.core.triage import review_order

    labelled = list(np.random.default_rng(1000 + seed).choice(pool, n_seed, replace=False))
    head = Head(x.shape[1], classes).fit(x[labelled], y[labelled])
    curve = {"corrections": [0], "wrong_predictions": [0],
             "macro_f1": [macro_f1(y[test], head.proba(x[test]))]}
    rnd = 0
    while rnd < rounds or (target is not None and max(curve["macro_f1"]) < target):
        rest = np.setdiff1d(pool, labelled)
        if len(rest) == 0:
            break
        proba = head.proba(x[rest])
        table = pd.DataFrame(proba, columns=[f"prob_{c}" for c in classes])
        table.insert(0, "item_id", [str(i) for i in rest])
        counts = pd.Series(np.asarray(classes)[y[labelled]]).value_counts().to_dict()
        pick = review_order(table, mode=order, seed=seed * 1000 + rnd, label_counts=counts)[:k]
        wrong = int((proba[pick].argmax(1) != y[rest[pick]]).sum())
        labelled += list(rest[pick])
        head.fit(x[labelled], y[labelled])
        curve["corrections"].append(curve["corrections"][-1] + len(pick))
        curve["wrong_predictions"].append(curve["wrong_predictions"][-1] + wrong)
        curve["macro_f1"].append(macro_f1(y[test], head.proba(x[test])))
        rnd += 1
    # which classes the annotator was shown (explains what each order spends its labels on)
    shown = np.bincount(y[labelled[n_seed:]], minlength=len(classes))
    curve["reviewed_per_class"] = dict(zip(classes, shown.tolist(), strict=True))
    return curve


def first_reaching(curve: dict, target: float) -> tuple[int | None, int | None]:
    """(corrections, wrong predictions among them) at the first round reaching ``target``."""
    for n, wrong, f1 in zip(curve["corrections"], curve["wrong_predictions"],
                            curve["macro_f1"], strict=True):
        if f1 >= target:
            return n, wrong
    return None, None


def run_dataset(name: str, items, features: np.ndarray, seeds: list[int], n_seed: int, k: int,
                rounds: int) -> dict:
    """Both orders × seeds on one dataset, plus the full-label reference and the target."""
    labels = items.table["label"].astype(str).to_numpy()
    classes = sorted(set(labels))
    y = np.array([classes.index(v) for v in labels])
    test = stratified_test(labels, TEST_FRACTION)
    pool = np.setdiff1d(np.arange(len(y)), test)
    x = torch.from_numpy(features)
    full = Head(x.shape[1], classes).fit(x[pool], y[pool], max_iter=500)
    full_f1 = macro_f1(y[test], full.proba(x[test]))
    target = TARGET_FRACTION * full_f1
    budget = len(pool) - n_seed  # a censored run has labelled the whole pool
    out = {"dataset": name, "n_items": len(y), "n_pool": len(pool), "n_test": len(test),
           "classes": {c: int((y == i).sum()) for i, c in enumerate(classes)},
           "n_features": int(x.shape[1]), "seed_set_size": n_seed, "k": k, "rounds": rounds,
           "seeds": seeds, "full_label_macro_f1": full_f1, "target_macro_f1": target,
           "target_definition": f"{TARGET_FRACTION:.0%} of full_label_macro_f1", "curves": {}}
    for label, mode in ORDERS.items():
        t0 = time.perf_counter()
        curves = [simulate(x, y, classes, pool, test, mode, s, n_seed, k, rounds, target)
                  for s in seeds]
        reached = [first_reaching(c, target) for c in curves]
        needed = [budget if n is None else n for n, _ in reached]
        out["curves"][label] = curves
        out[f"_needed_{label}"] = needed
        out[f"corrections_{label}"] = float(np.mean(needed))
        out[f"corrections_{label}_per_seed"] = [n for n, _ in reached]
        out[f"wrong_predictions_{label}_per_seed"] = [w for _, w in reached]
        out[f"censored_{label}"] = sum(n is None for n, _ in reached)
        # runs that went on past ``rounds`` to reach the target: average the common part
        mean_curve = np.mean([c["macro_f1"][:rounds + 1] for c in curves], axis=0)
        out[f"mean_curve_{label}"] = mean_curve.tolist()
        # the seed-averaged curve is less noisy than each seed's first crossing
        hit = np.flatnonzero(mean_curve >= target)
        out[f"corrections_{label}_mean_curve"] = (
            int(curves[0]["corrections"][hit[0]]) if len(hit) else None)
        out[f"wrong_fraction_of_reviewed_{label}"] = float(
            np.sum([c["wrong_predictions"][-1] for c in curves])
            / max(1, np.sum([c["corrections"][-1] for c in curves])))
        out[f"final_macro_f1_{label}"] = float(mean_curve[-1])
        out[f"reviewed_per_class_{label}"] = {
            c: float(np.mean([cv["reviewed_per_class"][c] for cv in curves])) for c in classes}
        print(f"[{name}] {label:<11} corrections to macro-F1 ≥ {target:.3f}: "
              f"{out[f'corrections_{label}']:.0f} (per seed {out[f'corrections_{label}_per_seed']},"
              f" {time.perf_counter() - t0:.0f}s)", flush=True)
    out["budgets"] = [k * r for r in sorted({1, 2, 5, 10, 20, rounds}) if r <= rounds]
    for label in ORDERS:
        out[f"macro_f1_at_budgets_{label}"] = [out[f"mean_curve_{label}"][b // k]
                                               for b in out["budgets"]]
    ratio = out["corrections_uncertainty"] / max(out["corrections_random"], 1e-9)
    out["ratio_uncertainty_to_random"] = ratio
    out["ratio_margin_to_random"] = out["corrections_margin"] / max(out["corrections_random"],
                                                                    1e-9)
    out["uncertainty_at_most_half_of_random"] = bool(ratio <= 0.5)
    low, high = paired_bootstrap_ratio(out.pop("_needed_uncertainty"), out.pop("_needed_random"))
    out["ratio_uncertainty_to_random_95ci"] = [low, high]
    out.pop("_needed_margin")
    return out


def paired_bootstrap_ratio(needed_a: list[int], needed_b: list[int], n_boot: int = 10_000,
                           seed: int = 0) -> tuple[float, float]:
    """95 % interval of mean(a) / mean(b) over seeds resampled in pairs (each seed starts both
    orders from the same seed set): how far the ratio could move with other seeds."""
    a, b = np.asarray(needed_a, dtype=float), np.asarray(needed_b, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(a), (n_boot, len(a)))
    ratios = a[idx].mean(1) / np.maximum(b[idx].mean(1), 1e-9)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


# ---- report ----------------------------------------------------------------------------------
def plot(results: list[dict], path: Path) -> None:
    """Macro-F1 vs corrections, mean ± std over seeds, both orders, one panel per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        for label, color in (("uncertainty", "tab:red"), ("margin", "tab:orange"),
                             ("random", "tab:blue")):
            curves = res["curves"][label]
            n = min(len(c["macro_f1"]) for c in curves)
            f1 = np.array([c["macro_f1"][:n] for c in curves])
            xs = curves[0]["corrections"][:n]
            ax.plot(xs, f1.mean(0), color=color,
                    label=f"{label} order ({res[f'corrections_{label}']:.0f} to target)")
            ax.fill_between(xs, f1.mean(0) - f1.std(0), f1.mean(0) + f1.std(0), color=color,
                            alpha=0.15)
        ax.axhline(res["target_macro_f1"], color="k", ls="--", lw=1, label="target")
        ax.set_title(f"{res['dataset']} ({len(res['seeds'])} seeds, k={res['k']})")
        ax.set_xlabel("corrections (items labelled beyond the seed set)")
        ax.set_ylabel("test macro-F1")
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def show(res: dict) -> None:
    """Print the figures beside the target."""
    u, r = res["corrections_uncertainty"], res["corrections_random"]
    flag = lambda lab: " (lower bound: not reached by every seed)" if res[f"censored_{lab}"] else ""  # noqa: E731
    ok = "OK" if res["uncertainty_at_most_half_of_random"] else "MISSED"
    print(f"[{res['dataset']}] full-label macro-F1 {res['full_label_macro_f1']:.3f}, "
          f"target {res['target_macro_f1']:.3f}\n"
          f"  corrections, uncertainty order {u:>7.1f}{flag('uncertainty')}  (balanced)\n"
          f"  corrections, margin order      {res['corrections_margin']:>7.1f}"
          f"{flag('margin')}  (plain margin, reference)\n"
          f"  corrections, random order      {r:>7.1f}{flag('random')}\n"
          f"  ratio {u / max(r, 1e-9):.2f} (95 % interval over seeds "
          f"{res['ratio_uncertainty_to_random_95ci'][0]:.2f}–"
          f"{res['ratio_uncertainty_to_random_95ci'][1]:.2f})   target: uncertainty ≤ 0.5 × "
          f"random  [{ok}]\n"
          f"  on the seed-averaged curves: uncertainty {res['corrections_uncertainty_mean_curve']}"
          f", random {res['corrections_random_mean_curve']} (None: not reached)",
          flush=True)
    for label in ORDERS:
        f1s = ", ".join(f"{b}: {f:.3f}" for b, f in zip(res["budgets"],
                                                         res[f"macro_f1_at_budgets_{label}"],
                                                         strict=True))
        print(f"  macro-F1 after n corrections, {label:<11} {f1s}; model wrong on "
              f"{res[f'wrong_fraction_of_reviewed_{label}']:.0%} of reviewed items", flush=True)
        shown = ", ".join(f"{c} {n:.0f}" for c, n in res[f"reviewed_per_class_{label}"].items())
        print(f"  reviewed per class (mean over seeds), {label:<11} {shown}", flush=True)


# ---- main ------------------------------------------------------------------------------------
def configs(quick: bool) -> list[dict]:
    """What each dataset runs: reader, features, seeds, seed-set size, k, rounds."""
    if quick:  # Jurkat only, a smaller random CNN, 2 seeds, 4 rounds
        return [{"name": "jurkat_ch02", "read": read_jurkat, "subset": 900,
                 "features": lambda it: random_cnn_features(it.arrays["image"], 16, 2),
                 "seeds": [0, 1], "n_seed": 20, "k": 20, "rounds": 4}]
    cnn = lambda it: random_cnn_features(it.arrays["image"])  # noqa: E731
    return [
        {"name": "jurkat_ch02", "read": read_jurkat, "features": cnn, "seeds": list(range(10)),
         "n_seed": 20, "k": 20, "rounds": 35},
        {"name": "chula_rbc12", "read": lambda: read_chula(1800), "features": cnn,
         "seeds": list(range(10)), "n_seed": 20, "k": 20, "rounds": 35},
        {"name": "allen_croissant", "read": read_allen, "features": allen_features,
         "seeds": list(range(10)), "n_seed": 6, "k": 4, "rounds": 10},
    ]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: Jurkat subset, 2 seeds")
    p.add_argument("--out", type=Path, default=BENCH / "results", help="results folder")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if not DATA.is_dir():
        print(f"shared data not found at {DATA}", file=sys.stderr)
        return 1
    t_all = time.perf_counter()
    results = []
    for cfg in configs(a.quick):
        t0 = time.perf_counter()
        items = cfg["read"]()
        if cfg.get("subset"):  # a stratified-ish subset: every class keeps its rare items
            keep = np.sort(np.random.default_rng(0).permutation(len(items))[:cfg["subset"]])
            items = items.subset(keep)
        feats = cfg["features"](items)
        t_feat = time.perf_counter() - t0
        print(f"[{cfg['name']}] {len(items)} items, {feats.shape[1]} features in {t_feat:.0f}s",
              flush=True)
        res = run_dataset(cfg["name"], items, feats, cfg["seeds"], cfg["n_seed"], cfg["k"],
                          cfg["rounds"])
        res["seconds_read_and_features"] = t_feat
        res["seconds"] = time.perf_counter() - t0
        show(res)
        results.append(res)
    a.out.mkdir(parents=True, exist_ok=True)
    main_res = results[0]
    payload = {**{k: v for k, v in main_res.items()},
               "quick": a.quick,
               "method": "fixed random-weight CNN features (3×64 random 5×5 filters, ring-pooled) "
                         "+ logistic-regression head retrained (warm start) after every round; "
                         "uncertainty order = the product's 'balanced' review order (margin / "
                         "sqrt(labels of the predicted class)); margin = plain margin; "
                         "see the docstring of bench/active_learning.py",
               "datasets": results, "seconds_total": time.perf_counter() - t_all}
    try:
        import os

        payload["load_average_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    path = a.out / "active_learning.json"
    path.write_text(json.dumps(payload, indent=1, default=float) + "\n")
    plot(results, a.out / "active_learning.png")
    print(f"  -> {path}  total {payload['seconds_total']:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
