"""Layer data for the cellness (ROI footprints) and mixture (movie + proportion map) tasks."""

from __future__ import annotations

import numpy as np
import pandas as pd

from napari_cellcurator._qt.kinds import layer_kind
from napari_cellcurator._qt.layers import item_features
from napari_cellcurator.core.io.items import ItemSet


def cellness_layer_data(items: ItemSet, predictions: pd.DataFrame | None = None,
                        classes: list[str] | None = None, name: str = "rois") -> list[tuple]:
    """Mean image + footprints as a Labels layer (row k ↔ label k + 1) with features."""
    from napari.utils.colormaps import DirectLabelColormap

    from napari_cellcurator._qt.layers import labels_colormap_dict
    from napari_cellcurator.core.io.rois import footprints_to_labels

    classes = classes or list(items.meta.get("classes") or ["not_cell", "cell"])
    labels = footprints_to_labels(items)
    feats = item_features(items.table, predictions)
    ids = np.arange(1, len(items) + 1)
    feats.insert(0, "index", ids)  # napari looks a label's row up by this column
    out = []
    mean = items.meta.get("mean_image")
    if mean is not None:
        out.append((np.asarray(mean, dtype=np.float32), {
            "name": f"{name} mean image", "colormap": "gray",
            "metadata": {"cellcurator_role": "image"}}, "image"))
    out.append((labels, {
        "name": f"{name} candidates", "features": feats, "opacity": 0.7,
        "colormap": DirectLabelColormap(color_dict=labels_colormap_dict(feats, ids, classes)),
        "metadata": {"cellcurator_role": "items", "cellcurator_task": "cellness",
                     "cellcurator_path": items.meta.get("path"), "classes": classes},
    }, "labels"))
    return out


def _movie_of(items: ItemSet):
    movie = items.meta.get("movie")
    if movie is None:
        frames = items.arrays["frames"]  # (N, L, S, S): show the snippets as a stack
        return frames[:, 0] if frames.ndim == 4 else frames
    return movie


def snippet_middles(items: ItemSet) -> np.ndarray:
    """Middle frame of each snippet (movie frames; 0-based; its start frame ``t0`` + half
    its length, rounded down)."""
    length = int(items.arrays["frames"].shape[1])
    t0 = (items.table["t0"].to_numpy(dtype=float) if "t0" in items.table.columns
          else np.zeros(len(items)))
    return t0 + (length - 1) // 2


def mixture_layer_data(items: ItemSet, predictions: pd.DataFrame | None = None,
                       name: str = "mixture") -> list[tuple]:
    """The movie (lazy where the reader kept it lazy) and a Points layer at tile centres."""
    movie = _movie_of(items)
    feats = item_features(items.table, predictions)
    layers: list[tuple] = [(movie, {"name": f"{name} movie", "colormap": "gray",
                                    "metadata": {"cellcurator_role": "image"}}, "image")]
    t = items.table
    if "y" in t.columns and "x" in t.columns:
        coords = t[["y", "x"]].to_numpy(dtype=float)
        if items.meta.get("movie") is not None:  # (middle frame, y, x): a snippet's point
            coords = np.column_stack([snippet_middles(items), coords])  # on its own frames
        layers.append((coords, {
            "name": f"{name} tiles", "features": feats, "size": 8, "face_color": "yellow",
            "metadata": {"cellcurator_role": "items", "cellcurator_task": "mixture",
                         "cellcurator_path": items.meta.get("path"),
                         "classes": list(items.meta.get("classes", ["type_a", "type_b"]))},
        }, "points"))
    else:  # manifest snippets without positions: one point per snippet slice
        coords = np.stack([np.arange(len(t)), np.full(len(t), movie.shape[-2] / 2),
                           np.full(len(t), movie.shape[-1] / 2)], axis=1)
        layers.append((coords, {
            "name": f"{name} snippets", "features": feats, "size": 8,
            "metadata": {"cellcurator_role": "items", "cellcurator_task": "mixture",
                         "cellcurator_path": items.meta.get("path"),
                         "classes": list(items.meta.get("classes", ["type_a", "type_b"]))},
        }, "points"))
    return layers


def add_proportion_map(viewer, session) -> None:
    """Proportion map of the predicted tiles, aligned over the movie (scale/translate)."""
    from napari_cellcurator.core.tasks import mixture

    items, pred = session.items, session.predictions
    movie = _movie_of(items)
    tile = int(items.meta.get("tile", items.arrays["frames"].shape[-1]))
    stride = int(items.meta.get("stride", tile))
    if "y" not in items.table.columns:
        return
    pmap = mixture.proportion_map(pred, movie.shape, tile, stride)
    pmap = np.asarray(pmap, dtype=np.float32)
    grid = mixture.map_grid(pred, tile, stride)  # a manifest region's grid starts at y0, x0
    # map cell (i, j) sits on the centre of tile (i, j); map plane k on the middle frame of
    # the k-th snippet start, as the tiles' points, so it changes with the time slider
    starts = np.unique(pred["t0"]) if "t0" in pred.columns else np.array([0])
    t_step = float(np.diff(starts).min()) if len(starts) > 1 else 1.0
    length = int(items.arrays["frames"].shape[1])
    scale = (t_step, grid.step, grid.step)
    translate = (float(starts[0]) + (length - 1) // 2, grid.origin_y + tile / 2 - 0.5,
                 grid.origin_x + tile / 2 - 0.5)
    # movie pixels → world: the tiles' layer carries the movie's calibration (frames in
    # minutes, pixels in µm), its time axis included (3-D points: middle frame, y, x)
    from napari_cellcurator._qt.layer_items import layer_calibration

    own_scale, own_translate = layer_calibration(session.layer)
    scale = tuple(np.asarray(scale) * own_scale)
    translate = tuple(np.asarray(translate) * own_scale + own_translate)
    if movie.ndim == 2 or pmap.shape[0] == 1:
        pmap, scale, translate = pmap[0], scale[1:], translate[1:]
    name = "proportion map"
    old = viewer.layers[name] if name in viewer.layers else None
    show_tiles_on_their_frames(viewer, session)
    if old is not None and old.ndim == pmap.ndim:  # reused: placed anew (another movie)
        old.data, old.scale, old.translate = pmap, scale, translate
        return
    if old is not None:  # 2-D ↔ 3-D: a new layer in the old one's place
        viewer.layers.remove(old)
    viewer.add_image(pmap, name=name, scale=scale, translate=translate, colormap="PiYG",
                     contrast_limits=(0.0, 1.0), opacity=0.5, projection_mode="none",
                     metadata={"cellcurator_role": "proportion_map"})


def show_tiles_on_their_frames(viewer, session) -> None:
    """Show each tile's point (on its snippet's middle frame) on every frame of its snippet.

    napari 0.9 shows a point off its own frame only within a thick slice: the time axis
    gets a slice as thick as a snippet (``dims.thickness``, half a snippet either side, so
    the next snippet's points stay hidden), the tiles project it (``projection_mode``
    ``"all"``), and the viewer's time-lapse images show their own frame, not a mean over
    the slice (``projection_mode`` ``"none"``)."""
    layer = session.layer
    if layer is None or layer_kind(layer) != "points" or layer.ndim < 3 or \
            "frames" not in session.items.arrays:
        return
    from napari_cellcurator._qt.layer_items import layer_calibration

    length = int(session.items.arrays["frames"].shape[1])
    axis = viewer.dims.ndim - layer.ndim  # a layer's axes are the viewer's last ones
    scale, _ = layer_calibration(layer, layer.ndim)
    for other in viewer.layers:
        if layer_kind(other) == "image" and other.ndim >= layer.ndim:
            other.projection_mode = "none"
    thickness = list(viewer.dims.thickness)
    thickness[axis] = (length - 1) * float(scale[0])
    viewer.dims.thickness = tuple(thickness)
    layer.projection_mode = "all"


#: an item's neighbourhood on screen: this many item diameters fill the canvas's short side
ITEMS_ACROSS = 4.0
#: the canvas's short side in screen pixels where napari does not say (before napari 0.9)
CANVAS_SIDE = 600.0


def item_diameter(session, row: int) -> float:
    """Diameter of item ``row`` in its layer's data pixels: an ROI's from its area, a
    point's size, else the side of the crop the model sees."""
    table, layer = session.items.table, session.layer
    if "npix" in table.columns and np.isfinite(float(table["npix"].iloc[row])):
        return 2.0 * float(np.sqrt(float(table["npix"].iloc[row]) / np.pi))
    if layer is not None and layer_kind(layer) == "points" and len(layer.size) > row:
        return float(np.asarray(layer.size)[row])
    image = session.items.arrays.get("image")
    return float(image.shape[-1]) if image is not None else 48.0


def item_zoom(viewer, session, row: int, scale) -> float:
    """Zoom at which :data:`ITEMS_ACROSS` item diameters (at least the model's crop) fill
    the canvas's short side, but never less than napari's fit-all zoom (a small image is
    not shrunk to show one item).

    The fit zoom is what ``viewer.fit_to_view()`` sets (public; the caller then moves the
    camera onto the item); the canvas size is ``viewer.canvas.viewbox_size`` (public since
    napari 0.9; before, :data:`CANVAS_SIDE` screen pixels)."""
    camera = _camera(viewer)
    canvas = getattr(viewer, "canvas", None)
    side = (float(min(canvas.viewbox_size(viewer.layers))) if canvas is not None
            else CANVAS_SIDE)
    (viewer.fit_to_view if hasattr(viewer, "fit_to_view") else viewer.reset_view)()
    fit = float(camera.zoom)
    image = session.items.arrays.get("image")  # at least the crop the model sees
    crop = float(image.shape[-1]) if image is not None else 0.0
    window = max(ITEMS_ACROSS * item_diameter(session, row), crop) * float(scale[-1])
    return max(fit, side / max(window, 1e-9))


def _camera(viewer):
    from napari_cellcurator._qt.common import camera_of

    return camera_of(viewer)


def centre_on_item(viewer, session, row: int) -> None:
    """Centre and zoom the view on item ``row`` (the item layer's data pixels → world: µm on
    a calibrated image; zoom: :func:`item_zoom`); a mixture snippet's point (middle frame,
    y, x) also sets the time slider to its frame, so the curator sees the frames being
    labelled."""
    from napari_cellcurator._qt.layer_items import layer_calibration

    layer = session.layer
    centre = np.asarray(session.centre_of(row), dtype=float)
    scale, translate = layer_calibration(layer, len(centre))
    zoom = item_zoom(viewer, session, row, scale)
    camera = _camera(viewer)
    camera.center = tuple(centre * scale + translate)
    camera.zoom = zoom
    if session.task_name == "mixture" and layer_kind(layer) == "points" and layer.ndim > 2:
        show_tiles_on_their_frames(viewer, session)
        world = np.asarray(layer.data_to_world(layer.data[row]), dtype=float)
        first = viewer.dims.ndim - layer.ndim  # a layer's axes are the viewer's last ones
        for axis, value in enumerate(world[:-2]):
            viewer.dims.set_point(first + axis, float(value))
