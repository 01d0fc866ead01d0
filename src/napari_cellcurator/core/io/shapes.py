"""ROIs drawn as shapes (napari Shapes layer: polygons, rectangles, ellipses) → footprints.

A napari user marks candidate cells on a calcium movie with the Shapes tools. Each area
shape becomes its own footprint (overlapping shapes keep all their pixels), projected onto
the frame: a shape drawn on frame 40 of a ``(T, Y, X)`` movie marks the same pixels in every
frame. Lines and paths enclose nothing and are skipped with one warning. Plain numpy in and
out (the widget passes ``layer.data`` and ``layer.shape_type``), so the core stays napari-free.
"""

from __future__ import annotations

import warnings

import numpy as np

from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.io.rois import Footprint

AREA_TYPES = ("polygon", "rectangle", "ellipse")
#: points on an ellipse's outline when it is filled as a polygon (rotated ellipses included)
ELLIPSE_POINTS = 72


def shape_outline(vertices: np.ndarray, shape_type: str) -> np.ndarray:
    """``(n, 2)`` (row, column) outline of an area shape in frame coordinates.

    napari stores an ellipse (and a rectangle) as the 4 corners of its possibly rotated
    bounding box; the ellipse's outline is traced from the box's half-axes.
    """
    yx = np.asarray(vertices, dtype=np.float64)[:, -2:]  # drop the frame (t) coordinate
    if shape_type != "ellipse":
        return yx
    centre = yx.mean(axis=0)
    half_a, half_b = (yx[1] - yx[0]) / 2, (yx[3] - yx[0]) / 2
    t = np.linspace(0, 2 * np.pi, ELLIPSE_POINTS, endpoint=False)[:, None]
    return centre + np.cos(t) * half_a + np.sin(t) * half_b


def polygon_mask(rows: np.ndarray, cols: np.ndarray, frame: tuple[int, int]) -> np.ndarray:
    """Boolean ``frame`` mask of the pixels whose centre (integer coordinates) lies inside
    the polygon (used for napari shapes and ImageJ ROIs alike)."""
    from skimage.draw import polygon

    mask = np.zeros(frame, bool)
    if len(rows) >= 3:
        rr, cc = polygon(rows, cols, shape=frame)
        mask[rr, cc] = True
    return mask


def shape_mask(vertices: np.ndarray, shape_type: str, frame: tuple[int, int]) -> np.ndarray:
    """Boolean ``frame`` mask of the pixels (centres at integer coordinates) inside a shape."""
    outline = shape_outline(vertices, shape_type)
    return polygon_mask(outline[:, 0], outline[:, 1], frame)


def footprints_from_shapes(vertices: list[np.ndarray], shape_types: list[str],
                           frame: tuple[int, int], name: str = "shapes"
                           ) -> tuple[list[Footprint], list[int]]:
    """Unit-weight footprints of the area shapes with pixels in ``frame``, and their indices.

    Parameters
    ----------
    vertices, shape_types
        A Shapes layer's ``data`` and ``shape_type`` (vertices ``(n, D)``, last two axes y, x).
    frame
        ``(Y, X)`` of the movie.
    name
        Named in warnings and errors (the layer).

    Raises
    ------
    InputError
        No shape encloses a pixel of the frame.
    """
    if len(vertices) != len(shape_types):
        raise InputError(None, f"{name}: {len(vertices)} shapes but {len(shape_types)} types")
    footprints, kept = [], []
    skipped = sum(t not in AREA_TYPES for t in shape_types)
    if skipped:
        warnings.warn(f"{name}: {skipped} line/path shape(s) skipped (they enclose no "
                      "pixels, so no cell)", InputWarning, stacklevel=2)
    for k, (verts, kind) in enumerate(zip(vertices, shape_types, strict=True)):
        if kind not in AREA_TYPES:
            continue
        ys, xs = np.nonzero(shape_mask(verts, kind, frame))
        if len(ys):
            footprints.append((ys.astype(np.int64), xs.astype(np.int64),
                               np.ones(len(ys), np.float32)))
            kept.append(k)
    if not footprints:
        raise InputError(None, f"{name}: no shape encloses a pixel of the "
                         f"{frame[0]}×{frame[1]} frame", "polygons, rectangles or ellipses "
                         "drawn over the movie")
    return footprints, kept


def shape_ids(prefix: str, footprints: list[Footprint]) -> list[str]:
    """Item ids from the shapes' centroids (``movie:shape:y12.5x40.0``): deleting a shape
    leaves the others' ids, and so their labels, in place."""
    from napari_cellcurator.core.io.points import point_ids

    centres = np.array([(ys.mean(), xs.mean()) for ys, xs, _ in footprints]).reshape(-1, 2)
    return point_ids(f"{prefix}:shape", centres)


def rois_from_shapes(movie: np.ndarray, vertices: list[np.ndarray], shape_types: list[str],
                     path, name: str = "shapes", progress=None):
    """ROI candidates of the area shapes with their traces in ``movie`` (``(T, Y, X)``).

    Traces, neuropil and mean image as for every "movie + ROIs" format
    (:func:`.roi_masks.rois_from_footprints`); columns ``shape_index`` (the shape's row in
    the layer when read) and position-based ``item_id``; ``progress(fraction, stage)``
    over the passes through the frames.
    """
    from pathlib import Path

    from napari_cellcurator.core.io.roi_masks import check_movie, rois_from_footprints

    path = Path(path)
    movie = check_movie(movie, path)
    footprints, kept = footprints_from_shapes(vertices, shape_types, movie.shape[1:], name)
    columns = {"shape_index": np.asarray(kept, np.int64),
               "item_id": shape_ids(path.stem, footprints)}
    return rois_from_footprints(movie, footprints, path, "shapes", columns, {}, progress)


def label_image_of(footprints: list[Footprint], values, frame: tuple[int, int]) -> np.ndarray:
    """An int32 ``frame`` painted with ``values[k]`` on footprint ``k`` (later ones win
    where they overlap)."""
    labels = np.zeros(frame, np.int32)
    for (ys, xs, _), value in zip(footprints, values, strict=True):
        labels[ys, xs] = int(value)
    return labels


def shapes_label_image(vertices: list[np.ndarray], shape_types: list[str],
                       frame: tuple[int, int], name: str = "shapes"
                       ) -> tuple[np.ndarray, list[int]]:
    """A label image of the area shapes (shape ``k`` → value ``k + 1``) and the indices of
    the shapes in it."""
    footprints, kept = footprints_from_shapes(vertices, shape_types, frame, name)
    labels = label_image_of(footprints, [k + 1 for k in kept], frame)
    hidden = [k for k in kept if not (labels == k + 1).any()]
    if hidden:  # a label image holds one value per pixel: later shapes win
        warnings.warn(f"{name}: {len(hidden)} shape(s) lie wholly under later ones and give "
                      f"no crop (shape index {hidden[:10]}); move or delete the covering "
                      "shapes to keep them", InputWarning, stacklevel=2)
        kept = [k for k in kept if k not in hidden]
    return labels, kept
