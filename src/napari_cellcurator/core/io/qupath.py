"""QuPath GeoJSON (File › Export objects as GeoJSON): a cell at the centre of each object.

QuPath writes a ``FeatureCollection`` (a plain list of features before 0.4) whose features
carry ``properties.objectType`` (``detection``, ``cell``, ``annotation``, ``tile``) and
``properties.classification.name``. Cells are read from a folder of images with their
``<stem>.geojson`` (or ``<image name>.geojson``, as export scripts name it) beside them:

- detections and cells (QuPath's cell detection, StarDist, InstanSeg): one cell each at its
  outline's centroid; tiles are not cells;
- point annotations (the Points tool's ``MultiPoint``, one per class): one cell per point;
- without detections, every annotation is a cell (cells outlined by hand); with detections,
  area annotations are the regions they were found in, not cells.

An object without a classification is an unlabelled cell (to predict, to curate). QuPath
coordinates are pixels from the image's top-left corner (x = column), pixel centres at +0.5.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.annotated_frames import AnnotatedFrames
from napari_cellcurator.core.io.images import files_with_suffix, image_files
from napari_cellcurator.core.io.jsonfiles import read_json

SUFFIX = ".geojson"
#: QuPath object types that are cells (annotations are, when there are no detections)
CELL_TYPES = ("detection", "cell")


def _geojson_files(folder: Path) -> dict[str, Path]:
    return {f.name[: -len(SUFFIX)]: f for f in files_with_suffix(folder, (SUFFIX,))}


def _pairs(folder: Path, files: dict[str, Path]) -> dict[Path, Path]:
    """``{image: its GeoJSON}`` matched by image stem or by whole image name."""
    return {image: files.get(image.name) or files[image.stem] for image in image_files(folder)
            if image.name in files or image.stem in files}


def is_geojson_folder(folder: Path) -> bool:
    """Whether ``folder`` holds images with a QuPath GeoJSON beside them."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    files = _geojson_files(folder)
    return bool(files) and bool(_pairs(folder, files))


def read_geojson(path: Path) -> tuple[np.ndarray, list[str | None]]:
    """The cells of a QuPath GeoJSON file: centres ``(N, 2)`` as (row, col) and class names
    (None for unclassified objects)."""
    path = Path(path)
    data = read_json(path, "GeoJSON")
    features = _features(data, path)
    kinds = [str((f.get("properties") or {}).get("objectType", "annotation")).lower()
             for f in features]
    has_cells = any(k in CELL_TYPES for k in kinds)
    points, names = [], []
    for feature, kind in zip(features, kinds, strict=True):
        geometry = feature.get("geometry") or {}
        is_points = geometry.get("type") in ("Point", "MultiPoint")
        if kind == "tile" or (has_cells and kind not in CELL_TYPES and not is_points):
            continue
        centres = _centres(geometry, path)
        points += centres
        names += [_class_name(feature)] * len(centres)
    # QuPath's pixel centres are at +0.5 of its coordinates
    return np.asarray(points, np.float64).reshape(-1, 2) - 0.5, names


def _features(data, path: Path) -> list[dict]:
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        data = data.get("features")
    elif isinstance(data, dict) and data.get("type") == "Feature":
        data = [data]
    if not isinstance(data, list) or not all(isinstance(f, dict) for f in data):
        raise InputError(path, "is not a GeoJSON FeatureCollection or list of features",
                         "QuPath's Export objects as GeoJSON")
    return data


def _class_name(feature: dict) -> str | None:
    classification = (feature.get("properties") or {}).get("classification")
    if isinstance(classification, dict):
        name = classification.get("name") or ":".join(classification.get("names") or [])
    elif isinstance(classification, str):  # some exporters write the name alone
        name = classification
    else:
        return None
    return str(name).strip() or None


def _centres(geometry: dict, path: Path) -> list[tuple[float, float]]:
    """(row, col) + 0.5 centres of a geometry: each point, or each outline's centroid."""
    kind, coords = geometry.get("type"), geometry.get("coordinates")
    try:
        if kind == "Point":
            return [(float(coords[1]), float(coords[0]))]
        if kind == "MultiPoint":
            return [(float(y), float(x)) for x, y, *_ in coords]
        if kind == "Polygon":
            return [polygon_centroid(coords)]
        if kind == "MultiPolygon":  # one object in pieces: the area-weighted centre
            parts = [(_ring_area(p[0]), polygon_centroid(p)) for p in coords]
            total = sum(a for a, _ in parts)
            if total <= 0:
                return [parts[0][1]]
            return [tuple(sum(a * c[i] for a, c in parts) / total for i in (0, 1))]
    except (TypeError, ValueError, IndexError):
        raise InputError(path, f"has a {kind} with malformed coordinates") from None
    return []  # lines and empty geometries are not cells


def _ring_area(ring) -> float:
    xy = np.asarray(ring, np.float64)[:, :2]
    x, y = xy[:, 0], xy[:, 1]
    return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2


def polygon_centroid(rings) -> tuple[float, float]:
    """(y, x) centroid of a polygon's outer ring (the vertex mean for a degenerate one)."""
    xy = np.asarray(rings[0], np.float64)[:, :2]
    x, y = xy[:, 0], xy[:, 1]
    cross = x * np.roll(y, -1) - np.roll(x, -1) * y
    area = cross.sum() / 2
    if abs(area) < 1e-9:
        return float(y.mean()), float(x.mean())
    return (float(((y + np.roll(y, -1)) * cross).sum() / (6 * area)),
            float(((x + np.roll(x, -1)) * cross).sum() / (6 * area)))


def geojson_frames(folder: Path) -> AnnotatedFrames:
    """The images of ``folder`` with the cells of their GeoJSON; images without one are not
    read, a GeoJSON without its image is named in a warning."""
    from napari_cellcurator.core.io.annotated_frames import frames_beside

    folder = Path(folder)
    files = _geojson_files(folder)
    return frames_beside(folder, _pairs(folder, files), files.values(), read_geojson,
                         "GeoJSON", "QuPath detections, cells or point annotations")
