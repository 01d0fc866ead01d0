"""Cluster widget: group unlabelled items on autoencoder features and label a group at once.

Thin over :func:`napari_cellcurator.core.clustering.iter_cluster_items`. Clustering runs in a
generator ``thread_worker``; items are coloured by cluster; an embedding scatter is linked to
the item layer (lasso in the scatter selects items, selecting items highlights them in the
scatter); a named cluster (or the selection) is accepted as labels in one journal action
(source ``"cluster"``, undone as one).
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, LineEdit, ProgressBar, PushButton, SpinBox
from napari.qt.threading import thread_worker

from napari_cellcurator._qt.common import (
    WorkerFailed,
    guarded,
    hub_for,
    notify_error,
    notify_info,
    require_session,
    warm_torch,
    worker_setup,
)
from napari_cellcurator._qt.kinds import layer_kind
from napari_cellcurator._qt.plots import BACKGROUND, dark_axes
from napari_cellcurator.core.errors import CellCuratorError

#: cluster colours, apart from the class colours (layers.PALETTE): clusters are shown as a
#: light fill (points keep their class-coloured border) or a light ROI tint, never solid
CLUSTER_PALETTE = np.array([
    (0.0, 0.9, 0.6), (0.45, 0.3, 1.0), (0.55, 0.9, 0.0), (0.95, 0.3, 0.75),
    (1.0, 0.45, 0.35), (0.0, 0.7, 1.0), (0.9, 0.75, 0.4), (0.6, 0.0, 0.4),
    (0.3, 0.55, 0.3), (1.0, 0.95, 0.6),
])
#: opacity of a cluster's fill over a crop (points) or an ROI (labels): the image shows
CLUSTER_FILL_ALPHA, CLUSTER_ROI_ALPHA = 0.18, 0.5


def cluster_colors(clusters: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """RGBA per item: a cluster-palette colour per cluster, grey for HDBSCAN noise (-1)."""
    clusters = np.asarray(clusters, dtype=int)
    rgb = np.where((clusters >= 0)[:, None],
                   CLUSTER_PALETTE[np.maximum(clusters, 0) % len(CLUSTER_PALETTE)], 0.6)
    return np.concatenate([rgb, np.full((len(clusters), 1), alpha)], axis=1)


@guarded
def _cluster_job(task: str, items, k, method: str, epochs, seed: int = 0):
    from napari_cellcurator.core.clustering import iter_cluster_items

    worker_setup()
    return (yield from iter_cluster_items(task, "items", None, k, None, None, method, seed,
                                          epochs, "pca", "auto", items))


class ClusterWidget(Container):
    """Cluster the loaded items without labels, inspect the groups, accept them as labels."""

    def __init__(self, viewer):
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self._viewer = viewer
        self.table = None  # item_id, cluster, x, y (item order) after a run
        self._k = SpinBox(label="clusters", value=0, min=0, max=30,
                          tooltip="number of clusters; 0 = choose by silhouette")
        self._method = ComboBox(label="method", choices=["kmeans", "hdbscan"], value="kmeans")
        self._epochs = SpinBox(label="epochs", value=0, min=0, max=500,
                               tooltip="autoencoder epochs; 0 = automatic (~200 steps)")
        self._run = PushButton(text="Cluster")
        self._progress = ProgressBar(value=0, min=0, max=1, label="training")
        self._status = Label(value="")
        # choices from a function: napari's reset_choices (on layer events) keeps them
        self._cluster = ComboBox(label="cluster", choices=self._cluster_choices)
        self._name = LineEdit(label="class name", value="")
        self._accept = PushButton(text="Accept cluster as labels")
        self._accept_sel = PushButton(text="Label selected items")
        self._undo = PushButton(text="Undo")
        super().__init__(widgets=[self._k, self._method, self._epochs, self._run,
                                  self._progress, self._status, self._cluster, self._name,
                                  self._accept, self._accept_sel, self._undo])
        self.figure = Figure(figsize=(3.2, 3.2), tight_layout=True, facecolor=BACKGROUND)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(260)
        self.native.layout().addWidget(self.canvas)
        self.ax = self.figure.add_subplot(111)
        dark_axes(self.ax)
        self._scatter = None
        self._lasso = None
        self.result: dict | None = None
        self.selected = np.zeros(0, dtype=int)
        self.worker = None
        self._running_on = None
        self._syncing = False
        self._layer = None
        self._run.changed.connect(self.run)
        self._cluster.changed.connect(self._on_cluster_choice)
        self._accept.changed.connect(self.accept_cluster)
        self._accept_sel.changed.connect(self.accept_selection)
        self._undo.changed.connect(self.undo)
        hub_for(viewer).changed.connect(self._on_hub)

    def _cluster_choices(self, _widget=None) -> list[int]:
        return [] if self.table is None else sorted(int(c) for c in self.table["cluster"].unique())

    def _on_hub(self, what: str) -> None:
        """Another data set: its items are not the ones clustered, so forget the clusters."""
        if what != "session" or self.table is None:
            return
        self.table, self.result, self._layer = None, None, None
        self.selected = np.zeros(0, dtype=int)
        self._cluster.reset_choices()
        self.ax.clear()
        dark_axes(self.ax)
        self._scatter = None
        self.canvas.draw_idle()
        self._status.value = "new data: cluster again"

    # ---- running ---------------------------------------------------------------------------
    def run(self, *_):
        """Start clustering the session's items in a worker; returns the worker."""
        try:
            session = require_session(self._viewer)
        except RuntimeError as exc:
            notify_error(exc)
            return None
        warm_torch()
        k = self._k.value or None
        epochs = self._epochs.value or None
        self._run.enabled = False
        self._status.value = "training the autoencoder…"
        self._running_on = session
        self.worker = thread_worker(_cluster_job, start_thread=False)(
            session.task_name, session.training_items(), k, self._method.value, epochs)
        self.worker.yielded.connect(self._on_update)
        self.worker.returned.connect(self._on_done)
        self.worker.finished.connect(lambda: setattr(self._run, "enabled", True))
        self.worker.start()
        return self.worker

    def _on_update(self, update) -> None:
        from napari_cellcurator.core.training import EpochDone, StepDone

        if isinstance(update, WorkerFailed):
            self._status.value = "failed"
            notify_error(update.error)
        elif isinstance(update, StepDone):
            self._progress.max = update.steps
            self._progress.value = update.step
        elif isinstance(update, EpochDone):
            self._status.value = (f"epoch {update.epoch}/{update.epochs}: "
                                  f"loss {update.train_loss:.3f}")

    def _on_done(self, value) -> None:
        if value is None or isinstance(value, WorkerFailed):
            return
        if hub_for(self._viewer).session is not self._running_on:
            self._status.value = "the data changed while clustering: cluster again"
            return
        self.table, self.result = value
        r = self.result
        extra = "" if r.get("nmi") is None else f", NMI {r['nmi']:.2f} vs labels"
        self._status.value = f"{r['k']} clusters{extra}"
        self._cluster.reset_choices()
        self.colour_layer()
        self.draw_scatter()
        notify_info(f"{r['n_items']} items in {r['k']} clusters")

    # ---- display and selection ---------------------------------------------------------------
    def colour_layer(self) -> None:
        """Write ``cluster`` into the item layer's features and colour items by cluster."""
        session = require_session(self._viewer)
        layer, clusters = session.layer, self.table["cluster"].to_numpy()
        if layer is None:
            return
        layer.features["cluster"] = clusters
        if layer_kind(layer) == "points":
            layer.face_color = cluster_colors(clusters, CLUSTER_FILL_ALPHA)
            self._connect_layer(layer)
        elif layer_kind(layer) == "labels":
            from napari.utils.colormaps import DirectLabelColormap

            colors = {None: np.zeros(4), 0: np.zeros(4)}
            colors.update({int(i): c for i, c in zip(session.label_ids(),
                                                      cluster_colors(clusters, CLUSTER_ROI_ALPHA),
                                                      strict=True)})
            layer.colormap = DirectLabelColormap(color_dict=colors)
            self._connect_layer(layer)
        layer.refresh()

    def _connect_layer(self, layer) -> None:
        if self._layer is layer:
            return
        self._layer = layer
        if layer_kind(layer) == "points":
            layer.selected_data.events.items_changed.connect(self._from_layer)
        else:
            layer.events.selected_label.connect(self._from_layer)

    def draw_scatter(self) -> None:
        from matplotlib.widgets import LassoSelector

        self.ax.clear()
        dark_axes(self.ax)
        xy = self.table[["x", "y"]].to_numpy()
        self._scatter = self.ax.scatter(xy[:, 0], xy[:, 1], s=10,
                                        c=cluster_colors(self.table["cluster"].to_numpy()),
                                        linewidths=0)
        self.ax.set_xticks([])
        self.ax.set_yticks([])
        self.ax.set_title("embedding (lasso to select)", fontsize=9)
        self._lasso = LassoSelector(self.ax, onselect=self._on_lasso)
        self.canvas.draw_idle()

    def _on_lasso(self, vertices) -> None:
        from matplotlib.path import Path as MplPath

        inside = MplPath(vertices).contains_points(self.table[["x", "y"]].to_numpy())
        self.select_rows(np.flatnonzero(inside))

    def _on_cluster_choice(self, value) -> None:
        if self.table is not None and value is not None:
            self.select_rows(np.flatnonzero(self.table["cluster"].to_numpy() == int(value)))

    def select_rows(self, rows, from_layer: bool = False) -> None:
        """Select items (row positions) in the scatter and, unless it asked, in the layer."""
        self.selected = np.asarray(sorted(int(r) for r in rows), dtype=int)
        if self._scatter is not None:
            widths = np.zeros(len(self.table))
            widths[self.selected] = 1.2
            self._scatter.set_linewidths(widths)
            self._scatter.set_edgecolors("white")  # seen on the dark plot
            self.canvas.draw_idle()
        layer = require_session(self._viewer).layer
        if from_layer or layer is None:
            return
        self._syncing = True
        try:
            if layer_kind(layer) == "points":
                layer.selected_data = set(self.selected.tolist())
            elif len(self.selected):
                ids = require_session(self._viewer).label_ids()
                layer.selected_label = int(ids[self.selected[0]])
        finally:
            self._syncing = False

    def _from_layer(self, *_) -> None:
        if self._syncing or self.table is None:
            return
        layer = require_session(self._viewer).layer
        if layer is not self._layer:  # a selection in the previous data set's layer
            return
        if layer_kind(layer) == "points":
            rows = sorted(layer.selected_data)
        else:
            ids = require_session(self._viewer).label_ids()
            rows = np.flatnonzero(ids == layer.selected_label)
        self.select_rows(rows, from_layer=True)

    # ---- labelling -------------------------------------------------------------------------
    def accept_cluster(self, *_) -> int | None:
        """Label every item of the chosen cluster with the typed class name (one action)."""
        if self.table is None or self._cluster.value is None:
            notify_error("run clustering and choose a cluster first")
            return None
        rows = np.flatnonzero(self.table["cluster"].to_numpy() == int(self._cluster.value))
        return self._label_rows(rows)

    def accept_selection(self, *_) -> int | None:
        """Label the selected items with the typed class name (one action)."""
        return self._label_rows(self.selected)

    def _label_rows(self, rows) -> int | None:
        name = self._name.value.strip()
        session = require_session(self._viewer)
        if not name or len(rows) == 0:
            notify_error("type a class name and choose a cluster or select items")
            return None
        try:  # the task checks the name (a new class is welcome; mixture: a proportion)
            action = session.set_labels(rows, name, source="cluster")
        except (CellCuratorError, RuntimeError) as exc:
            notify_error(exc)
            return None
        if self.table is not None:  # refresh_layer rewrote features: keep the cluster column
            self.colour_layer()
        hub_for(self._viewer).changed.emit("labels")
        self._status.value = f"labelled {len(rows)} items {name!r}"
        return action

    def undo(self, *_) -> None:
        """Undo the last label action (a bulk cluster action is undone as a whole)."""
        events = require_session(self._viewer).undo()
        if self.table is not None:
            self.colour_layer()
        hub_for(self._viewer).changed.emit("labels")
        self._status.value = f"undid {len(events)} label(s)"
