"""Train widget: one click fine-tunes the current model on every human label.

Training runs in a generator worker (live curves, Cancel). When it succeeds the new version
goes into the project's registry, becomes current, and every item is re-scored, with the
before/after metrics on the labelled items shown. A cancelled or failed run leaves the
previous model current.
"""

from dataclasses import dataclass
from pathlib import Path

import napari.viewer
from magicgui.widgets import Container, Label, ProgressBar, PushButton, SpinBox
from napari.qt.threading import thread_worker
from psygnal import Signal

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
from napari_cellcurator._qt.curate_helpers import (
    before_after_text,
    epoch_metric,
    metric_name,
    metrics_text,
)
from napari_cellcurator._qt.model_reading import fine_tune_read_extra


@dataclass
class Published:
    """The new model, saved in the registry as ``version`` (by the worker: disk I/O and
    fsync stay off the GUI thread); ``before``: metrics of the previous model."""

    version: str
    model: object
    config: object
    before: dict | None


def labelled_metrics(task_name: str, table, scores, classes) -> dict | None:
    """Task metrics over the labelled rows (the cells the quality filter marks do not
    count, as in evaluation; None when they cannot be computed)."""
    if scores is None or classes is None:
        return None
    from napari_cellcurator.core.tasks import get_task

    try:
        return get_task(task_name).metrics(table, scores, list(classes))
    except Exception:  # labels outside the old model's classes: nothing to compare with
        return None


@guarded
def train_updates(req, items, parent, extra_paths, init_config, registry, before_args):
    """Worker body: the session's items (+ the model's original training data, read the way
    the model reads data) → training updates, then :class:`Published`."""
    from napari_cellcurator.core import pipeline
    from napari_cellcurator.core.errors import CellCuratorError
    from napari_cellcurator.core.io.items import concat_itemsets

    worker_setup()
    before = labelled_metrics(*before_args)
    for path in extra_paths:
        try:
            extra = pipeline.read_for_model(init_config, str(path))
            extra.table["item_id"] = "orig:" + extra.table["item_id"].astype(str)
            items = concat_itemsets([items, extra])
            req.data.append(str(path))
        except (CellCuratorError, OSError, ValueError) as exc:
            yield f"original training data {path} skipped: {exc}"
    for update in pipeline.train_iter(req, items=items, parent=parent):
        if isinstance(update, pipeline.ModelSaved):
            version = registry.add(update.model, update.config)
            yield Published(version, update.model, update.config, before)
        else:
            yield update


class TrainWidget(Container):
    """Epochs, device, Train / Cancel, progress, curves, before/after metrics."""

    #: emitted with "trained", "cancelled" or "failed" once a run (and its re-scoring) ends
    done = Signal(str)

    def __init__(self, viewer: napari.viewer.Viewer):
        from napari_cellcurator._qt.plots import ConfusionPlot, CurvesPlot

        self._viewer = real_viewer(viewer)
        self._epochs = SpinBox(label="epochs", value=5, min=1, max=500)
        self._device = device_combo()
        self._run = PushButton(text="Fine-tune on my labels")
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(value=0, min=0, max=1, label="epoch")
        self._status = Label(value="")
        self._metrics = Label(value="")
        self._metrics.native.setWordWrap(True)  # a long before → after line in a narrow dock
        super().__init__(widgets=[self._epochs, self._device, self._run, self._cancel,
                                  self._progress, self._status, self._metrics])
        self.curves = CurvesPlot()
        self.confusion = ConfusionPlot()
        self.native.layout().addWidget(self.curves)
        self.native.layout().addWidget(self.confusion)
        self.native.layout().addStretch(1)  # no gaps between the controls
        self.confusion.setVisible(False)  # no empty axes: shown with the metrics
        self._task_name = None
        self._run.changed.connect(self.train)
        self._cancel.changed.connect(self.cancel)
        self.worker = None
        self.rescore_worker = None
        self._result = None
        self._trained = None
        self._failure: str | None = None
        # opening the widget starts the warm-up (imports, GC freeze) before the first click
        warm_torch()

    def train(self):
        """Start fine-tuning; returns the worker (None when it could not start)."""
        from napari_cellcurator.core.pipeline import TrainRequest

        try:
            s = require_session(self._viewer)
            if s.project is None:
                raise RuntimeError("no project (read-only data?): nowhere to save models")
            init = s.project.models.current_dir()
            extra, cfg = [], None
            if init is not None:
                from napari_cellcurator.core.store.modelio import read_config

                cfg = read_config(init)
                extra = [p for p in cfg.hyperparameters.get("data", [])
                         if Path(p).exists() and Path(p).resolve() != s.data_path.resolve()]
            read_extra = fine_tune_read_extra(self._viewer, s, cfg)  # may cut tiles again
            items = s.training_items()
            if items.labelled.sum() < 2:
                raise RuntimeError("label at least 2 items first")
            warm_torch()
        except Exception as exc:  # shown to the user; nothing started
            notify_error(exc)
            return None
        self._old_version = s.project.models.current()
        hyper = cfg.hyperparameters if cfg is not None else {}
        req = TrainRequest(task=s.task_name, data=[str(s.data_path)], channels=s.channels,
                           epochs=int(self._epochs.value), device=self._device.value,
                           init=str(init) if init is not None else None,
                           arch=cfg.arch if cfg is not None else None,
                           batch_size=hyper.get("batch_size"), read_extra=read_extra)
        self._result, self._failure = None, None
        self._trained = s  # the session trained on (the viewer may load other data meanwhile)
        self.curves.clear()
        self._task_name = s.task_name
        self.curves.set_metric_name(metric_name(s.task_name))
        self.confusion.setVisible(False)  # the previous run's, until this one's metrics
        self._metrics.value = ""
        self._progress.max, self._progress.value = int(self._epochs.value), 0
        self._status.value = "starting…"
        before_args = (s.task_name, items.table, s.scores,
                       None if s.config is None else s.config.classes)
        self.worker = thread_worker(train_updates, start_thread=False)(
            req, items, self._old_version, extra, cfg, s.project.models, before_args)
        freeze_heap(self.worker)  # no full GC of the session's heap inside the worker
        self.worker.yielded.connect(self._on_update)
        self.worker.errored.connect(self._on_error)
        self.worker.aborted.connect(self._on_aborted)
        self.worker.finished.connect(self._on_finished)
        self._run.enabled, self._cancel.enabled = False, True
        self.worker.start()
        return self.worker

    def cancel(self) -> None:
        if self.worker is not None:
            self._status.value = "cancelling…"
            self.worker.quit()

    # ---- updates from the worker (main thread) --------------------------------------------
    def _on_update(self, u) -> None:
        from napari_cellcurator.core import training

        if isinstance(u, WorkerFailed):
            self._failure = str(u)
        elif isinstance(u, str):
            notify_info(u)
        elif isinstance(u, training.EpochStarted):
            self._status.value = f"epoch {u.epoch}/{u.epochs}"
        elif isinstance(u, training.StepDone):
            self._status.value = f"epoch {u.epoch}: step {u.step}/{u.steps} loss {u.loss:.3f}"
        elif isinstance(u, training.EpochDone):
            self._progress.value = u.epoch
            metric = epoch_metric(self._task_name, u.val_metrics)
            self.curves.add_epoch(u.epoch, u.train_loss, u.val_loss, metric)
        elif isinstance(u, training.TrainingFailed):
            self._failure = u.message
        elif isinstance(u, Published):
            self._result = u
            self._cancel.enabled = False  # saved and current: too late to cancel

    def _on_error(self, exc: Exception) -> None:
        self._failure = f"{type(exc).__name__}: {exc}"

    def _on_aborted(self) -> None:
        self._failure = "cancelled"

    def _on_finished(self) -> None:
        self._run.enabled, self._cancel.enabled = True, False
        keep = f"model {self._old_version or '(none)'} stays current"
        if self._result is not None:  # published, even if Cancel came too late
            self._publish(self._result)
            return
        self._trained = None
        if self._failure == "cancelled" or self._failure is None:
            self._status.value = f"cancelled; {keep}"
            notify_info(f"training cancelled; {keep}")
            self.done.emit("cancelled")
        elif self._failure is not None:
            self._status.value = f"failed; {keep}"
            notify_error(f"training failed: {self._failure}; {keep}")
            self.done.emit("failed")

    def _publish(self, result: Published) -> None:
        """Use the new (already saved and current) version and re-score every item."""
        from qtpy.QtCore import QTimer

        from napari_cellcurator._qt.predict_widget import start_prediction

        s, self._trained = self._trained, None
        if s is None or hub_for(self._viewer).session is not s:  # other data loaded since
            self._status.value = f"model {result.version} saved (for the previous data)"
            notify_info(f"model {result.version} is saved and current in the project of "
                        f"{s.data_path.name if s else 'the previous data'}; the data shown "
                        "now keep their model")
            self.done.emit("trained")
            return
        s.model, s.config, s.version = result.model, result.config, result.version
        s.classes = list(result.config.classes)
        self._status.value = f"model {result.version} saved; re-scoring…"
        hub_for(self._viewer).changed.emit("model")

        def after(_table, scores):
            if scores is None:  # re-scoring failed (said): the new model stays current
                self._status.value = f"model {result.version} is current; re-scoring failed"
                self.done.emit("trained")
                return
            now = labelled_metrics(s.task_name, s.training_items().table, scores, s.classes)
            # next event-loop turn: keep each piece of GUI-thread work short
            QTimer.singleShot(0, lambda: self._show_metrics(result.before, now, result.version))

        self.rescore_worker = start_prediction(self._viewer, s, self._device.value,
                                               on_done=after)
        self.rescore_worker.start()

    def _show_metrics(self, before: dict | None, after: dict | None, version: str) -> None:
        from qtpy.QtCore import QTimer

        prop = "A" in (after or before or {})  # proportions (mixture): A / MAE, no classes
        self._metrics.value = before_after_text(before, after, version, prop)
        self._status.value = f"model {version} is current"
        notify_info(f"new model {version}: {metrics_text(after, prop)} on your labels "
                    f"(was {metrics_text(before, prop)})")

        def plot_then_done():
            if after and after.get("confusion") and not prop:
                self.confusion.setVisible(True)
                self.confusion.show_metrics(after)
            self.done.emit("trained")

        QTimer.singleShot(0, plot_then_done)
