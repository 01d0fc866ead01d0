"""Find cells widget: candidate cells on an image without positions, as a Points or Labels
layer ready for Load → *Use these layers* (celltype: image + cells → crops to classify)."""

import napari.viewer
import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton, SpinBox
from napari.qt.threading import thread_worker

from napari_cellcurator._qt.common import notify_error, notify_info, real_viewer
from napari_cellcurator._qt.kinds import layer_kind

METHODS = ("watershed", "log")
OUTPUTS = ("Points", "Labels")
AUTO = "auto"


def find_cells(data, rgb: bool, diameter: float, method: str, channel: int | None
               ) -> tuple[np.ndarray, np.ndarray]:
    """The worker's job (numpy in, numpy out): the cells of an image layer's data.

    Parameters
    ----------
    data
        The layer's data: RGB(A) ``(H, W, 3|4)`` when ``rgb``, else 2-D or ``(C, H, W)``.
    rgb
        The layer's ``rgb`` flag.
    diameter, method, channel
        As :func:`~napari_cellcurator.core.data.proposals.propose_cells`.

    Returns
    -------
    tuple or str
        Centres ``(N, 2)`` (row, col) and a label image ``(H, W)``; or, when nothing stands
        out, why (an outcome shown to the user, not a failure; a worker returning an
        exception would raise it).
    """
    from napari_cellcurator.core.data.proposals import EmptyFrameError, propose_cells

    image = np.asarray(data)
    if rgb and image.ndim == 3:  # a napari RGB layer is (H, W, 3|4) whatever its size
        image = np.moveaxis(image[..., :3], -1, 0)  # alpha dropped
    elif image.ndim == 3:  # channels (or frames), not a colour photograph: never "green"
        image = image.astype(np.float32)
    try:
        return propose_cells(image, float(diameter), method, channel)
    except EmptyFrameError as exc:
        return exc.problem


class ProposeWidget(Container):
    """Choose an image layer, the cells' diameter, the method and channel; *Find cells*
    adds ``<image> cells`` (Points, or Labels) aligned with the image."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = real_viewer(viewer)
        self._image = ComboBox(label="image layer", choices=self._image_choices)
        self._diameter = SpinBox(label="cell diameter (px)", value=40, min=2, max=2000,
                                 tooltip="a typical cell's diameter in the image's pixels")
        self._method = ComboBox(label="method", choices=METHODS, value="watershed",
                                tooltip="watershed: threshold + split touching cells; "
                                        "log: Laplacian-of-Gaussian blobs")
        self._channel = ComboBox(label="channel", choices=self._channel_choices,
                                 tooltip="auto: green for colour images, otherwise the "
                                         "channel with the most contrast")
        self._output = ComboBox(label="output", choices=OUTPUTS, value="Points")
        self._button = PushButton(text="Find cells")
        self._status = Label(value="")
        super().__init__(widgets=[self._image, self._diameter, self._method, self._channel,
                                  self._output, self._button, self._status])
        self._button.changed.connect(lambda: self.run())
        self._image.changed.connect(lambda _v: self._channel.reset_choices())
        for event in (self._viewer.layers.events.inserted, self._viewer.layers.events.removed):
            event.connect(lambda _e: (self._image.reset_choices(),
                                      self._channel.reset_choices()))
        self.worker = None

    def _image_choices(self, _widget=None) -> list[str]:
        return [ly.name for ly in self._viewer.layers if layer_kind(ly) == "image"]

    def _layer(self):
        name = self._image.value
        return self._viewer.layers[name] if name in self._viewer.layers else None

    def _channel_choices(self, _widget=None) -> list[str]:
        layer = self._layer()
        if layer is None:
            return [AUTO]
        shape = layer.data[0].shape if layer.multiscale else layer.data.shape
        n = shape[-1] if layer.rgb else (shape[0] if len(shape) == 3 else 1)
        return [AUTO] + [str(i) for i in range(n if n > 1 else 0)]

    def run(self, image_layer=None):
        """Find cells in a worker (returned); the layer appears when it returns."""
        try:
            image = image_layer or self._layer()
            if image is None:
                raise ValueError("choose an image layer")
            data = image.data[0] if image.multiscale else image.data
            if data.ndim - int(image.rgb) not in (2, 3):
                raise ValueError(f"{image.name} has shape {data.shape}: Find cells needs a "
                                 "2-D, RGB or (C, H, W) image")
            channel = None if self._channel.value in (None, AUTO) else int(self._channel.value)
            args = (data, bool(image.rgb), float(self._diameter.value), self._method.value,
                    channel)
        except Exception as exc:  # shown, never raised into Qt
            notify_error(exc)
            return None
        output = self._output.value
        self._status.value = f"finding cells in {image.name}…"
        self._button.enabled = False
        self.worker = thread_worker(find_cells, start_thread=False)(*args)
        self.worker.returned.connect(lambda out: self._add(out, image, output))
        self.worker.errored.connect(self._failed)
        self.worker.finished.connect(lambda: setattr(self._button, "enabled", True))
        self.worker.start()
        return self.worker

    def _add(self, out, image, output: str) -> None:
        if isinstance(out, str):  # nothing stands out: said, no layer of zero cells
            self._status.value = "no cells found"
            notify_info(f"{image.name}: {out}")
            return
        centres, labels = out
        name = f"{image.name} cells"
        # the image's last two axes: a (C, H, W) layer's channel axis is not the cells'
        place = {"scale": tuple(image.scale[-2:]), "translate": tuple(image.translate[-2:])}
        if output == "Labels":
            self._viewer.add_labels(labels, name=name, **place)
        else:
            size = max(3.0, float(self._diameter.value) / 4)
            self._viewer.add_points(np.asarray(centres, dtype=float).reshape(-1, 2),
                                    name=name, size=size, face_color="yellow", **place)
        self._status.value = f"{len(centres)} cells in {name}"
        notify_info(f"{len(centres)} cells found in {image.name}: Load → 'Use these "
                    "layers' turns them into crops to classify")

    def _failed(self, exc) -> None:
        self._status.value = "failed"
        notify_error(exc)
