"""State shared by the widgets of one viewer, and small Qt/napari helpers.

A :class:`Session` holds what was loaded (task, items, project with journal and model
registry), the item layer, the current model and its predictions. One :class:`Hub` per viewer
carries the session and a ``changed`` signal so widgets refresh each other.
"""

from __future__ import annotations

import functools
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from psygnal import Signal

from napari_cellcurator._qt.kinds import layer_kind
from napari_cellcurator._qt.layers import (
    item_features,
    labels_colormap_dict,
    point_style,
)
from napari_cellcurator.core.io.items import ItemSet

_HUBS: dict[int, Hub] = {}
_TORCH_WARM = False


class Session:
    """Everything the widgets share about the loaded data set."""

    def __init__(self, task: str, items: ItemSet, data_path: str | Path, project: Any = None,
                 classes: list[str] | None = None):
        self.task_name = task
        self.items = items
        self.data_path = Path(data_path)
        self.project = project
        from napari_cellcurator.core.io.names import natural_key

        # natural order: class ids 0, 1, 2, ..., 10 (key 3 is class 2, not class 10)
        self.classes = list(classes or items.meta.get("classes") or sorted(
            items.table["label"].dropna().astype(str).unique(), key=natural_key))
        self.layer = None  # the item layer (Points or Labels)
        self.model = None
        self.config = None
        self.version: str | None = None
        self.predictions: pd.DataFrame | None = None
        self.scores: np.ndarray | None = None
        self.order: np.ndarray | None = None  # review order (row positions)
        self.current: int | None = None  # row shown by the Curate widget
        self.explanation: dict | None = None  # last Explain result (+ "row")
        self.channels: list[int] | None = items.meta.get("channels")
        self._symbols_shown: tuple[Any, np.ndarray] | None = None  # (layer, symbols set on it)
        self._rois_renumbered = False  # journal labels of ROIs renumbered since (anchors)

    # ---- labels ----------------------------------------------------------------------------
    @property
    def journal(self):
        return None if self.project is None else self.project.journal

    @property
    def proportions(self) -> bool:
        """Whether labels are proportions (mixture), not class names."""
        from napari_cellcurator.core.tasks import get_task

        return get_task(self.task_name).kind == "proportion"

    def merged_table(self) -> pd.DataFrame:
        """Item table with the journal's current labels (human corrections win)."""
        from napari_cellcurator.core.triage import ANCHOR_CHANGES, merge_labels

        if self.journal is None:
            table = self.items.table.copy()
            table["label_source"] = np.where(table["label"].notna(), "file", None)
            return table
        table = merge_labels(self.items.table, self.journal.current_labels(),
                             self.proportions)
        self._rois_renumbered = bool(table.attrs.get(ANCHOR_CHANGES))
        return table

    def training_items(self) -> ItemSet:
        """Items with merged labels (journal + data), for fine-tuning."""
        table = self.merged_table().drop(columns=["label_source"])
        return ItemSet(table, self.items.arrays, dict(self.items.meta))

    def set_label(self, row: int, label: str | None) -> None:
        """Write a human label for item ``row`` to the journal now, then refresh the layer."""
        self.set_labels([row], label, "human")

    def set_labels(self, rows, label: str | None, source: str = "human") -> int:
        """Label items ``rows`` in one journal action (undone as one); returns its id.

        The task checks the label first (mixture: a proportion, or one of the two types'
        names for a pure snippet, 0 / 1; a new class name starts a class); a refused one
        raises and nothing is written."""
        from napari_cellcurator.core.tasks import get_task

        if self.journal is None:
            raise RuntimeError("no project for these data: labels cannot be saved "
                               "(load them with the Load widget)")
        if label is not None:
            label = get_task(self.task_name).check_label(str(label), self.classes, True)
            if label not in self.classes and not self.proportions:
                self.classes.append(label)
        from napari_cellcurator.core.anchors import item_anchors

        rows = np.asarray(rows, dtype=int)
        chosen = self.items.table.iloc[rows]
        ids = chosen["item_id"].astype(str).tolist()
        # ROIs: where each is, so the label follows its cell if the ROIs are renumbered
        action = self.journal.set_labels(ids, [label] * len(ids), source=source,
                                         model_version=self.version,
                                         anchors=item_anchors(chosen))
        self.refresh_rows(rows)
        return action

    def undo(self) -> list:
        """Undo the last journal action; returns its events."""
        events = [] if self.journal is None else self.journal.undo()
        self.refresh_rows(self.rows_of([e.item_id for e in events]))
        return events

    def rows_of(self, item_ids) -> np.ndarray:
        """Row positions of the items ``item_ids`` (ids not among the items are skipped)."""
        index = pd.Index(self.items.table["item_id"].astype(str))
        rows = index.get_indexer([str(i) for i in item_ids])
        return rows[rows >= 0]

    # ---- display ---------------------------------------------------------------------------
    def features(self) -> pd.DataFrame:
        feats = item_features(self.merged_table(), self.predictions)
        if self.layer is not None and layer_kind(self.layer) == "labels":
            feats.insert(0, "index", self.label_ids())  # napari: row ↔ label value
        return feats

    def refresh_layer(self) -> None:
        """Rewrite ``layer.features`` and colours from labels and predictions."""
        if self.layer is None:
            return
        feats = self.features()
        old = self.layer.features
        if len(old) == len(feats):  # the user's own columns (class, area...) stay
            for column in old.columns.difference(feats.columns):
                feats[column] = old[column].to_numpy()
        if layer_kind(self.layer) == "points":
            self._show_points(feats, point_style(feats, self.classes))
            return
        self._show_features(feats)

    def refresh_rows(self, rows) -> None:
        """Re-read the labels of items ``rows`` and restyle only them (a keypress, an undo).

        The whole-table :meth:`refresh_layer` re-queries the journal and rebuilds every
        item's features: ~0.3 s a key at 30,000 items. Other columns of ``layer.features``
        (a cluster column, say) are kept.
        """
        layer = self.layer
        rows = np.unique(np.asarray(rows, dtype=int))
        if layer is None or len(rows) == 0:
            return
        shown = self._symbols_shown
        many = len(rows) > max(256, len(self.items) // 10)  # a bulk undo: one rebuild
        # labels that follow renumbered ROIs need the whole item table to be placed
        many = many or self._rois_renumbered
        unstyled = layer_kind(layer) == "points" and (shown is None or shown[0] is not layer)
        if many or unstyled or len(layer.features) != len(self.items):
            self.refresh_layer()
            return
        fresh = self._features_of(rows)
        feats = layer.features.copy()
        for column in fresh.columns:
            feats.iloc[rows, feats.columns.get_loc(column)] = fresh[column].to_numpy()
        if layer_kind(layer) != "points":
            self._show_features(feats)
            return
        style = point_style(fresh, self.classes)
        full = {"border_color": np.array(layer.border_color, dtype=float),
                "border_width": np.array(layer.border_width, dtype=float),
                "symbol": shown[1].copy()}
        for key, values in full.items():
            values[rows] = style[key]
        self._show_points(feats, full)

    def _features_of(self, rows: np.ndarray) -> pd.DataFrame:
        """:meth:`features` of some rows only (journal looked up for these items alone)."""
        from napari_cellcurator.core.io.items import FORMER_ID
        from napari_cellcurator.core.triage import merge_labels

        table = self.items.table.iloc[rows].reset_index(drop=True)
        if self.journal is None:
            table["label_source"] = np.where(table["label"].notna(), "file", None)
        else:
            ids = table["item_id"].astype(str).tolist()
            if FORMER_ID in table.columns:  # labels saved under older ids
                ids += table[FORMER_ID].astype(str).tolist()
            table = merge_labels(table, self.journal.current_labels_of(ids), self.proportions)
        predictions = (None if self.predictions is None
                       else self.predictions.iloc[rows].reset_index(drop=True))
        return item_features(table, predictions)

    def _show_points(self, feats: pd.DataFrame, style: dict) -> None:
        """Set features and per-point style on the Points layer with one redraw."""
        style = dict(style)
        shown = self._symbols_shown
        if shown is not None and shown[0] is self.layer and np.array_equal(
                style["symbol"], shown[1]):
            del style["symbol"]  # napari re-parses every symbol it is given (~50 ms/30k)
        else:
            self._symbols_shown = (self.layer, np.asarray(style["symbol"]))
        # one redraw for all the properties instead of one per property: the
        # border_color event rebuilds the markers from every property
        with self.layer.events.blocker_all():
            self.layer.features = feats
            for key, value in style.items():
                setattr(self.layer, key, value)
        self.layer.events.features()
        self.layer.events.border_color()

    def _show_features(self, feats: pd.DataFrame) -> None:
        """Set features (and, on a Labels layer, the class colours) and redraw."""
        if layer_kind(self.layer) == "labels":
            from napari.utils.colormaps import DirectLabelColormap

            self.layer.features = feats
            ids = self.label_ids()
            self.layer.colormap = DirectLabelColormap(
                color_dict=labels_colormap_dict(feats, ids, self.classes))
        else:
            self.layer.features = feats
        self.layer.refresh()

    def label_ids(self) -> np.ndarray:
        """Labels-layer value of each item (row i ↔ label i + 1 unless the table says)."""
        t = self.items.table
        if "label_id" in t.columns:
            return t["label_id"].to_numpy(dtype=int)
        return np.arange(1, len(t) + 1)

    def centre_of(self, row: int) -> np.ndarray:
        from napari_cellcurator._qt.layers import item_centres

        return item_centres(self.items)[row]


class Hub:
    """Per-viewer holder of the session; ``changed(what)`` tells widgets to refresh."""

    changed = Signal(str)

    def __init__(self) -> None:
        self.session: Session | None = None

    def set_session(self, session: Session) -> None:
        replaced, self.session = self.session, session
        old = getattr(replaced, "layer", None)
        if old is not None and old is not session.layer:  # no longer the items being curated
            old.metadata.pop("cellcurator_role", None)
        self.changed.emit("session")
        if replaced is not None and not _FROZEN_FOR:
            import gc

            del replaced
            gc.collect()  # the replaced data's cycles (its layers once removed), now, not later


@dataclass
class WorkerFailed:
    """Yielded/returned by a worker instead of raising.

    napari (0.9) connects a status callback to ``errored`` that itself fails, so workers
    report errors as values and the widgets show them.
    """

    error: BaseException

    def __str__(self) -> str:
        return f"{type(self.error).__name__}: {self.error}"


def guarded(gen_func):
    """Generator worker body whose exceptions become a final :class:`WorkerFailed` yield."""
    @functools.wraps(gen_func)
    def run(*args, **kwargs):
        try:
            return (yield from gen_func(*args, **kwargs))
        except Exception as exc:  # reported to the user by the widget
            yield WorkerFailed(exc)
            return None
    return run


def job_steps(job, *args, cancel=None, **kwargs):
    """Generator worker body: ``job(*args, progress=..., **kwargs)`` (numpy in and out) run by
    :func:`~napari_cellcurator.core.progress.as_steps`; yields its
    :class:`~napari_cellcurator.core.progress.Progress` and returns its result, or a
    :class:`WorkerFailed` (also when ``cancel`` was set)."""
    from napari_cellcurator.core.progress import as_steps

    try:
        return (yield from as_steps(job, *args, cancel=cancel, **kwargs))
    except Exception as exc:  # reported to the user by the widget
        return WorkerFailed(exc)


def real_viewer(viewer):
    """The viewer behind napari's ``PublicOnlyProxy``.

    napari hands every plugin widget a new proxy; widgets of this plugin must share one
    session per *viewer*, and use their own layers without private-attribute warnings.
    """
    return getattr(viewer, "__wrapped__", viewer)


def call_when_undocked(container, callback) -> None:
    """Call ``callback()`` when napari takes ``container`` out of its dock.

    napari's ``remove_dock_widget`` (also the dock's close button) only re-parents the inner
    widget to None; it neither closes nor deletes it.
    """
    from qtpy.QtCore import QEvent, QObject

    class _Filter(QObject):
        def eventFilter(self, obj, event):  # noqa: N802 (Qt override)
            if event.type() == QEvent.Type.ParentChange and obj.parent() is None:
                callback()
            return False

    container.native.installEventFilter(_Filter(container.native))


def hub_for(viewer) -> Hub:
    """The :class:`Hub` of ``viewer`` (created on first use, dropped with the viewer)."""
    viewer = real_viewer(viewer)
    key = id(viewer)
    if key not in _HUBS:
        from napari_cellcurator._qt.binding_check import warn_if_qt_binding_leaks

        warn_if_qt_binding_leaks()  # the first widget on a viewer: say so before a crash
        _HUBS[key] = Hub()
        weakref.finalize(viewer, _HUBS.pop, key, None)
    return _HUBS[key]


def require_session(viewer) -> Session:
    """The viewer's session, or a clear error asking to load data first."""
    s = hub_for(viewer).session
    if s is None:
        raise RuntimeError("load data first (Cell curator ▸ Load)")
    return s


def open_project(data_path: str | Path):
    """The project (journal + model registry) stored next to ``data_path``."""
    from napari_cellcurator.core.store.project import Project

    return Project.for_data(data_path)


def warm_torch() -> None:
    """Import torch and run one tiny forward pass on the main thread, once.

    Torch's lazy initialisation (thread pools, kernels) must not first happen inside a
    worker thread, where it has been seen to stall the event loop.
    """
    global _TORCH_WARM
    if _TORCH_WARM:
        return
    import torch

    # forward and backward: the first of each initialises kernels and autograd's engine,
    # which otherwise happens (holding the GIL) inside the worker
    conv = torch.nn.Conv2d(1, 2, 3)
    loss = torch.nn.functional.cross_entropy(conv(torch.zeros(2, 1, 8, 8)).mean((2, 3)),
                                             torch.zeros(2, dtype=torch.long))
    loss.backward()
    from napari_cellcurator.core.device import autocast, default_training_amp

    if default_training_amp("cpu"):  # training's bf16 kernels initialise on first use too
        with autocast("cpu"):
            out = conv(torch.zeros(2, 1, 8, 8))
        out.float().mean().backward()
    with torch.inference_mode():
        conv(torch.zeros(1, 1, 8, 8)).softmax(1).sum().item()
    # the first optimiser imports torch._dynamo and sympy (~800 modules, seconds): pure-Python
    # import work that yields the GIL, so it runs in the background instead of freezing the GUI
    threading.Thread(target=_warm_background, name="cellcurator-warm", daemon=True).start()
    _TORCH_WARM = True


#: set once the background warm-up (imports workers need, then gc.freeze) is done
WARM_DONE = threading.Event()


def _warm_background() -> None:
    """Imports the workers would otherwise do mid-run, then freeze the heap for the GC.

    Measured under Xvfb: module imports inside a training/scoring worker (sympy via the first
    optimiser, scikit-learn/scipy via the metrics) and full garbage collections that walk the
    few million objects of napari + torch + scipy hold the GIL for 100–700 ms at a time, which
    freezes napari's event loop. After the imports, :func:`gc.freeze` moves every object alive
    now into the permanent generation, so later collections only walk what the run creates.
    """
    import gc

    try:
        import torch

        param = torch.nn.Parameter(torch.zeros(2))
        opt = torch.optim.AdamW([param], lr=1e-3)
        param.sum().backward()
        opt.step()
        import sklearn.metrics  # noqa: F401  (labelled metrics, evaluation)

        from napari_cellcurator.core import pipeline, training  # noqa: F401
        from napari_cellcurator.core.tasks import TASK_MODULES, get_task

        for name in TASK_MODULES:
            get_task(name)
    finally:
        gc.freeze()
        WARM_DONE.set()


def freeze_heap(worker=None) -> None:
    """Before starting a long worker (on the GUI thread): move every object alive now into
    the GC's permanent generation until ``worker`` finishes.

    Measured in the GUI tests: what napari, the layers and earlier runs created after the
    warm-up made a full collection triggered inside the training worker hold the GIL for
    46–220 ms (growing with the session), stalling the event loop. :func:`gc.freeze` is
    O(1). Frozen objects in reference cycles are never collected, so a data set closed
    later (layers are cycles) would stay in memory: when the last frozen-for worker ends the
    heap is thawed (not collected then: a full collection of napari's heap takes ~0.5 s on
    the GUI thread; :meth:`Hub.set_session` runs one when other data replace a session).
    """
    import gc

    gc.freeze()
    if worker is not None:
        _FROZEN_FOR.add(id(worker))
        worker.finished.connect(lambda: _thaw_after(id(worker)))


#: workers the heap is frozen for (the GC state is the process's, so is this)
_FROZEN_FOR: set[int] = set()


def _thaw_after(worker_id: int) -> None:
    import gc

    _FROZEN_FOR.discard(worker_id)
    if not _FROZEN_FOR:
        gc.unfreeze()


def worker_setup() -> None:
    """Inside a worker thread: leave one core to the GUI."""
    from napari_cellcurator.core.device import limit_cpu_threads

    limit_cpu_threads(leave_free=1)


def camera_of(viewer):
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def notify_error(exc: BaseException | str) -> None:
    """Show an error notification (one line, the exception's own message)."""
    from napari.utils.notifications import show_error

    msg = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    show_error(f"cellcurator: {msg}")


def notify_info(msg: str) -> None:
    from napari.utils.notifications import show_info

    show_info(f"cellcurator: {msg}")


def add_layer_data(viewer, layer_data: list[tuple]) -> list:
    """Add layer data tuples to ``viewer``; returns the layers created (flattened)."""
    out = []
    for data, meta, kind in layer_data:
        added = getattr(viewer, f"add_{kind}")(data, **meta)
        out += added if isinstance(added, list) else [added]
    return out


def device_combo():
    """The device chooser shared by the Predict and Train widgets (``auto`` = cuda, mps, cpu)."""
    from magicgui.widgets import ComboBox

    return ComboBox(label="device", choices=("auto", "cpu", "cuda", "mps"), value="auto")
