"""Layer data for the cellness (ROI footprints) and mixture (movie + proportion map) tasks."""

from __future__ import annotations

import numpy as np
import pandas as pd

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
        "name": f"{name} candidates", "features": feats, "opacity": 0.6,
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
    # map cell (i, j) sits on the centre of tile (i, j); map plane k on the frames of the k-th
    # snippet start (t0_k .. t0_k + length - 1), so it changes with the time slider
    starts = np.unique(pred["t0"]) if "t0" in pred.columns else np.array([0])
    t_step = float(np.diff(starts).min()) if len(starts) > 1 else 1.0
    length = int(items.arrays["frames"].shape[1])
    scale = (t_step, stride, stride)
    translate = (float(starts[0]) + (length - 1) / 2 if len(starts) > 1 else 0.0,
                 tile / 2 - 0.5, tile / 2 - 0.5)
    # movie pixels → world: the tiles' layer carries the movie's calibration (frames in
    # minutes, pixels in µm)
    from napari_cellcurator._qt.layer_items import layer_calibration

    own_scale, own_translate = layer_calibration(session.layer)
    scale = tuple(np.asarray(scale) * own_scale)
    translate = tuple(np.asarray(translate) * own_scale + own_translate)
    if movie.ndim == 2 or pmap.shape[0] == 1:
        pmap, scale, translate = pmap[0], scale[1:], translate[1:]
    name = "proportion map"
    if name in viewer.layers:
        viewer.layers[name].data = pmap
        return
    viewer.add_image(pmap, name=name, scale=scale, translate=translate, colormap="PiYG",
                     contrast_limits=(0.0, 1.0), opacity=0.5,
                     metadata={"cellcurator_role": "proportion_map"})

