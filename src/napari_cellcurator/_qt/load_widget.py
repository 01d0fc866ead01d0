"""Load widget: a data set → layers with features, plus its project (journal + models)."""

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
    PushButton,
    SpinBox,
)
from napari.qt.threading import thread_worker

from napari_cellcurator._qt.common import (
    Session,
    WorkerFailed,
    add_layer_data,
    hub_for,
    notify_error,
    notify_info,
    open_project,
    real_viewer,
)

TASKS = ("auto", "celltype", "cellness", "mixture")


def _cellness_from_rois(movie: np.ndarray, source: str, masks: np.ndarray | None = None,
                        shapes: tuple | None = None):
    """Worker body: ROI items over a (T, Y, X) movie (numpy in and out), from a label image
    (``masks``) or from ``shapes`` = (vertices, shape types, layer name).

    Returns the items (``label_id``: the mask value, or shape index + 1) and, for shapes,
    the label image of them to curate on.
    """
    from napari_cellcurator.core.io.roi_masks import rois_from_masks
    from napari_cellcurator.core.io.rois import roiset_to_items
    from napari_cellcurator.core.io.shapes import label_image_of, rois_from_shapes

    try:
        if shapes is None:
            items = roiset_to_items(rois_from_masks(movie, masks, Path(source)))
            items.table["label_id"] = items.table["mask_id"]  # rows ↔ the user's values
            return items, None
        items = roiset_to_items(rois_from_shapes(movie, *shapes[:2], source, shapes[2]))
    except Exception as exc:  # shown by the widget (see WorkerFailed)
        return WorkerFailed(exc)
    items.table["label_id"] = items.table["shape_index"] + 1
    return items, label_image_of(items.meta["footprints"], items.table["label_id"],
                                 movie.shape[1:])


def _read(path: Path, task: str, channels: list[int] | None):
    """Worker body: read items with the task's reader (numpy in, numpy out)."""
    from napari_cellcurator.core.tasks import ReadOptions, get_task

    try:
        return get_task(task).read(path, ReadOptions(channels=channels))
    except Exception as exc:  # shown by the widget (see WorkerFailed)
        return WorkerFailed(exc)


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
                                     choices=self._layer_choices("points", "labels",
                                                                 "shapes"))
        self._crop = SpinBox(label="crop size", value=48, min=8, max=512)
        self._from_layers = PushButton(
            text="Use these layers",
            tooltip="image + Points/Labels/Shapes → celltype crops; a (T, Y, X) movie + "
                    "Labels or Shapes of ROIs → cellness candidates")
        self._status = Label(value="")
        super().__init__(widgets=[self._path, self._pick_folder, self._task, self._channels,
                                  self._button, self._image_layer, self._items_layer, self._crop,
                                  self._from_layers, self._status])
        self._button.changed.connect(self.load)
        self._from_layers.changed.connect(lambda: self.load_layers())
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(lambda _e: (self._image_layer.reset_choices(),
                                      self._items_layer.reset_choices()))
        self.worker = None

    def load(self, path: str | Path | None = None, task: str | None = None):
        """Read the data in a worker; the layers appear when it returns."""
        from napari_cellcurator._reader import detect_task

        path = Path(path or self._path.value)
        task = task or self._task.value
        if task == "auto":
            task = detect_task(path)
            if task is None:
                notify_error(f"{path}: not a format napari-cellcurator reads")
                return None
        text = self._channels.value.strip()
        try:
            channels = [int(c) for c in text.split(",")] if text else None
        except ValueError:
            notify_error(f"channels must be integers like 0,2 (got {text!r})")
            return None
        self._button.enabled = False
        return self._start(f"reading {path.name}…", _read, (path, task, channels),
                           lambda items: self._show(items, path, task, channels),
                           on_finished=lambda: setattr(self._button, "enabled", True))

    def _start(self, status: str, body, args: tuple, on_result, on_finished=None, **kwargs):
        """Run ``body(*args, **kwargs)`` (numpy in and out) in a worker; ``on_result`` gets
        what it returns on the GUI thread, a failure is shown. Everything is connected
        before the worker starts (a quick one could finish first)."""
        self._status.value = status
        self.worker = thread_worker(body, start_thread=False)(*args, **kwargs)
        self.worker.returned.connect(on_result)
        self.worker.errored.connect(self._failed)
        if on_finished is not None:
            self.worker.finished.connect(on_finished)
        self.worker.start()
        return self.worker

    def _layer_choices(self, *kinds: str):
        def choices(_widget=None):
            return [ly.name for ly in self._viewer.layers if ly._type_string in kinds]
        return choices

    def load_layers(self, image_layer=None, items_layer=None):
        """Items from layers already in the viewer; the points/labels layer becomes the item
        layer. Celltype: crops cut around the points (class from a ``class`` feature) or the
        labels. Cellness (task "cellness", or "auto" with a (T, Y, X) movie and a Labels or
        Shapes layer): one candidate per label or area shape, its trace read from the movie
        in a worker (shapes are curated on a new Labels layer of them)."""
        from napari_cellcurator.core.io import celltype_readers as cr

        try:
            image = image_layer or self._viewer.layers[self._image_layer.value]
            cells = items_layer or self._viewer.layers[self._items_layer.value]
            if self._wants_cellness(image, cells):
                return self._load_cellness_layers(image, cells)
            if cells._type_string == "shapes":
                return self._celltype_from_shapes(image, cells)
            data = np.asarray(image.data)
            if cells._type_string == "points":
                feats = cells.features
                labels = feats["class"].tolist() if "class" in feats else None
                items = cr.items_from_points(data, np.asarray(cells.data)[:, -2:], labels,
                                             int(self._crop.value))
            else:
                items = cr.items_from_labels_layer(data, np.asarray(cells.data))
            if cells._type_string == "points" and len(items) != len(cells.data):
                raise RuntimeError("the reader dropped points; cannot align items with them")
        except Exception as exc:  # shown, never raised into Qt
            notify_error(exc)
            return
        self._use_layers("celltype", items, image, cells)
        return None

    def _celltype_from_shapes(self, image, shapes) -> None:
        """One crop per area shape (class from a ``class`` feature), curated on a new
        Labels layer of the shapes."""
        from napari_cellcurator.core.io import celltype_readers as cr
        from napari_cellcurator.core.io.shapes import shapes_label_image

        data = np.asarray(image.data)
        frame = data.shape[:2] if image.rgb else data.shape[-2:]
        label_image, kept = shapes_label_image(
            [np.asarray(v) for v in shapes.data], list(shapes.shape_type), frame, shapes.name)
        feats = shapes.features
        classes = ({k + 1: feats["class"].iloc[k] for k in kept} if "class" in feats
                   else None)
        items = cr.items_from_labels_layer(data, label_image, classes, int(self._crop.value))
        cells = self._viewer.add_labels(label_image, name=f"{shapes.name} cells",
                                        scale=image.scale[-2:], translate=image.translate[-2:])
        self._use_layers("celltype", items, image, cells)

    def _wants_cellness(self, image, cells) -> bool:
        if self._task.value == "cellness":
            return True
        return (self._task.value == "auto" and cells._type_string in ("labels", "shapes")
                and image.ndim == 3 and not image.rgb)

    def _load_cellness_layers(self, image, cells):
        if cells._type_string not in ("labels", "shapes"):
            raise ValueError("cellness from layers needs a Labels or Shapes layer of ROIs")
        source = getattr(getattr(image, "source", None), "path", None) or image.name
        rois = ({"masks": np.asarray(cells.data)} if cells._type_string == "labels" else
                {"shapes": ([np.asarray(v) for v in cells.data], list(cells.shape_type),
                            cells.name)})
        return self._start("reading traces…", _cellness_from_rois,
                           (np.asarray(image.data), str(source)),
                           lambda out: self._cellness_ready(out, image, cells), **rois)

    def _cellness_ready(self, out, image, cells) -> None:
        if isinstance(out, WorkerFailed):
            self._failed(out)
            return
        items, label_image = out
        if label_image is not None:  # shapes: curate on a Labels layer of them, shapes kept
            cells = self._viewer.add_labels(label_image, name=f"{cells.name} ROIs",
                                            scale=image.scale[-2:],
                                            translate=image.translate[-2:])
        self._use_layers("cellness", items, image, cells)

    def _use_layers(self, task: str, items, image, cells) -> None:
        """Start a session on ``items`` with the user's ``cells`` layer as the item layer."""
        source = getattr(getattr(image, "source", None), "path", None)
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
        session = Session(task, items, source or image.name, project)
        cells.metadata.update(cellcurator_role="items", cellcurator_task=task)
        session.layer = cells
        session.refresh_layer()
        hub_for(self._viewer).set_session(session)
        self._status.value = f"{len(items)} {task} items from layers"

    def _failed(self, exc) -> None:
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
        layers = add_layer_data(self._viewer, layer_data_for(task, items, None, session.classes))
        session.layer = next(ly for ly in layers
                             if ly.metadata.get("cellcurator_role") == "items")
        session.refresh_layer()  # journal labels on top of the data's
        if task == "mixture":
            _resize_cache_for(layers)
        self._viewer.layers.selection.active = session.layer
        hub_for(self._viewer).set_session(session)
        self._status.value = f"{len(items)} items ({task})"
        notify_info(f"loaded {len(items)} {task} items from {path.name}")


def _resize_cache_for(layers) -> None:
    """Movies are read lazily: give dask's chunk cache room for a few hundred MB of frames."""
    from napari.utils import resize_dask_cache

    nbytes = sum(getattr(ly.data, "nbytes", 0) for ly in layers)
    resize_dask_cache(int(min(max(nbytes * 0.25, 256e6), 2e9)))
