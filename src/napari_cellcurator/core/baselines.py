"""CNN vs kNN / SVM-RBF baselines and the data-volume curve (seed paper, Fig. "data volume").

Every method sees the same hash split as ``cellcurator train`` (groups kept on one side).
Baselines run on (a) flattened normalised pixels, reduced by PCA for speed on small CPUs,
and (b) the CNN's penultimate-layer features, taken from the CNN trained on the same
training fraction (never on more labels than the baseline sees).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from napari_cellcurator.core.device import seed_everything
from napari_cellcurator.core.embedding import extract_features
from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.metrics import classification_metrics

PIXEL_PCA = 100  # components kept of the flattened pixels (SVM/kNN cost on 2 cores)


def _inputs(task, items, prep) -> np.ndarray:
    from napari_cellcurator.core.training import iterate_batches

    rng = np.random.default_rng(0)
    parts = [task.make_batch(items, idx, prep, augment=False, rng=rng)
             for idx in iterate_batches(len(items), 512)]
    key = task.input_keys[0]
    return np.concatenate([p[key].reshape(len(p[key]), -1).numpy() for p in parts])


def stratified_fraction(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Row positions of ``fraction`` of each class (at least one per class), sorted."""
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        n = max(1, int(round(fraction * len(idx))))
        keep.append(rng.permutation(idx)[:n])
    return np.sort(np.concatenate(keep))


def _classical(x_tr, y_tr, x_va, y_va, classes, reduce: bool) -> dict:
    from sklearn.decomposition import PCA
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    steps = [StandardScaler()]
    if reduce and x_tr.shape[1] > PIXEL_PCA and len(x_tr) > PIXEL_PCA:
        steps.append(PCA(n_components=PIXEL_PCA, random_state=0))
    out = {}
    k = int(min(5, len(x_tr)))
    models = {"knn": KNeighborsClassifier(n_neighbors=k, weights="distance"),
              "svm": SVC(kernel="rbf", C=10.0, gamma="scale", class_weight="balanced")}
    for name, clf in models.items():
        if name == "svm" and len(np.unique(y_tr)) < 2:
            continue
        pipe = make_pipeline(*steps, clf).fit(x_tr, y_tr)
        out[name] = classification_metrics(y_va, pipe.predict(x_va), classes)
    return out


def _summary(m: dict) -> dict:
    return {k: m[k] for k in ("accuracy", "macro_f1", "balanced_accuracy") if k in m}


def compare(task_name: str, data: list[str], channels: list[int] | None = None,
            out_dir: str | None = None, fractions=(0.1, 0.25, 0.5, 1.0), seed: int = 0,
            epochs: int | None = None) -> dict:
    """CNN, kNN and SVM-RBF (pixels and CNN features) on one split, per training fraction.

    Parameters
    ----------
    epochs
        CNN epochs at the full training set; default a third of the task's (at least 3).
        A fraction f trains for ``min(3 * epochs, epochs / f)`` epochs (about the same number
        of steps), so the whole comparison costs a few training runs.

    Returns
    -------
    dict
        ``{"task", "n_train", "n_val", "classes", "epochs", "curve": [{"fraction",
        "n_train", "epochs", "cnn", "knn_pixels", "svm_pixels", "knn_cnn", "svm_cnn"}...],
        "full": per-method full metrics at the largest fraction, "files": [...]}``.
    """
    from napari_cellcurator.core.models.registry import build_model
    from napari_cellcurator.core.pipeline import TrainRequest, _jsonable, prepare_training
    from napari_cellcurator.core.store.modelio import ModelConfig
    from napari_cellcurator.core.tasks import get_task
    from napari_cellcurator.core.training import TrainConfig, TrainingDone, fit

    if get_task(task_name).kind != "classification":
        raise InputError(", ".join(map(str, data)), f"the {task_name} task predicts a "
                         "proportion; compare runs kNN / SVM classifiers",
                         "celltype or cellness data (mixture's baseline, Gabor + SVR, is "
                         "in docs/mixture.md)")
    seed_everything(seed)
    req = TrainRequest(task=task_name, data=list(map(str, data)), channels=channels, seed=seed)
    task, arch, classes, prep, spec, _, train, val, _ = prepare_training(req)
    hyper = task.hyper
    n_epochs = epochs or max(3, hyper.epochs // 3)
    y_tr_all, y_va = task.targets(train.table, classes), task.targets(val.table, classes)
    x_pix_tr, x_pix_va = _inputs(task, train, prep), _inputs(task, val, prep)
    config = ModelConfig(task=task.name, arch=arch, model_spec=spec, classes=classes,
                         preprocessing=prep)
    curve, full = [], {}
    for frac in sorted(fractions):
        t0 = time.perf_counter()
        idx = stratified_fraction(y_tr_all, frac, seed) if frac < 1 else np.arange(len(train))
        sub, y_sub = train.subset(idx), y_tr_all[idx]
        seed_everything(seed)
        model = build_model(arch, **spec)
        # smaller fractions get more epochs (up to 3×) so the CNN is not judged on fewer
        # optimisation steps rather than on fewer labels
        frac_epochs = int(min(3 * n_epochs, np.ceil(n_epochs / max(frac, 1e-6))))
        # the last epoch, not the best on ``val``: val is the set reported here, and the
        # kNN / SVM get no selection on it either
        cfg = TrainConfig(epochs=frac_epochs, batch_size=hyper.batch_size, lr=hyper.lr,
                          weight_decay=hyper.weight_decay, balance=hyper.balance, seed=seed,
                          ema_epochs=hyper.ema_epochs, keep="last")
        done = [u for u in fit(task, model, sub, val, prep, classes, cfg, arch)
                if isinstance(u, TrainingDone)]
        if not done:
            raise RuntimeError(f"CNN training failed at fraction {frac}")
        res = {"cnn": done[0].val_metrics}
        pix = _classical(x_pix_tr[idx], y_sub, x_pix_va, y_va, classes, reduce=True)
        f_tr = extract_features(done[0].model, config, sub)
        f_va = extract_features(done[0].model, config, val)
        feat = _classical(f_tr, y_sub, f_va, y_va, classes, reduce=False)
        res.update({f"{k}_pixels": v for k, v in pix.items()})
        res.update({f"{k}_cnn": v for k, v in feat.items()})
        curve.append({"fraction": float(frac), "n_train": int(len(idx)), "epochs": frac_epochs,
                      "seconds": round(time.perf_counter() - t0, 1),
                      **{k: _summary(v) for k, v in res.items()}})
        full = res
    result = _jsonable({"task": task.name, "arch": arch, "data": list(map(str, data)),
                        "channels": channels, "n_train": len(train), "n_val": len(val),
                        "classes": classes, "epochs": int(n_epochs), "seed": seed,
                        "pixel_pca_components": PIXEL_PCA, "curve": curve, "full": full})
    if out_dir:
        result["files"] = _write(result, Path(out_dir))
    return result


def _write(result: dict, out: Path) -> list[str]:
    # Figure + Agg canvas, not pyplot: never switches the backend of a running napari
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from napari_cellcurator.core.store.atomic import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "compare.json"
    atomic_write_text(json_path, json.dumps(result, indent=2))
    fig = Figure(figsize=(9, 3.5))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    methods = [k for k in result["curve"][0] if isinstance(result["curve"][0][k], dict)]
    for ax, metric in zip(axes, ("macro_f1", "accuracy"), strict=True):
        for m in methods:
            xs = [p["n_train"] for p in result["curve"] if m in p]
            ax.plot(xs, [p[m][metric] for p in result["curve"] if m in p], "o-", label=m)
        ax.set_xscale("log")
        ticks = [p["n_train"] for p in result["curve"]]
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("training items")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{result['task']}: CNN vs kNN / SVM (validation, same split)", fontsize=9)
    fig.tight_layout()
    png = out / "compare.png"
    fig.savefig(png, dpi=100)
    return [str(json_path), str(png)]
