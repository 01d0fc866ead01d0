"""Explain widget: occlusion / Grad-CAM / activations of the current item, over the item."""

import weakref

import napari.viewer
import numpy as np
from magicgui.widgets import ComboBox, Container, Label, ProgressBar, PushButton, SpinBox
from napari.qt.threading import thread_worker

from napari_cellcurator._qt.common import (
    WorkerFailed,
    guarded,
    hub_for,
    notify_error,
    real_viewer,
    require_session,
    warm_torch,
    worker_setup,
)

METHODS = ("occlusion", "gradcam", "activations")
PREDICTED = "(predicted class)"


def signed_map_colormap():
    """Blue (against) → transparent (0) → red (for): opacity rises with |value|, so the
    explanation never paints a pale square over the item's neighbours."""
    from napari.utils import Colormap

    return Colormap([[0.1, 0.3, 1.0, 1.0], [0.1, 0.3, 1.0, 0.0], [1.0, 0.1, 0.1, 0.0],
                     [1.0, 0.1, 0.1, 1.0]], controls=[0.0, 0.5, 0.5, 1.0],
                    name="cellcurator_signed", interpolation="linear")


@guarded
def explain_gen(model, task_name, batch, method, target, patch, stride, classes):
    """Worker body: yields ``(fraction, partial map)``; returns the result dict."""
    from napari_cellcurator.core.explain.api import explain_iter

    worker_setup()
    return (yield from explain_iter(model, task_name, batch, method, target=target,
                                    patch=patch, stride=stride, classes=classes,
                                    batch_size=progressive_batch(batch, task_name, patch,
                                                                 stride)))


def progressive_batch(batch, task_name: str, patch, stride, updates: int = 8) -> int:
    """Occluded copies per forward pass so the map fills in over about ``updates`` steps."""
    from napari_cellcurator.core.explain.occlusion import default_patch, positions
    from napari_cellcurator.core.tasks import get_task

    x = batch[get_task(task_name).explain_input]
    h, w = int(x.shape[-2]), int(x.shape[-1])
    patch = patch or default_patch(min(h, w))[0]
    stride = stride or max(1, patch // 2)
    n = len(positions(h, min(patch, h), stride)) * len(positions(w, min(patch, w), stride))
    return max(8, -(-n // updates))


def item_scale_translate(session, row: int, map_shape) -> tuple[tuple, tuple]:
    """Scale/translate placing a map of ``map_shape`` over item ``row`` as displayed."""
    from napari_cellcurator._qt.layers import mosaic_positions
    from napari_cellcurator.core.explain.align import map_scale_translate
    from napari_cellcurator.core.explain.output import item_placement

    items, layer = session.items, session.layer
    # the item layer's own calibration (µm per pixel, offset), as the image under it
    from napari_cellcurator._qt.layer_items import layer_calibration

    scale, translate = layer_calibration(layer, 2)
    placed = {"layer_scale": tuple(scale), "layer_translate": tuple(translate)}
    if items.meta.get("mosaic"):
        size = items.arrays["image"].shape[-1]
        y0, x0 = mosaic_positions(len(items), size)[0][row]
        return map_scale_translate(y0, x0, (size, size), map_shape, **placed)
    prep = session.config.preprocessing if session.config is not None else {}
    place = item_placement(items.table.iloc[row], map_shape, prep)
    if "scale" not in place:
        return (1.0, 1.0), (0.0, 0.0)
    return map_scale_translate(place["y0"], place["x0"], place["crop_shape"], map_shape,
                               **placed)


class ExplainWidget(Container):
    """Method, target class, occlusion patch/stride, Explain / Cancel."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = real_viewer(viewer)
        self._method = ComboBox(label="method", choices=METHODS, value="occlusion")
        # choices from a function: napari's reset_choices (on layer events) keeps them
        self._target = ComboBox(label="target", choices=self._target_choices, value=PREDICTED)
        self._patch = SpinBox(label="patch (0 = auto)", value=0, min=0, max=256)
        self._stride = SpinBox(label="stride (0 = auto)", value=0, min=0, max=256)
        self._run = PushButton(text="Explain current item")
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(value=0, min=0, max=100, label="progress")
        self._status = Label(value="")
        super().__init__(widgets=[self._method, self._target, self._patch, self._stride,
                                  self._run, self._cancel, self._progress, self._status])
        # a button's changed(False) must not reach explain() as row 0
        self._run.changed.connect(lambda: self.explain())
        self._cancel.changed.connect(lambda: self.worker is not None and self.worker.quit())
        hub_for(viewer).changed.connect(self._on_hub)
        self._on_hub("session")
        self.worker = None
        self.layer = None

    def _target_choices(self, _widget=None) -> list[str]:
        s = hub_for(self._viewer).session
        return [PREDICTED] if s is None else [PREDICTED, *s.classes]

    def _on_hub(self, _what: str) -> None:
        self._target.reset_choices()

    def current_row(self, session) -> int:
        """The item the Curate widget shows, else the selected point, else the first item."""
        if getattr(session, "current", None) is not None:
            return int(session.current)
        sel = getattr(session.layer, "selected_data", None)
        return int(min(sel)) if sel else 0

    def explain(self, row: int | None = None):
        """Explain item ``row`` (default: the current one) in a worker; returns the worker."""
        try:
            s = require_session(self._viewer)
            if s.model is None:
                raise RuntimeError("predict first (Predict widget) so a model is loaded")
            warm_torch()
            from napari_cellcurator.core.tasks import get_task

            row = self.current_row(s) if row is None else int(row)
            task = get_task(s.task_name)
            batch = task.make_batch(s.items, np.array([row]), s.config.preprocessing,
                                    augment=False, rng=np.random.default_rng(0))
        except Exception as exc:  # shown, never raised into Qt
            notify_error(exc)
            return None
        target = None if self._target.value == PREDICTED else s.classes.index(self._target.value)
        self.layer = None
        self.worker = thread_worker(explain_gen, start_thread=False)(
            s.model, s.task_name, batch, self._method.value, target,
            self._patch.value or None, self._stride.value or None, list(s.classes))
        # weakly: napari keeps finished workers' connections for the window's life
        ref = weakref.ref(s)
        self.worker.yielded.connect(lambda v: self._on_yield(ref(), row, v))
        self.worker.returned.connect(
            lambda res: res is not None and self._show(ref(), row, res["map"], 1.0, res))
        self.worker.errored.connect(notify_error)
        self.worker.finished.connect(self._done)
        self._run.enabled, self._cancel.enabled = False, True
        self.worker.start()
        return self.worker

    def _on_yield(self, session, row: int, value) -> None:
        if session is None:  # its data were closed meanwhile
            return
        if isinstance(value, WorkerFailed):
            notify_error(value)
            self._status.value = "failed"
            return
        self._show(session, row, value[1], value[0])

    def _done(self) -> None:
        self._run.enabled, self._cancel.enabled = True, False

    def _show(self, session, row: int, map_, fraction: float, result: dict | None = None):
        """Add or update the explanation layer (progressively for occlusion)."""
        if session is None or session is not hub_for(self._viewer).session:
            return  # other data are shown now: the map would sit over the wrong item
        map_ = np.nan_to_num(np.asarray(map_, dtype=np.float32))
        self._progress.value = int(round(100 * fraction))
        scale, translate = item_scale_translate(session, row, map_.shape)
        if map_.ndim == 3:  # activations: a stack of feature maps
            scale, translate = (1.0, *scale), (0.0, *translate)
        name = "activations" if map_.ndim == 3 else "explanation"
        lim = float(np.abs(map_).max()) or 1.0
        limits = (-lim, lim) if map_.ndim == 2 else (float(map_.min()), float(map_.max()) or 1.0)
        if self.layer is not None and self.layer in self._viewer.layers and \
                self.layer.data.shape == map_.shape:
            self.layer.data = map_
            self.layer.contrast_limits = limits
        else:
            for old in [ly for ly in self._viewer.layers if ly.name == name]:
                self._viewer.layers.remove(old)
            self.layer = self._viewer.add_image(
                map_, name=name, scale=scale, translate=translate, opacity=0.8,
                colormap=signed_map_colormap() if map_.ndim == 2 else "magma",
                contrast_limits=limits, blending="translucent",
                metadata={"cellcurator_role": "explanation"})
        if result is not None:
            session.explanation = {"row": row, **result}
            hub_for(self._viewer).changed.emit("explanation")
            what = (result.get("target_name") or result.get("target")
                    or ("the proportion" if session.task_name == "mixture" else "the prediction"))
            self._status.value = (f"{result['method']} for {what}: "
                                  f"score {result.get('score', float('nan')):.3f}")
