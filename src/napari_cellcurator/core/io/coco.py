"""COCO box annotations → cells at the box centres (celltype task, like the point files).

One JSON (``images``, ``annotations`` with ``bbox`` = [x, y, width, height] and
``category_id``, ``categories`` with names) for a folder of frames, laid out as

- Roboflow exports it: ``<split>/_annotations.coco.json`` beside the images;
- COCO itself: ``annotations/instances_<split>.json`` + ``images/`` (or ``<split>/``).

Crops keep the data set's crop size around each centre (cell size is a class cue).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.io.annotated_frames import AnnotatedFrames, declared_shape
from napari_cellcurator.core.io.images import files_with_suffix, subfolders
from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.io.names import readable

#: largest JSON looked into when detecting the layout (a JSON named as COCO is always read)
MAX_JSON_BYTES = 200 * 1024 * 1024
#: frame names looked up to find the frames folder
PROBE_FRAMES = 20
EXPECTED = "COCO JSON: lists images, annotations and categories"
Layout = tuple[Path, Path | None, dict | None]


def _json_files(path: Path) -> list[Path]:
    folders = [path, *subfolders(path, ("annotations", "annotation"))]
    return sorted(f for d in folders for f in files_with_suffix(d, (".json",))
                  if _meant_as_coco(path, f) or f.stat().st_size <= MAX_JSON_BYTES)


def _meant_as_coco(root: Path, json_path: Path) -> bool:
    """Whether the JSON's name or place says COCO (Roboflow's ``_annotations.coco.json``,
    COCO's ``annotations/*.json`` beside ``images/``): then a broken one is an error, not
    another layout."""
    return json_path.name.lower().endswith(".coco.json") or (
        json_path.parent != root and (root / "images").is_dir())


def _load(path: Path, meant: bool) -> dict | None:
    """The JSON's content when it is COCO, else None; a JSON ``meant`` as COCO that is not
    raises :class:`InputError` naming it. Others are parsed only with one of COCO's keys in
    their first MB, as every exporter writes them (a large unrelated JSON is not parsed)."""
    try:
        if not meant:
            with open(path, "rb") as fh:
                head = fh.read(1 << 20)
            if not any(key in head for key in (b'"images"', b'"annotations"', b'"categories"')):
                return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        if not meant:
            return None
        problem = "is not UTF-8" if isinstance(exc, UnicodeDecodeError) else (
            f"is not valid JSON, truncated or corrupt? ({exc})"
            if isinstance(exc, json.JSONDecodeError) else f"could not be read ({exc})")
        raise InputError(path, problem, EXPECTED) from None
    if _is_coco(data):
        return data
    if meant:
        raise InputError(path, "is not COCO: it lacks lists of images, annotations and "
                         "categories, or an image lacks its file_name", EXPECTED)
    return None


def _is_coco(data) -> bool:
    keys = ("images", "annotations", "categories")
    return (isinstance(data, dict) and all(isinstance(data.get(k), list) for k in keys)
            and all(isinstance(im, dict) and "file_name" in im for im in data["images"]))


def _frame_names(data: dict) -> list[str]:
    return [str(im["file_name"]) for im in data["images"]]


def _image_folder(root: Path, json_path: Path, data: dict, meant: bool) -> Path | None:
    """The folder holding the frames the JSON names (its own folder, the root, ``images/``
    or another sub-folder of the root): one holding all of the first frames, or, for a JSON
    ``meant`` as COCO, the one holding most of them."""
    names = _frame_names(data)[:PROBE_FRAMES]
    folders = [json_path.parent, root] + sorted(d for d in root.iterdir() if d.is_dir())
    found = [sum((d / n).is_file() for n in names) for d in folders]
    if not names or not max(found):
        return None
    best = folders[found.index(max(found))]
    return best if meant or max(found) == len(names) else None


def _checked_frames(root: Path, json_path: Path, data: dict) -> Path:
    """The frames folder of a JSON meant as COCO; :class:`InputError` when it names no frame
    that exists, a warning naming those missing when it names some."""
    frames = _image_folder(root, json_path, data, meant=True)
    names = _frame_names(data)
    if frames is None:
        shown = ", ".join(readable(n) for n in names[:3]) or "none"
        raise InputError(json_path, f"names {len(names)} frames ({shown}...) but none of "
                         f"them is in {readable(json_path.parent)} or the folders of "
                         f"{readable(root)}", "the frames beside the JSON or in images/")
    missing = [n for n in names if not (frames / n).is_file()]
    if missing:
        gone = set(missing)
        ids = {im.get("id") for im in data["images"] if str(im["file_name"]) in gone}
        lost = sum(ann.get("image_id") in ids for ann in data["annotations"]
                   if isinstance(ann, dict))
        warnings.warn(f"{readable(json_path)}: {len(missing)} of the {len(names)} frames it "
                      f"names are not in {readable(frames)} (e.g. "
                      f"{', '.join(readable(n) for n in missing[:5])}); the {lost} boxes on "
                      "them are not read", InputWarning, stacklevel=4)
    return frames


def _layout(path: Path, strict: bool) -> Layout | None:
    """The first JSON with its frames; ``strict`` (reading): the error of the first JSON
    meant as COCO when none is usable (COCO's ``annotations/`` also holds captions files)."""
    errors = []
    for json_path in _json_files(path):
        meant = _meant_as_coco(path, json_path)
        if meant and not strict:  # detection: its name says COCO; reading says what is wrong
            return json_path, None, None
        try:
            data = _load(json_path, meant)
            frames = None if data is None else (
                _checked_frames(path, json_path, data) if meant
                else _image_folder(path, json_path, data, meant=False))
        except InputError as exc:
            errors.append(exc)
            continue
        if frames is not None:
            return json_path, frames, data
    if errors:
        raise errors[0]
    return None


def coco_layout(path: Path) -> Layout | None:
    """``(annotation JSON, frames folder, its content)`` of a COCO folder, or None.

    A JSON named or placed as COCO (``*.coco.json``, ``annotations/*.json`` beside
    ``images/``) makes a COCO folder by itself, without being parsed (folder and content are
    None then): :func:`read_coco_folder` says what is wrong with a broken one, instead of
    the frames being read as unlabelled crops.
    """
    path = Path(path)
    if not path.is_dir():
        return None
    return _layout(path, strict=False)


def read_coco_folder(root: Path, options) -> ItemSet:
    """Frames + a COCO JSON of boxes → labelled crops, one group per frame."""
    return coco_frames(root).items(root, options)


def coco_frames(root: Path) -> AnnotatedFrames:
    """The frames of a COCO folder with their box centres, named by category."""
    layout = _layout(Path(root), strict=True) if Path(root).is_dir() else None
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
    parsed, shapes = {}, {}
    for im in data["images"]:
        pts, ids = per_image[im.get("id")]
        frame = frames / str(im["file_name"])
        if pts and frame.is_file():  # a missing frame was warned about
            parsed[frame] = (np.asarray(pts).reshape(-1, 2), ids)
            shapes[frame] = declared_shape(im.get("height"), im.get("width"))
    if not parsed:
        raise InputError(json_path, "has no boxes on the frames found", "COCO annotations")
    # category names are the data set's own, even when they are digits
    return AnnotatedFrames(parsed, dict.fromkeys(parsed, json_path), json_path, own_names=True,
                           shapes=shapes)
