"""Predict widget: score every item with the project's current model (or a model folder)."""

import weakref
from pathlib import Path

import napari.viewer
import numpy as np
import pandas as pd
from magicgui.widgets import ComboBox, Container, FileEdit, Label, ProgressBar, PushButton
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_warning
from qtpy.QtCore import QTimer

from napari_cellcurator._qt.common import (
    WorkerFailed,
    device_combo,
    freeze_heap,
    guarded,
    hub_for,
    notify_error,
    notify_info,
    real_viewer,
    require_session,
    warm_torch,
    worker_setup,
)
from napari_cellcurator._qt.model_reading import reread_for_model, tiles_for_model

CURRENT = "project: current version"
FOLDER = "model folder"


def load_session_model(session, source: str = CURRENT, folder: str | Path | None = None):
    """``(model, config, version)`` a session should predict with, checked against its task;
    the session keeps its own model until a prediction with this one completes."""
    from napari_cellcurator.core.store.modelio import check_predictor, load_model
    from napari_cellcurator.core.tasks import get_task

    model_dir = folder if source == FOLDER else None
    if source != FOLDER and session.project is not None \
            and session.project.models.current() is None:
        # a new project: the model shipped for the task (cellness: pretrained on simulated
        # recordings) rather than asking for a folder inside site-packages
        model_dir = get_task(session.task_name).shipped_model()
        if model_dir is not None:
            notify_info(f"no model in this project yet: predicting with the shipped "
                        f"{session.task_name} model ({Path(model_dir).name}); Train makes "
                        "your own")
    if model_dir is not None:
        model, config = load_model(model_dir)
        version = str(model_dir)
    else:
        if session.project is None:
            raise RuntimeError("no project: choose a model folder")
        model, config = session.project.models.load()
        version = session.project.models.current()
    check_predictor(config, version)
    if config.task != session.task_name:
        raise RuntimeError(f"model is for task {config.task!r}, data are "
                           f"{session.task_name!r}")
    return model, config, version


class PredictWidget(Container):
    """Model, device, Predict / Cancel, progress."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = real_viewer(viewer)
        self._source = ComboBox(label="model", choices=(CURRENT, FOLDER), value=CURRENT)
        self._folder = FileEdit(label="folder", mode="d", visible=False)
        self._device = device_combo()
        self._run = PushButton(text="Predict")
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(value=0, min=0, max=1, label="progress")
        self._status = Label(value="")
        super().__init__(widgets=[self._source, self._folder, self._device, self._run,
                                  self._cancel, self._progress, self._status])
        self._source.changed.connect(lambda v: setattr(self._folder, "visible", v == FOLDER))
        self._run.changed.connect(self.predict)
        self._cancel.changed.connect(self.cancel)
        self.worker = None
        self.chunk = 256  # items per step between progress updates / cancel points
        # opening the widget starts the warm-up (imports, GC freeze) before the first click
        warm_torch()

    def predict(self):
        """Start the prediction worker; returns it (tests wait on its signals)."""
        try:
            session = require_session(self._viewer)
            chosen = load_session_model(session, self._source.value, self._folder.value)
            retiled = tiles_for_model(self._viewer, session, chosen[1])
            if retiled:
                notify_info(retiled)
            # celltype / cellness items read otherwise than the model's data: read again
            # in the worker (items made from layers: a warning saying which option differs)
            reread, warning = reread_for_model(session, chosen[1])
            if warning:
                show_warning(f"cellcurator: {warning}")
            warm_torch()
        except Exception as exc:  # any failure is shown, never raised into Qt
            notify_error(exc)
            return None
        self.worker = start_prediction(self._viewer, session, self._device.value,
                                       self._progress, self._status, chunk=self.chunk,
                                       model=chosen, reread=reread)
        self._run.enabled, self._cancel.enabled = False, True
        self.worker.finished.connect(self._done)
        self.worker.start()
        return self.worker

    def cancel(self):
        if self.worker is not None and self.worker.is_running:  # not after it returned
            self.worker.quit()
            self._status.value = "cancelled"

    def _done(self):
        self._run.enabled, self._cancel.enabled = True, False


@guarded
def predict_chunks(model, config, items, device: str = "auto", chunk: int = 256,
                   reread: str | None = None):
    """Generator: predict ``items`` in chunks, yielding ``(done, total)``; returns
    ``(table, scores, items scored)`` (the worker's ``returned`` value). With ``reread``
    (a path), the items are first read from it as the model's data were (a note about
    items the session lacks is yielded as text)."""
    from napari_cellcurator.core.pipeline import predict_items

    worker_setup()
    if reread:
        from napari_cellcurator._qt.model_reading import items_for_model

        items, note = items_for_model(config, reread, items)
        if note:
            yield note
    from napari_cellcurator.core.tasks import get_task

    drift = get_task(config.task).input_drift(items, config.preprocessing)
    if drift:
        yield drift
    tables, scores = [], []
    n = len(items)
    for start in range(0, max(n, 1), chunk):
        idx = np.arange(start, min(n, start + chunk))
        t, s = predict_items(model, config, items.subset(idx), device, check_drift=False)
        tables.append(t)
        scores.append(s)
        yield (int(idx[-1]) + 1 if len(idx) else 0, n)
    return pd.concat(tables, ignore_index=True), np.concatenate(scores), items


def start_prediction(viewer, session, device, progress=None, status=None, on_done=None,
                     chunk: int = 256, model: tuple | None = None,
                     reread: str | None = None):
    """A (not started) worker predicting every item of ``session``; results go to the layer.

    ``model`` = ``(model, config, version)`` (default: the session's); it becomes the
    session's model when the prediction completes, so a failed or cancelled run leaves the
    session as it was. Items are scored ``chunk`` at a time: progress and Cancel act between
    chunks. ``on_done(table, scores)`` follows a completed run, ``on_done(None, None)`` a
    failed one. ``reread``: see :func:`predict_chunks` (the items read then become the
    session's)."""
    net, config, version = model or (session.model, session.config, session.version)
    # napari keeps finished workers (and what their signals hold) for the window's life:
    # a weak reference lets a replaced session, its crops and model go
    session_ref = weakref.ref(session)
    worker = thread_worker(predict_chunks, start_thread=False)(
        net, config, session.items, device, chunk, reread)
    freeze_heap(worker)  # no full GC of the session's heap inside the worker

    def on_yield(value):
        if isinstance(value, WorkerFailed):
            notify_error(value)
            return
        if isinstance(value, str):
            notify_info(value)
            return
        done, total = value
        if worker.abort_requested:  # already cancelled: a late update must not say otherwise
            return
        if progress is not None:
            progress.max = max(total, 1)
            progress.value = done
        if status is not None:
            status.value = f"{done}/{total} items"

    def on_return(result):
        s = session_ref()
        if result is None or s is None:
            return
        table, scores, items = result
        if items is not s.items and reread:  # the items the model scored, read as it reads
            s.items, s.channels = items, items.meta["read_options"]["channels"]
        s.model, s.config, s.version = net, config, version
        s.classes = list(config.classes)
        apply_predictions(viewer, s, table, scores)
        if on_done is not None:  # a later event-loop turn: GUI-thread work stays in short bits
            QTimer.singleShot(0, lambda: on_done(table, scores))

    def on_error(exc):
        notify_error(exc)
        if on_done is not None:
            QTimer.singleShot(0, lambda: on_done(None, None))

    worker.yielded.connect(on_yield)
    worker.returned.connect(on_return)
    worker.errored.connect(on_error)
    return worker


def apply_predictions(viewer, session, table, scores) -> None:
    """Store predictions in the session, refresh layer features/colours, add task layers."""
    from qtpy.QtCore import QTimer

    session.predictions, session.scores = table, scores
    session.refresh_layer()
    if session.task_name == "mixture":
        from napari_cellcurator._qt.task_layers import add_proportion_map

        add_proportion_map(viewer, session)

    def tell():
        hub_for(viewer).changed.emit("predictions")
        notify_info(f"scored {len(table)} items with model {session.version}")

    QTimer.singleShot(0, tell)
