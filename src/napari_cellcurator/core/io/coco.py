"""COCO box annotations → cells at the box centres (celltype task, like the point files).

One JSON (``images``, ``annotations`` with ``bbox`` = [x, y, width, height] and
``category_id``, ``categories`` with names) for a folder of frames, laid out as

- Roboflow exports it: ``<split>/_annotations.coco.json`` beside the images;
- COCO itself: ``annotations/instances_<split>.json`` + ``images/`` (or ``<split>/``).

Crops keep the data set's crop size around each centre (cell size is a class cue).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.items import ItemSet

#: largest JSON looked into when detecting the layout
MAX_JSON_BYTES = 200 * 1024 * 1024


def _json_files(path: Path) -> list[Path]:
    folders = [path] + [d for d in path.iterdir() if d.is_dir() and d.name.lower() in
                        ("annotations", "annotation")]
    return sorted(f for d in folders for f in d.glob("*.json")
                  if f.is_file() and f.stat().st_size <= MAX_JSON_BYTES)


def _load(path: Path) -> dict | None:
    """The JSON's content when it is COCO (one of its keys within the first MB, as every
    exporter writes them, before parsing a possibly large unrelated file)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 20)
        if not any(key in head for key in (b'"images"', b'"annotations"', b'"categories"')):
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(data, dict) and {"images", "annotations", "categories"} <= set(data):
        return data
    return None


def _image_folder(root: Path, json_path: Path, data: dict) -> Path | None:
    """The folder holding the frames the JSON names (its own folder, the root, ``images/``
    or another sub-folder of the root)."""
    names = [str(im.get("file_name", "")) for im in data["images"][:5]]
    folders = [json_path.parent, root] + sorted(d for d in root.iterdir() if d.is_dir())
    return next((d for d in folders if names and all((d / n).is_file() for n in names)), None)


def coco_layout(path: Path) -> tuple[Path, Path, dict] | None:
    """``(annotation JSON, frames folder, its content)`` of a COCO folder, or None."""
    path = Path(path)
    if not path.is_dir():
        return None
    for json_path in _json_files(path):
        data = _load(json_path)
        if data is not None:
            frames = _image_folder(path, json_path, data)
            if frames is not None:
                return json_path, frames, data
    return None


def read_coco_folder(root: Path, options) -> ItemSet:
    """Frames + a COCO JSON of boxes → labelled crops, one group per frame."""
    from napari_cellcurator.core.io.points import items_from_frames

    layout = coco_layout(root)
    if layout is None:
        raise InputError(root, "has no COCO annotation JSON with its images",
                         "_annotations.coco.json beside the images, or annotations/*.json "
                         "+ images/")
    json_path, frames, data = layout
    names = {c.get("id"): str(c.get("name", c.get("id"))) for c in data["categories"]}
    per_image: dict = {im.get("id"): ([], []) for im in data["images"]}
    for n, ann in enumerate(data["annotations"]):
        try:
            x, y, w, h = (float(v) for v in ann["bbox"])
            pts, ids = per_image[ann["image_id"]]
        except (KeyError, TypeError, ValueError):
            raise InputError(json_path, f"annotation {n} lacks a numeric bbox [x, y, w, h] or "
                             "an image_id among the images", "COCO boxes") from None
        pts.append((y + h / 2 - 0.5, x + w / 2 - 0.5))  # pixel centres are at .5
        ids.append(names.get(ann.get("category_id")))
    parsed = {}
    for im in data["images"]:
        pts, ids = per_image[im.get("id")]
        if pts:
            parsed[frames / str(im["file_name"])] = (np.asarray(pts).reshape(-1, 2), ids)
    if not parsed:
        raise InputError(json_path, "has no boxes on its images", "COCO annotations")
    return items_from_frames(root, parsed, dict.fromkeys(parsed, json_path), json_path,
                             options)
