"""Metrics shared by the tasks (plain numpy/scikit-learn, JSON-ready)."""

from __future__ import annotations

import numpy as np


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, macro-F1, balanced accuracy, per-class precision/recall/F1/support, confusion.

    ``y_true``/``y_pred`` are class indices into ``classes``.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = np.arange(len(classes))
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    n = int(len(y_true))
    if n == 0:
        return {"n": 0, "accuracy": float("nan"), "macro_f1": float("nan"), "per_class": {},
                "confusion": [], "classes": list(classes)}
    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    present = s > 0
    # classes in the truth or in the predictions (scikit-learn's macro average): a class
    # predicted but absent from a held-out subset counts its false alarms as F1 = 0
    scored = present | np.isin(labels, y_pred)
    per_class = {
        name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
               "support": int(s[i])}
        for i, name in enumerate(classes)
    }
    return {
        "n": n,
        "accuracy": float(np.mean(y_true == y_pred)),
        "macro_f1": float(np.mean(f[scored])) if scored.any() else float("nan"),
        "balanced_accuracy": float(np.mean(r[present])) if present.any() else float("nan"),
        "per_class": per_class,
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "classes": list(classes),
    }


def proportion_metrics(y_true: np.ndarray, y_prob: np.ndarray) -> dict:
    """The dCNN paper's accuracy ``A = 1 - mean|y - ŷ|`` and binary cross-entropy."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_prob = np.clip(np.asarray(y_prob, dtype=np.float64), 1e-7, 1 - 1e-7)
    if len(y_true) == 0:
        return {"n": 0, "A": float("nan"), "bce": float("nan")}
    bce = -np.mean(y_true * np.log(y_prob) + (1 - y_true) * np.log(1 - y_prob))
    # the paper's Fig. 9: how the error depends on the true proportion
    by_target = {}
    for target in np.unique(np.round(y_true, 3)):
        sel = np.isclose(y_true, target, atol=5e-4)
        err = y_prob[sel] - y_true[sel]
        by_target[f"{target:g}"] = {"n": int(sel.sum()), "mean_error": float(err.mean()),
                                    "mean_abs_error": float(np.abs(err).mean()),
                                    "std_prediction": float(y_prob[sel].std())}
    return {
        "error_by_target": by_target,
        "n": int(len(y_true)),
        "A": float(1 - np.mean(np.abs(y_true - y_prob))),
        "bce": float(bce),
        "mae": float(np.mean(np.abs(y_true - y_prob))),
    }


def jsonable(obj):
    """``obj`` with numpy scalars made plain and NaN/inf made None, ready for ``json.dumps``."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
