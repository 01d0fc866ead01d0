"""Matplotlib plots in Qt widgets: training curves, confusion matrix, per-class F1, traces."""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure


class PlotCanvas(FigureCanvasQTAgg):
    """A small dark figure that fits a dock widget.

    Rendering happens on the GUI thread, so it is kept cheap: fixed margins (no
    ``tight_layout``, which renders every text twice) and no drawing while hidden.
    """

    def __init__(self, width: float = 4.0, height: float = 2.6, ncols: int = 1):
        fig = Figure(figsize=(width, height), facecolor="#262930")
        fig.subplots_adjust(left=0.12, right=0.97, bottom=0.2, top=0.88, wspace=0.35)
        super().__init__(fig)
        self.axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
        for ax in self.axes:
            _style(ax)
        self.setMinimumHeight(int(height * 60))
        self._dirty = False

    def redraw(self) -> None:
        if self.isVisible():
            self.draw_idle()
        else:
            self._dirty = True

    def showEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        if self._dirty:  # render what changed while hidden
            self._dirty = False
            self.draw_idle()


def _style(ax) -> None:
    ax.set_facecolor("#262930")
    for spine in ax.spines.values():
        spine.set_color("#aaaaaa")
    ax.tick_params(colors="#dddddd", labelsize=7)
    ax.xaxis.label.set_color("#dddddd")
    ax.yaxis.label.set_color("#dddddd")
    ax.title.set_color("#ffffff")


class CurvesPlot(PlotCanvas):
    """Train/validation loss per epoch (left) and the validation metric (right).

    (No attribute may be called ``metric``: Qt's ``QPaintDevice.metric`` is virtual.)
    """

    def __init__(self):
        super().__init__(ncols=2)
        loss_ax, metric_ax = self.axes
        (self._train_line,) = loss_ax.plot([], [], "o-", ms=3, label="train")
        (self._val_line,) = loss_ax.plot([], [], "o-", ms=3, label="validation")
        (self._metric_line,) = metric_ax.plot([], [], "o-", ms=3, color="#2ca02c")
        loss_ax.legend(fontsize=6)
        loss_ax.set_title("loss", fontsize=8)
        metric_ax.set_title("validation metric", fontsize=8)
        for ax in self.axes:
            ax.set_xlabel("epoch", fontsize=7)
            _style(ax)
        self.clear()

    def clear(self) -> None:
        self.epochs: list[int] = []
        self.train_losses: list[float] = []
        self.val_losses: list[float] = []
        self.metric_values: list[float] = []
        self._update()

    def add_epoch(self, epoch: int, train_loss, val_loss, metric) -> None:
        nan = float("nan")
        self.epochs.append(epoch)
        self.train_losses.append(nan if train_loss is None else float(train_loss))
        self.val_losses.append(nan if val_loss is None else float(val_loss))
        self.metric_values.append(nan if metric is None else float(metric))
        self._update()

    def _update(self) -> None:
        """Move the existing lines (cheaper than re-plotting) and rescale the axes."""
        self._train_line.set_data(self.epochs, self.train_losses)
        self._val_line.set_data(self.epochs, self.val_losses)
        self._metric_line.set_data(self.epochs, self.metric_values)
        for ax in self.axes:
            ax.relim()
            ax.autoscale_view()
        self.redraw()


class ConfusionPlot(PlotCanvas):
    """Confusion matrix (rows true, columns predicted) and per-class F1."""

    def __init__(self):
        super().__init__(height=3.0, ncols=2)

    def show_metrics(self, metrics: dict) -> None:
        cm_ax, f1_ax = self.axes
        cm_ax.clear()
        f1_ax.clear()
        classes = list(metrics.get("classes") or [])
        cm = np.asarray(metrics.get("confusion") or np.zeros((0, 0)))
        if cm.size:
            cm_ax.imshow(cm, cmap="viridis")
            ticks = np.arange(len(classes))
            cm_ax.set_xticks(ticks, classes, rotation=90, fontsize=6)
            cm_ax.set_yticks(ticks, classes, fontsize=6)
            for (i, j), v in np.ndenumerate(cm):
                cm_ax.text(j, i, str(int(v)), ha="center", va="center", fontsize=6, color="w")
        cm_ax.set_title("confusion (true × predicted)", fontsize=8)
        per = metrics.get("per_class") or {}
        names = [c for c in classes if c in per]
        f1 = [float(per[c].get("f1", np.nan)) for c in names]
        f1_ax.barh(np.arange(len(names)), f1, color="#1f77b4")
        f1_ax.set_yticks(np.arange(len(names)), names, fontsize=6)
        f1_ax.set_xlim(0, 1)
        f1_ax.set_title("F1 per class", fontsize=8)
        for ax in self.axes:
            _style(ax)
        self.redraw()


class TracePlot(PlotCanvas):
    """The fluorescence trace of the selected candidate."""

    def __init__(self):
        super().__init__(height=1.8)

    def show_trace(self, trace: np.ndarray | None, title: str = "",
                   importance: np.ndarray | None = None) -> None:
        """Plot ``trace``; ``importance`` (occlusion of the trace) shades the samples that
        mattered to the model."""
        ax = self.axes[0]
        ax.clear()
        if trace is not None:
            y = np.asarray(trace, dtype=float).ravel()
            if importance is not None and len(importance) == len(y) and np.ptp(y) > 0:
                imp = np.clip(np.asarray(importance, dtype=float), 0, None)
                imp = imp / (imp.max() or 1.0)
                ax.fill_between(np.arange(len(y)), y.min(), y.min() + imp * np.ptp(y),
                                color="#1f77b4", alpha=0.4, lw=0)
            ax.plot(y, lw=0.8, color="#ff7f0e")
        ax.set_title(title, fontsize=8)
        _style(ax)
        self.redraw()
