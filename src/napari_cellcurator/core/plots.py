"""Evaluation plots written as PNG files (matplotlib's Agg canvas, no GUI backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_cellcurator.core.store.atomic import atomic_write


def _figure(width: float = 5.0, height: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def plot_evaluation(metrics: dict, path: str | Path) -> Path:
    """Confusion matrix (classification) or error versus true proportion (mixture) as PNG."""
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    if "error_by_target" in metrics:
        rows = sorted(metrics["error_by_target"].items(), key=lambda kv: float(kv[0]))
        targets = np.array([float(k) for k, _ in rows])
        mae = np.array([v["mean_abs_error"] for _, v in rows])
        bias = np.array([v["mean_error"] for _, v in rows])
        ax.plot(targets, mae, "o-", label="mean |ŷ − y|")
        ax.plot(targets, bias, "s--", label="mean ŷ − y (bias)")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel("true proportion of the second type")
        ax.set_ylabel("error")
        ax.set_title(f"A = {metrics.get('A', float('nan')):.3f}, n = {metrics.get('n')}")
        ax.legend(fontsize=8)
    else:
        conf = np.asarray(metrics.get("confusion") or [[0]], dtype=float)
        classes = metrics.get("classes") or [str(i) for i in range(len(conf))]
        norm = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(classes)), classes, fontsize=7)
        for i in range(len(conf)):
            for j in range(len(conf)):
                ax.text(j, i, int(conf[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"accuracy {metrics.get('accuracy', float('nan')):.3f}, "
                     f"macro-F1 {metrics.get('macro_f1', float('nan')):.3f}", fontsize=9)
    fig.tight_layout()
    return atomic_write(path, lambda p: fig.savefig(p, format="png"))
