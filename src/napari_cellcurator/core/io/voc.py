"""Pascal VOC box annotations: cells at the box centres.

Read from ``JPEGImages/`` + ``Annotations/<stem>.xml`` (see :mod:`.points`), or with each
``<stem>.xml`` beside its image, as Roboflow exports VOC (``train/*.jpg`` + ``train/*.xml``).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.annotated_frames import AnnotatedFrames, declared_shape
from napari_cellcurator.core.io.images import files_with_suffix, image_files
from napari_cellcurator.core.io.items import ItemSet


def read_voc_file(path: Path, shapes: dict | None = None
                  ) -> tuple[np.ndarray, list[str | None]]:
    """Pascal VOC annotation (``Annotations/<stem>.xml``, as LabelImg, CVAT and Roboflow
    export boxes) → box centres ``(N, 2)`` as (row, col) and the objects' names.

    VOC pixel coordinates start at 1; the crop around each centre keeps the data set's crop
    size (cell size is a class cue), not the box's. ``shapes``, when given, gets
    ``{path: (rows, columns)}`` of the image's ``<size>`` (where the file has one).
    """
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise InputError(path, f"is not readable Pascal VOC XML ({exc})") from None
    pts, ids = [], []
    for n, obj in enumerate(root.iter("object"), 1):
        box = obj.find("bndbox")
        try:
            x0, y0, x1, y1 = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (AttributeError, TypeError, ValueError):
            raise InputError(path, f"object {n} has no numeric bndbox xmin/ymin/xmax/ymax",
                             "Pascal VOC boxes") from None
        pts.append(((y0 + y1) / 2 - 1, (x0 + x1) / 2 - 1))
        name = (obj.findtext("name") or "").strip()
        ids.append(name or None)
    shape = declared_shape(root.findtext("size/height"), root.findtext("size/width"))
    if shapes is not None and shape is not None:
        shapes[path] = shape
    return np.asarray(pts, dtype=np.float64).reshape(-1, 2), ids


def _xml_files(folder: Path) -> dict[str, Path]:
    return {f.stem: f for f in files_with_suffix(folder, (".xml",))}


def is_voc_folder(folder: Path) -> bool:
    """Whether ``folder`` holds images with a Pascal VOC ``<stem>.xml`` beside them (the
    first such file's head is checked: ``<annotation>``)."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    xmls = _xml_files(folder)
    if not xmls:  # a folder of 100,000 crops: no second listing of its images
        return False
    first = next((xmls[f.stem] for f in image_files(folder) if f.stem in xmls), None)
    if first is None:
        return False
    try:
        with open(first, "rb") as fh:
            return b"<annotation" in fh.read(4096)
    except OSError:
        return False


def voc_frames(folder: Path) -> AnnotatedFrames:
    """The images of ``folder`` with the box centres of their ``<stem>.xml``; images
    without one are not read, an XML without its image is named in a warning."""
    from napari_cellcurator.core.io.annotated_frames import frames_beside

    folder = Path(folder)
    xmls = _xml_files(folder)
    pairs = {f: xmls[f.stem] for f in image_files(folder) if f.stem in xmls}
    shapes: dict = {}
    return frames_beside(folder, pairs, xmls.values(), partial(read_voc_file, shapes=shapes),
                         "XML", "Pascal VOC <object> boxes", own_names=False, shapes=shapes)


def read_voc_folder(folder: Path, options) -> ItemSet:
    """Images + a Pascal VOC ``<stem>.xml`` beside each → labelled crops."""
    return voc_frames(folder).items(folder, options)
