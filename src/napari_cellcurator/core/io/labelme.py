"""LabelMe annotations (``<stem>.json`` beside each image): a cell at the centre of each shape.

LabelMe (and tools writing its format: AnyLabeling, X-AnyLabeling, Label Studio's LabelMe
export) stores per image ``{"shapes": [{"label", "points": [[x, y], ...], "shape_type"}],
"imagePath", ...}`` with x = column. Cells: a point, the centroid of a polygon, the centre of
a rectangle (two corners) or of a circle (its first point); lines are not cells. The label is
the class (an empty label: an unlabelled cell).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.annotated_frames import AnnotatedFrames, declared_shape
from napari_cellcurator.core.io.images import files_with_suffix, image_files
from napari_cellcurator.core.io.jsonfiles import read_json

#: bytes of a JSON file's head looked at to tell a LabelMe file
HEAD = 4096


def _is_labelme(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEAD)
    except OSError:
        return False
    return head.lstrip().startswith(b"{") and b'"shapes"' in head


def _json_files(folder: Path) -> dict[str, Path]:
    return {f.stem: f for f in files_with_suffix(folder, (".json",))}


def is_labelme_folder(folder: Path) -> bool:
    """Whether ``folder`` holds images with a LabelMe ``<stem>.json`` beside them (the first
    such file's head is checked for ``"shapes"``)."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    files = _json_files(folder)
    if not files:
        return False
    first = next((files[f.stem] for f in image_files(folder) if f.stem in files), None)
    return first is not None and _is_labelme(first)


def read_labelme(path: Path, image_shapes: dict | None = None
                 ) -> tuple[np.ndarray, list[str | None]]:
    """The cells of a LabelMe file: centres ``(N, 2)`` as (row, col) and labels;
    ``image_shapes``, when given, gets ``{path: (imageHeight, imageWidth)}`` where
    recorded."""
    from napari_cellcurator.core.io.qupath import polygon_centroid

    path = Path(path)
    data = read_json(path, "LabelMe JSON")
    shapes = data.get("shapes") if isinstance(data, dict) else None
    if not isinstance(shapes, list):
        raise InputError(path, "has no list of shapes", 'LabelMe JSON with a "shapes" list')
    points, labels = [], []
    for n, shape in enumerate(shapes, 1):
        kind = str(shape.get("shape_type") or "polygon").lower()
        try:
            xy = np.asarray(shape["points"], np.float64).reshape(-1, 2)
        except (KeyError, TypeError, ValueError):
            raise InputError(path, f"shape {n} has no [x, y] points") from None
        if not len(xy) or kind in ("line", "linestrip"):
            continue
        if kind == "polygon" and len(xy) >= 3:
            y, x = polygon_centroid([xy.tolist()])
        elif kind in ("rectangle", "polygon"):  # two corners (or a degenerate polygon)
            y, x = float(xy[:, 1].mean()), float(xy[:, 0].mean())
        else:  # point, circle (centre first), mask: the first point
            y, x = float(xy[0, 1]), float(xy[0, 0])
        points.append((y, x))
        labels.append(str(shape.get("label") or "").strip() or None)
    size = declared_shape(data.get("imageHeight"), data.get("imageWidth"))
    if image_shapes is not None and size is not None:
        image_shapes[path] = size
    return np.asarray(points, np.float64).reshape(-1, 2), labels


def labelme_frames(folder: Path) -> AnnotatedFrames:
    """The images of ``folder`` with the cells of their LabelMe ``<stem>.json``."""
    from napari_cellcurator.core.io.annotated_frames import frames_beside

    folder = Path(folder)
    files = _json_files(folder)
    pairs = {f: files[f.stem] for f in image_files(folder) if f.stem in files}
    sizes: dict = {}
    return frames_beside(folder, pairs, files.values(), partial(read_labelme, image_shapes=sizes),
                         "LabelMe", "LabelMe points, polygons, rectangles or circles",
                         shapes=sizes)
