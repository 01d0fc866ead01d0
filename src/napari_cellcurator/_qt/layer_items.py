"""Items from layers already in the viewer (Load → *Use these layers*), numpy in and out.

The Load widget hands these functions the layers' data (never the layers, so the cellness
one can run in a worker) and turns what they return into a session:

- an image + Points (class from a ``class`` feature) / Labels / Shapes → celltype crops;
- a ``(T, Y, X)`` movie + Labels / Shapes of ROIs, or alone (PCA/ICA candidates) →
  cellness candidates with traces;
- a movie alone (task mixture) → tiles over it, read lazily from the layer's data.

Shapes are curated on a Labels layer of them (shape ``k`` ↔ value ``k + 1``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from napari_cellcurator._qt.common import WorkerFailed
from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.items import ItemSet


def layer_file(layer) -> str | None:
    """The file a layer was read from (None for a layer made in the session)."""
    return getattr(getattr(layer, "source", None), "path", None)


def layer_source(layer) -> str:
    """The file a layer was read from, else its name (names ids and the project)."""
    return str(layer_file(layer) or layer.name)


def layer_calibration(layer, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Scale and translate of ``layer``'s last ``k`` axes (1 and 0 where it has fewer, or
    without a layer): its pixels → world (µm, minutes)."""
    scale, translate = np.ones(k), np.zeros(k)
    if layer is not None:
        n = min(k, layer.ndim)
        scale[-n:] = np.asarray(layer.scale, dtype=float)[-n:]
        translate[-n:] = np.asarray(layer.translate, dtype=float)[-n:]
    return scale, translate


def placed_as(image, k: int = 2) -> dict:
    """Scale and translate of a new ``k``-D layer drawn over ``image`` (its last ``k``
    axes: 2 for cells in a frame, 3 for (t, y, x) points on a movie)."""
    return {"scale": image.scale[-k:], "translate": image.translate[-k:]}


def cellness_from_rois(movie, source: str, masks: np.ndarray | None = None,
                       shapes: tuple | None = None, progress=None):
    """Worker body: ROI items over a (T, Y, X) movie (numpy, or a lazy layer's dask array:
    read here, off the GUI thread), from a label image (``masks``), from
    ``shapes`` = (vertices, shape types, layer name), or with neither, PCA/ICA candidates
    found in the movie (as for a movie file without ROIs beside it). ``progress(fraction,
    stage)`` follows the passes through the movie.

    Returns ``(items, label image or None)`` (``label_id``: the mask value, else the item
    row + 1 in the label image to curate on), or :class:`WorkerFailed`.
    """
    from napari_cellcurator.core.io.pcaica import extract_candidates
    from napari_cellcurator.core.io.roi_masks import rois_from_masks
    from napari_cellcurator.core.io.rois import footprints_to_labels, roiset_to_items
    from napari_cellcurator.core.io.shapes import label_image_of, rois_from_shapes

    try:
        # a lazy (dask) layer is read here, off the GUI thread: whole when small, else in
        # blocks of frames (core.io.movie_stream)
        if masks is not None:
            items = roiset_to_items(rois_from_masks(movie, masks, Path(source),
                                                               progress=progress))
            items.table["label_id"] = items.table["mask_id"]  # rows ↔ the user's values
            return items, None
        if shapes is None:
            items = roiset_to_items(extract_candidates(movie, Path(source),
                                                                 progress=progress))
            if len(items) == 0:
                raise InputError(source, "no cell candidates found in the movie",
                                 "a longer recording, or ROIs drawn as Labels or Shapes")
            items.table["label_id"] = np.arange(1, len(items) + 1)
            return items, footprints_to_labels(items)
        items = roiset_to_items(rois_from_shapes(movie, *shapes[:2], source, shapes[2],
                                                          progress))
    except Exception as exc:  # shown by the widget (see WorkerFailed)
        return WorkerFailed(exc)
    items.table["label_id"] = items.table["shape_index"] + 1
    return items, label_image_of(items.meta["footprints"], items.table["label_id"],
                                 movie.shape[1:])


def celltype_from_points(image: np.ndarray, points: np.ndarray, classes: list | None,
                         crop: int) -> ItemSet:
    """One crop per point (the last two coordinates: row, column), rows aligned."""
    from napari_cellcurator.core.io.celltype_readers import items_from_points

    items = items_from_points(image, np.asarray(points)[:, -2:], classes, crop)
    if len(items) != len(points):
        raise RuntimeError("the reader dropped points; cannot align items with them")
    return items


def celltype_from_shapes(image: np.ndarray, rgb: bool, vertices: list, shape_types: list,
                         name: str, classes: list | None, crop: int
                         ) -> tuple[ItemSet, np.ndarray]:
    """One crop per area shape (``classes``: a ``class`` feature per shape, or None) and the
    label image of the shapes."""
    from napari_cellcurator.core.io.celltype_readers import items_from_labels_layer
    from napari_cellcurator.core.io.points import point_ids
    from napari_cellcurator.core.io.shapes import footprints_from_shapes, shapes_label_image

    frame = image.shape[:2] if rgb else image.shape[-2:]
    label_image, kept = shapes_label_image(vertices, shape_types, frame, name)
    by_value = {k + 1: classes[k] for k in kept} if classes is not None else None
    items = items_from_labels_layer(image, label_image, by_value, crop)
    # ids from each shape's own outline (not its visible part: a shape drawn over it later
    # must not change it), as for points: label values are shape indices, and deleting a
    # shape would move the journal's labels onto the next shapes
    with warnings.catch_warnings():  # the label image above already said what was skipped
        warnings.simplefilter("ignore")
        footprints, indices = footprints_from_shapes(vertices, shape_types, frame, name)
    centre = {k + 1: (ys.mean(), xs.mean()) for k, (ys, xs, _) in zip(indices, footprints,
                                                                     strict=True)}
    yx = np.array([centre[int(v)] for v in items.table["label_id"]]).reshape(-1, 2)
    items.table["item_id"] = point_ids("image:shape", yx)
    return items, label_image


def celltype_from_layer_data(image, rgb: bool, kind: str, cells, shape_types: list,
                             name: str, classes: list | None, crop: int, progress=None
                             ) -> tuple[ItemSet, np.ndarray | None]:
    """Worker body: crops of an image layer's data around a ``kind`` ("points", "shapes",
    "labels") layer's data; ``(items, label image of the shapes or None)``."""
    image = np.asarray(image)  # a lazy (dask) layer is read here, off the GUI thread
    if kind == "points":
        return celltype_from_points(image, cells, classes, crop), None
    if kind == "shapes":
        return celltype_from_shapes(image, rgb, cells, shape_types, name, classes, crop)
    from napari_cellcurator.core.io.celltype_readers import items_from_labels_layer

    return items_from_labels_layer(image, np.asarray(cells), crop_size=crop), None


def mixture_from_movie(movie, rgb: bool, source: str, name: str, progress=None
                       ) -> tuple[ItemSet, tuple]:
    """Worker body: tiles over a movie layer's data (any reader: ND2, CZI, LIF plugins...),
    and the layer data tuple of their centres."""
    from napari_cellcurator._qt.task_layers import mixture_layer_data
    from napari_cellcurator.core.io.mixture_readers import SnippetOptions, movie_items
    from napari_cellcurator.core.io.movies import movie_from_array

    opts = SnippetOptions.from_extra({})
    items = movie_items(movie_from_array(movie, source, rgb, opts.length), opts)
    return items, mixture_layer_data(items, name=name)[1]
