"""CVAT exports ("CVAT for images 1.1"): ``annotations.xml`` + ``images/`` → a cell at the
centre of each box, polygon, ellipse or point.

One XML for every frame: ``<image name="…">`` elements holding ``<box xtl ytl xbr ybr>``,
``<polygon points="x,y;x,y;…">``, ``<points points="…">`` (each point a cell),
``<ellipse cx cy>`` and ``<mask>`` shapes, each with a ``label`` (the class). Coordinates are
continuous pixels from the image's top-left corner (x = column), pixel centres at +0.5.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.io.annotated_frames import AnnotatedFrames, declared_shape
from napari_cellcurator.core.io.names import readable

XML_NAME = "annotations.xml"


def cvat_xml(folder: Path) -> Path | None:
    """The CVAT ``annotations.xml`` of ``folder`` (its head holds ``<annotations>`` and an
    ``<image`` element), else None."""
    path = Path(folder) / XML_NAME
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return None
    return path if b"<annotations" in head and b"<image " in head else None


def _xy(text: str) -> np.ndarray:
    """``"x1,y1;x2,y2"`` → ``(N, 2)`` (x, y)."""
    return np.asarray([[float(v) for v in pair.split(",")] for pair in text.split(";")
                       if pair.strip()], np.float64).reshape(-1, 2)


def _shape_centres(shape) -> list[tuple[float, float]]:
    """(row, col) + 0.5 centres of one CVAT shape element (empty for tags and lines)."""
    from napari_cellcurator.core.io.qupath import polygon_centroid

    a = shape.attrib
    if shape.tag == "box":
        return [((float(a["ytl"]) + float(a["ybr"])) / 2,
                 (float(a["xtl"]) + float(a["xbr"])) / 2)]
    if shape.tag == "ellipse":
        return [(float(a["cy"]), float(a["cx"]))]
    if shape.tag == "points":
        return [(y, x) for x, y in _xy(a["points"])]
    if shape.tag == "polygon":
        return [polygon_centroid([_xy(a["points"]).tolist()])]
    if shape.tag == "mask":  # run-length mask inside its box: the box centre
        return [(float(a["top"]) + float(a["height"]) / 2,
                 float(a["left"]) + float(a["width"]) / 2)]
    return []


def cvat_frames(folder: Path) -> AnnotatedFrames:
    """The frames of a CVAT export with the centres of their shapes, named by label."""
    import xml.etree.ElementTree as ET

    folder = Path(folder)
    path = cvat_xml(folder)
    if path is None:
        raise InputError(folder, f"has no CVAT {XML_NAME}", "CVAT for images 1.1 export")
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise InputError(path, f"is not readable CVAT XML ({exc})") from None
    frames_dir = folder / "images" if (folder / "images").is_dir() else folder
    parsed, missing, shapes = {}, [], {}
    for image in root.iter("image"):
        frame = frames_dir / image.get("name", "")
        points, labels = [], []
        for shape in image:
            try:
                centres = _shape_centres(shape)
            except (KeyError, ValueError, IndexError):
                raise InputError(path, f"image {image.get('name')!r}: a <{shape.tag}> has no "
                                 "numeric coordinates", "CVAT for images 1.1") from None
            points += centres
            labels += [(shape.get("label") or "").strip() or None] * len(centres)
        if not points:
            continue
        if not frame.is_file():
            missing.append(image.get("name"))
            continue
        parsed[frame] = (np.asarray(points, np.float64).reshape(-1, 2) - 0.5, labels)
        shapes[frame] = declared_shape(image.get("height"), image.get("width"))
    if missing:
        warnings.warn(f"{readable(path)}: {len(missing)} annotated image(s) not found in "
                      f"{readable(frames_dir)}: {missing[:5]}", InputWarning, stacklevel=3)
    if not parsed:
        raise InputError(path, "has no shapes on the frames found", "CVAT boxes, polygons, "
                         "ellipses or points with images/ beside it")
    return AnnotatedFrames(parsed, dict.fromkeys(parsed, path), path, own_names=True,
                           shapes=shapes)
