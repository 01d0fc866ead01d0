"""Pascal VOC box annotations (``Annotations/<stem>.xml``): cells at the box centres."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_cellcurator.core.errors import InputError


def read_voc_file(path: Path) -> tuple[np.ndarray, list[str | None]]:
    """Pascal VOC annotation (``Annotations/<stem>.xml``, as LabelImg, CVAT and Roboflow
    export boxes) → box centres ``(N, 2)`` as (row, col) and the objects' names.

    VOC pixel coordinates start at 1; the crop around each centre keeps the data set's crop
    size (cell size is a class cue), not the box's.
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
    return np.asarray(pts, dtype=np.float64).reshape(-1, 2), ids
