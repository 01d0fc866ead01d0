"""Matplotlib plots in Qt widgets: training curves, confusion matrix, per-class F1, traces.

Matplotlib renders text and transforms in Python: one draw of a small two-panel figure takes
80–240 ms on a 2-core CPU, which froze napari's event loop for as long on every training epoch.
So every change to a figure *and* its rendering run in one background thread per plot; the
GUI thread only paints the finished image.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from qtpy.QtCore import Signal
from qtpy.QtGui import QColor, QImage, QPainter
from qtpy.QtWidgets import QSizePolicy, QWidget

BACKGROUND = "#262930"
DPI = 100
#: above this many classes the confusion matrix's cells carry no numbers (they overlap)
MAX_ANNOTATED_CLASSES = 8
MIN_HEIGHT = 200  # px of the confusion plot, taller with more classes


class PlotCanvas(QWidget):
    """A small dark matplotlib figure drawn off the GUI thread and shown as an image.

    Every edit of the figure goes through :meth:`submit`: edits run in order in this plot's
    own thread, and after a burst of edits the figure is rendered once, at the widget's size.
    The figure is never touched by the GUI thread after construction.
    """

    _rendered = Signal(object)

    def __init__(self, width: float = 4.0, height: float = 2.6, ncols: int = 1):
        super().__init__()
        # constrained layout: margins fit the tick and axis labels (long class names, the
        # epoch label), at the price of a layout pass per render, in the plot's thread
        self.figure = Figure(figsize=(width, height), facecolor=BACKGROUND, dpi=DPI,
                             layout="constrained")
        FigureCanvasAgg(self.figure)
        self.axes = [self.figure.add_subplot(1, ncols, i + 1) for i in range(ncols)]
        for ax in self.axes:
            dark_axes(ax)
        self.setMinimumHeight(int(height * 60))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self._size = (int(width * DPI), int(height * DPI))
        self._lock = threading.Lock()
        self._queued = 0
        self._visible = False
        self._dirty = False
        self._rgba: np.ndarray | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plot")
        self._rendered.connect(self._show_image)

    # ---- background side --------------------------------------------------------------------
    def submit(self, change: Callable[[], None]) -> Future:
        """Run ``change()`` (which edits ``self.figure``) in the plot thread, then re-render."""
        with self._lock:
            self._queued += 1
        return self._executor.submit(self._run, change)

    def _run(self, change: Callable[[], None]) -> None:
        try:
            change()
        finally:
            with self._lock:
                self._queued -= 1
                last = self._queued == 0
            if last:  # a burst of edits renders once
                self._render()

    def _render(self) -> None:
        with self._lock:
            if not self._visible:
                self._dirty = True  # rendered when shown
                return
            width, height = self._size
        self.figure.set_size_inches(max(width, 50) / DPI, max(height, 50) / DPI)
        self.figure.canvas.draw()
        rgba = np.array(self.figure.canvas.buffer_rgba(), copy=True)
        try:
            self._rendered.emit(rgba)  # queued to the GUI thread
        except RuntimeError:  # the widget was closed meanwhile
            pass

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Block until every submitted change is applied (tests; never on a hot path)."""
        self._executor.submit(lambda: None).result(timeout)

    # ---- GUI side ---------------------------------------------------------------------------
    def _show_image(self, rgba: np.ndarray) -> None:
        self._rgba = rgba
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt override)
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(BACKGROUND))
        if self._rgba is not None:
            h, w = self._rgba.shape[:2]
            image = QImage(self._rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888)
            painter.drawImage(0, 0, image)
        painter.end()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        with self._lock:
            self._size = (self.width(), self.height())
        self.submit(lambda: None)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        with self._lock:
            self._visible, dirty, self._dirty = True, self._dirty, False
        if dirty:
            self.submit(lambda: None)

    def hideEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().hideEvent(event)
        with self._lock:
            self._visible = False

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self._executor.shutdown(wait=False, cancel_futures=True)
        super().closeEvent(event)


def dark_axes(ax) -> None:
    """Give ``ax`` the plugin's dark plot look (napari's default theme)."""
    ax.set_facecolor(BACKGROUND)
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
        loss_ax.set_ylabel("loss", fontsize=7)
        for ax in self.axes:
            ax.set_xlabel("epoch", fontsize=7)
            # epochs 1, 2, 3 (never 1.2, 1.4), also for a single epoch
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
            dark_axes(ax)
        self.set_metric_name("metric")
        self.clear()

    def set_metric_name(self, name: str) -> None:
        """Name the validation metric plotted on the right (e.g. "macro F1")."""
        ax = self.axes[1]
        self.submit(lambda: (ax.set_title(f"validation {name}", fontsize=8),
                             ax.set_ylabel(name, fontsize=7)))

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
        data = (list(self.epochs), list(self.train_losses), list(self.val_losses),
                list(self.metric_values))  # copies: the lists keep growing on the GUI thread

        def change():
            epochs, train, val, metric = data
            self._train_line.set_data(epochs, train)
            self._val_line.set_data(epochs, val)
            self._metric_line.set_data(epochs, metric)
            for ax in self.axes:
                ax.relim()
                ax.autoscale_view(scalex=False)
                if epochs:  # half an epoch of margin: whole numbers only as ticks
                    ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)

        self.submit(change)


class ConfusionPlot(PlotCanvas):
    """Confusion matrix (rows true, columns predicted) and per-class F1."""

    def __init__(self):
        super().__init__(height=3.4, ncols=2)
        self.setMinimumHeight(MIN_HEIGHT)

    def show_metrics(self, metrics: dict) -> None:
        """Draw the ``confusion`` and ``per_class`` F1 of a metrics dict (in the plot thread);
        many classes get a taller plot (a row of pixels per class name, not overlapping)."""
        self.setMinimumHeight(max(MIN_HEIGHT, 18 * len(metrics.get("classes") or []) + 150))
        self.submit(lambda: self._draw_metrics(dict(metrics)))

    def _draw_metrics(self, metrics: dict) -> None:
        cm_ax, f1_ax = self.axes
        cm_ax.clear()
        f1_ax.clear()
        classes = list(metrics.get("classes") or [])
        cm = np.asarray(metrics.get("confusion") or np.zeros((0, 0)))
        if cm.size:
            cm_ax.imshow(cm, cmap="viridis")
            ticks = np.arange(len(classes))
            size = 6 if len(classes) <= MAX_ANNOTATED_CLASSES else 5
            cm_ax.set_xticks(ticks, classes, rotation=45, ha="right",
                             rotation_mode="anchor", fontsize=size)
            cm_ax.set_yticks(ticks, classes, fontsize=size)
            if len(classes) <= MAX_ANNOTATED_CLASSES:  # more: numbers overlap, colours only
                for (i, j), v in np.ndenumerate(cm):
                    cm_ax.text(j, i, str(int(v)), ha="center", va="center", fontsize=6,
                               color="w")
        cm_ax.set_xlabel("predicted", fontsize=7)
        cm_ax.set_ylabel("true", fontsize=7)
        cm_ax.set_title("confusion (counts)", fontsize=8)
        per = metrics.get("per_class") or {}
        names = [c for c in classes if c in per]
        f1 = [float(per[c].get("f1", np.nan)) for c in names]
        f1_ax.barh(np.arange(len(names)), f1, color="#1f77b4")
        f1_ax.set_yticks(np.arange(len(names)), names, fontsize=6)
        f1_ax.set_xlim(0, 1)
        f1_ax.set_xlabel("F1", fontsize=7)
        f1_ax.set_title("F1 per class", fontsize=8)
        for ax in self.axes:
            dark_axes(ax)


class TracePlot(PlotCanvas):
    """The fluorescence trace of the selected candidate."""

    def __init__(self):
        super().__init__(height=1.8)

    def show_trace(self, trace: np.ndarray | None, title: str = "",
                   importance: np.ndarray | None = None) -> None:
        """Plot ``trace``; ``importance`` (occlusion of the trace) shades the samples that
        mattered to the model."""
        trace = None if trace is None else np.array(trace, dtype=float)
        importance = None if importance is None else np.array(importance, dtype=float)
        self.submit(lambda: self._draw_trace(trace, title, importance))

    def _draw_trace(self, trace, title, importance) -> None:
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
        ax.set_xlabel("frame", fontsize=7)
        ax.set_ylabel("F", fontsize=7)
        dark_axes(ax)
