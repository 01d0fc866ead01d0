"""Load widget: a data set → layers with features, plus its project (journal + models)."""

import threading
from pathlib import Path

import napari.viewer
import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
    SpinBox,
)
from napari.qt.threading import thread_worker

from napari_cellcurator._qt import layer_items
from napari_cellcurator._qt.common import (
    Session,
    WorkerFailed,
    add_layer_data,
    job_steps,
    notify_error,
    notify_info,
    open_project,
    real_viewer,
    warm_torch,
)
from napari_cellcurator._qt.curate_helpers import MADE, hide_previous_layers, publish_session
from napari_cellcurator._qt.kinds import layer_kind
from napari_cellcurator._qt.layer_items import layer_file, layer_source, placed_as
from napari_cellcurator._qt.model_reading import read_items, record_layer_read
from napari_cellcurator.core.io.points import POINT_CROP

TASKS = ("auto", "celltype", "cellness", "mixture")
#: the cells-layer choice for "no layer": cellness then finds candidates in the movie
NO_CELLS = "(none: find candidates)"


class LoadWidget(Container):
    """Choose a path (class folders, Suite2p/CaImAn output, Allen JSON, mixture manifest)."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = real_viewer(viewer)
        self._path = FileEdit(label="data", mode="r", tooltip="file or folder to load")
        # a file dialog picks files or folders, not both: most data sets are folders
        self._pick_folder = CheckBox(text="browse for a folder (class folders, Suite2p, "
                                          "frames)", value=False)
        self._pick_folder.changed.connect(
            lambda folder: setattr(self._path, "mode", "d" if folder else "r"))
        self._task = ComboBox(label="task", choices=TASKS, value="auto")
        self._channels = LineEdit(label="channels", value="",
                                  tooltip="comma-separated channel indices; empty = all")
        self._button = PushButton(text="Load")
        self._image_layer = ComboBox(label="image layer", choices=self._layer_choices("image"))
        self._items_layer = ComboBox(label="cells layer",
                                     choices=self._layer_choices("points", "labels", "shapes",
                                                                 none=NO_CELLS))
        self._crop = SpinBox(label="crop size", value=POINT_CROP, min=8, max=512,
                             tooltip="celltype crops around points (px): as the models the "
                                     "command line trains on frames + points")
        self._from_layers = PushButton(
            text="Use these layers",
            tooltip="image + Points/Labels/Shapes → celltype crops; a (T, Y, X) movie + "
                    "Labels or Shapes of ROIs → cellness candidates; task mixture: a movie "
                    "alone → tiles")
        self._status = Label(value="")
        self._progress = ProgressBar(value=0, min=0, max=1000, label="progress")
        self._cancel = PushButton(text="Cancel", enabled=False,
                                  tooltip="stop finding candidates / reading traces")
        super().__init__(widgets=[self._path, self._pick_folder, self._task, self._channels,
                                  self._button, self._image_layer, self._items_layer, self._crop,
                                  self._from_layers, self._progress, self._cancel,
                                  self._status])
        self.native.layout().addStretch(1)  # controls at the top, not spread over the tab
        self._button.changed.connect(lambda: self.load())
        self._cancel.changed.connect(self.cancel)
        self._cancel_event = threading.Event()
        # torch's import (~3 s) at opening, as Predict/Train do, not in the middle of a load
        warm_torch()
        self._from_layers.changed.connect(lambda: self.load_layers())
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(lambda _e: (self._image_layer.reset_choices(),
                                      self._items_layer.reset_choices()))
        self.worker = None

    def load(self, path: str | Path | None = None, task: str | None = None):
        """Read the data in a worker; the layers appear when it returns."""
        from napari_cellcurator._reader import detect_task, unknown_format

        path = Path(path or self._path.value)
        task = task or self._task.value
        if task == "auto":
            task = detect_task(path)
            if task is None:
                notify_error(unknown_format(path))
                return None
        text = self._channels.value.strip()
        try:
            channels = [int(c) for c in text.split(",")] if text else None
        except ValueError:
            notify_error(f"channels must be integers like 0,2 (got {text!r})")
            return None
        return self._start(f"reading {path.name}…", read_items, (path, task, channels),
                           lambda items: self._show(items, path, task, channels))

    def _start(self, status: str, job, args: tuple, on_result, **kwargs):
        """Run ``job(*args, progress=..., **kwargs)`` (numpy in and out) in a worker with
        progress and Cancel; ``on_result`` gets what it returns on the GUI thread (a
        :class:`WorkerFailed` included). Everything is connected before the worker starts
        (a quick one could finish first)."""
        self._status.value = status
        self._cancel_event = threading.Event()
        self.worker = thread_worker(job_steps, start_thread=False)(
            job, *args, cancel=self._cancel_event, **kwargs)
        self.worker.yielded.connect(self._progressed)
        self.worker.returned.connect(on_result)
        self.worker.errored.connect(self._failed)
        self.worker.finished.connect(self._job_done)
        self._progress.value, self._cancel.enabled = 0, True
        self._button.enabled = self._from_layers.enabled = False  # one job at a time
        self.worker.start()
        return self.worker

    def cancel(self) -> None:
        """Stop the running job at its next pass through the frames; data stay as they were."""
        self._cancel_event.set()
        self._status.value = "cancelling…"

    def _progressed(self, update) -> None:
        self._progress.value = round(1000 * update.fraction)
        self._status.value = f"{update.stage}… {update.fraction:.0%}"

    def _job_done(self) -> None:
        self._cancel.enabled = False
        self._button.enabled = self._from_layers.enabled = True
        self._progress.value = 0

    def _layer_choices(self, *kinds: str, none: str | None = None):
        def choices(_widget=None):
            names = [ly.name for ly in self._viewer.layers if layer_kind(ly) in kinds]
            return names + ([none] if none else [])
        return choices

    def load_layers(self, image_layer=None, items_layer=None):
        """Items from layers already in the viewer (see :mod:`.layer_items`), read in a
        worker (returned): the points / labels layer, or a new Labels layer of shapes,
        becomes the item layer. Cellness (task "cellness", or "auto" with a (T, Y, X) movie
        and Labels or Shapes) reads the traces; task "mixture" tiles the image layer alone."""
        try:
            image = image_layer or self._viewer.layers[self._image_layer.value]
            if self._task.value == "mixture":  # a movie alone: tiles over it
                data = image.data[0] if image.multiscale else image.data
                return self._start("tiling the movie…", layer_items.mixture_from_movie,
                                   (data, image.rgb, layer_source(image), image.name),
                                   lambda out: self._mixture_ready(out, image))
            if items_layer is None and self._items_layer.value in (None, NO_CELLS):
                if self._task.value != "cellness":
                    raise ValueError("choose the layer of cells (Points, Labels or Shapes); "
                                     "for a movie alone choose task cellness (find "
                                     "candidates) or mixture (tiles)")
                return self._load_cellness_layers(image, None)
            cells = items_layer or self._viewer.layers[self._items_layer.value]
            if self._wants_cellness(image, cells):
                return self._load_cellness_layers(image, cells)
            kind = layer_kind(cells)
            classes = (cells.features["class"].tolist()
                       if kind != "labels" and "class" in cells.features else None)
            # arrays, never layers, to the worker: copies of points / shapes (cheap; the user
            # may edit them meanwhile), a label image as it is (large; possibly lazy, read
            # in the worker)
            cells_data = ([np.array(v) for v in cells.data] if kind == "shapes" else
                          np.array(cells.data) if kind == "points" else cells.data)
            return self._start(
                "cutting crops…", layer_items.celltype_from_layer_data,
                (image.data, image.rgb, kind, cells_data, list(getattr(cells, "shape_type", [])),
                 cells.name, classes, int(self._crop.value)),
                lambda out: self._celltype_ready(out, image, cells))
        except Exception as exc:  # shown, never raised into Qt
            notify_error(exc)
            return None

    def _mixture_ready(self, out, image) -> None:
        if isinstance(out, WorkerFailed):
            self._failed(out)
            return
        items, (coords, kwargs, _) = out
        cells = self._viewer.add_points(coords, **kwargs, **placed_as(image, coords.shape[1]))
        self._use_layers("mixture", items, image, cells)

    def _celltype_ready(self, out, image, cells) -> None:
        if isinstance(out, WorkerFailed):
            self._failed(out)
            return
        items, label_image = out
        if label_image is not None:  # shapes: curated on a Labels layer of them
            cells = self._viewer.add_labels(label_image, name=f"{cells.name} cells",
                                            metadata={MADE: True}, **placed_as(image))
        self._use_layers("celltype", items, image, cells)

    def _wants_cellness(self, image, cells) -> bool:
        if self._task.value == "cellness":
            return True
        return (self._task.value == "auto" and layer_kind(cells) in ("labels", "shapes")
                and image.ndim == 3 and not image.rgb)

    def _load_cellness_layers(self, image, cells):
        """Candidates with traces in a worker: the ROIs of a Labels or Shapes layer, or with
        no cells layer, PCA/ICA candidates found in the movie."""
        kind = None if cells is None else layer_kind(cells)
        if kind not in (None, "labels", "shapes"):
            raise ValueError("cellness from layers needs a Labels or Shapes layer of ROIs, "
                             f"or {NO_CELLS!r}")
        rois = ({} if cells is None else {"masks": np.asarray(cells.data)} if kind == "labels"
                else {"shapes": ([np.asarray(v) for v in cells.data], list(cells.shape_type),
                                 cells.name)})
        return self._start("reading traces…", layer_items.cellness_from_rois,
                           (image.data, layer_source(image)),
                           lambda out: self._cellness_ready(out, image, cells), **rois)

    def _cellness_ready(self, out, image, cells) -> None:
        if isinstance(out, WorkerFailed):
            self._failed(out)
            return
        items, label_image = out
        if label_image is not None:  # shapes / found candidates: curate on a Labels layer
            name = f"{cells.name} ROIs" if cells is not None else f"{image.name} candidates"
            cells = self._viewer.add_labels(label_image, name=name, metadata={MADE: True},
                                            **placed_as(image))
        self._use_layers("cellness", items, image, cells)

    def _use_layers(self, task: str, items, image, cells) -> None:
        """Start a session on ``items`` with the user's ``cells`` layer as the item layer."""
        source = layer_file(image)
        project = None
        try:
            if source:
                project = open_project(source)
            else:  # made in this session: a project found again by the image's content
                from napari_cellcurator.core.store.project import Project

                project = Project.for_array(image.name, image.data)
                notify_info(f"labels of {image.name!r} are saved in {project.folder}")
        except Exception as exc:  # read-only location: curate without saving
            notify_error(f"no project for {source or image.name} ({exc}); labels will not "
                         "be saved")
        session = Session(task, record_layer_read(items, task, self._crop.value),
                          source or image.name, project)
        cells.metadata.update(cellcurator_role="items", cellcurator_task=task)
        session.layer = cells
        session.refresh_layer()
        hide_previous_layers(self._viewer, keep=(image, cells))  # the data shown before
        publish_session(self._viewer, session)
        self._status.value = f"{len(items)} {task} items from layers"

    def _failed(self, exc) -> None:
        from napari_cellcurator.core.progress import Cancelled

        if isinstance(getattr(exc, "error", exc), Cancelled):
            self._status.value = "cancelled"
            notify_info("loading cancelled; nothing was changed")
            return
        self._status.value = "failed"
        notify_error(exc)

    def _show(self, items, path: Path, task: str, channels=None) -> None:
        from napari_cellcurator._qt.layers import layer_data_for

        if isinstance(items, WorkerFailed):
            self._failed(items)
            return
        try:
            project = open_project(path)
        except Exception as exc:  # a read-only location still lets the user look at data
            notify_error(f"no project next to {path} ({exc}); labels will not be saved")
            project = None
        session = Session(task, items, path, project)
        session.channels = channels
        hide_previous_layers(self._viewer)  # the data shown before: hidden, not deleted
        layers = add_layer_data(self._viewer, layer_data_for(task, items, None, session.classes))
        session.layer = next(ly for ly in layers
                             if ly.metadata.get("cellcurator_role") == "items")
        session.refresh_layer()  # journal labels on top of the data's
        if task == "mixture":
            from napari_cellcurator._reader import bound_dask_cache

            # movies are read lazily: room in dask's chunk cache for a few hundred MB
            bound_dask_cache(sum(getattr(ly.data, "nbytes", 0) for ly in layers))
        self._viewer.layers.selection.active = session.layer
        publish_session(self._viewer, session)
        self._status.value = f"{len(items)} items ({task})"
        notify_info(f"loaded {len(items)} {task} items from {path.name}")

