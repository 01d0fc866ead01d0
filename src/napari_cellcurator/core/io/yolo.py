"""YOLO box labels (Ultralytics / Roboflow "YOLO" export): cells at the box centres.

``images/<stem>.jpg`` + ``labels/<stem>.txt`` with one line per box,
``class x_centre y_centre width height``, coordinates as fractions of the image size. Class
names come from ``data.yaml`` (``names:`` a list or ``{id: name}``), ``classes.txt`` or
``obj.names`` in the data set folder or above it; else the class ids are kept.

Ultralytics' own data set layout splits both folders alike: ``images/train``, ``images/val``,
``images/test`` with their labels in ``labels/train``... (:func:`dataset_splits`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from napari_cellcurator.core.errors import InputError

NAME_FILES = ("data.yaml", "data.yml", "classes.txt", "obj.names")


def _text(path: Path) -> str:
    """A label/names file as text: UTF-8 on every system (Windows' default is cp1252), a
    Notepad byte-order mark dropped (it would join class 0's name)."""
    return path.read_text(encoding="utf-8-sig", errors="replace")


def is_yolo_file(path: Path) -> bool:
    """Whether every line of a ``.txt`` label file is ``id cx cy w h`` with fractions."""
    if path.suffix.lower() != ".txt":
        return False
    try:
        lines = [ln.split() for ln in _text(path).splitlines()
                 if ln.strip() and not ln.lstrip().startswith("#")]
    except OSError:
        return False
    if not lines:
        return False
    for parts in lines:
        if len(parts) != 5 or not parts[0].isdigit():
            return False
        try:
            values = [float(v) for v in parts[1:]]
        except ValueError:
            return False
        if not all(0.0 <= v <= 1.0 for v in values):
            return False
    return True


def read_yolo_file(path: Path, frame_shape: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
    """Box centres of a YOLO label file as (row, col) points in a frame of
    ``frame_shape`` = (height, width), and their class ids."""
    height, width = frame_shape
    pts, ids = [], []
    for n, line in enumerate(_text(path).splitlines(), 1):
        parts = line.split()
        if not parts or line.lstrip().startswith("#"):
            continue
        if len(parts) != 5:
            raise InputError(path, f"line {n} is {line.strip()[:60]!r}",
                             "YOLO lines 'class x_centre y_centre width height'")
        cx, cy = float(parts[1]), float(parts[2])
        # pixel centres: fraction 0..1 of the width maps onto -0.5 .. width - 0.5
        pts.append((cy * height - 0.5, cx * width - 0.5))
        ids.append(parts[0])
    return np.asarray(pts, dtype=np.float64).reshape(-1, 2), ids


def read_yolo_pairs(root: Path, pairs: dict[Path, Path]
                    ) -> dict[Path, tuple[np.ndarray, list[str]]]:
    """``{frame: (box centres as (row, col), class names)}`` of frames with their label
    files; names from the names file of ``root`` or above it, else the class ids."""
    from napari_cellcurator.core.io.images import read_image_chw

    names = yolo_class_names(root)
    parsed = {}
    for frame, labels in pairs.items():
        pts, ids = read_yolo_file(labels, read_image_chw(frame).shape[-2:])
        parsed[frame] = (pts, [names.get(i, i) for i in ids])
    return parsed


def yolo_class_names(root: Path) -> dict[str, str]:
    """``{class id: name}`` from a names file in ``root`` or the folders above (two levels)."""
    for folder in (root, root.parent, root.parent.parent):
        for name in NAME_FILES:
            f = folder / name
            if f.is_file():
                return _names_in(f)
    return {}


def _names_in(path: Path) -> dict[str, str]:
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            names = (yaml.safe_load(_text(path)) or {}).get("names")
        except (yaml.YAMLError, AttributeError) as exc:
            raise InputError(path, f"cannot be read as YOLO data.yaml ({exc})",
                             "names: [class0, class1, ...]") from None
        if isinstance(names, dict):
            return {str(k): str(v) for k, v in names.items()}
        return {str(k): str(v) for k, v in enumerate(names or [])}
    lines = [ln.strip() for ln in _text(path).splitlines() if ln.strip()]
    return {str(k): v for k, v in enumerate(lines)}


def split_labels(frames: Path) -> Path | None:
    """Where Ultralytics keeps the labels of a split's frames: ``images/<split>`` →
    ``labels/<split>`` beside ``images/`` (which may not exist); None when ``frames`` is not
    a folder inside an ``images/`` folder."""
    frames = Path(frames)
    if frames.parent.name != "images":
        return None
    return frames.parent.parent / "labels" / frames.name


def dataset_splits(root: Path) -> dict[str, list[Path]]:
    """``{"train"|"val"|"test": [frame folders]}`` of an Ultralytics data set root, else empty.

    The root holds ``images/<split>/`` and ``labels/<split>/`` (and ``data.yaml``). The
    frame folders that data.yaml's ``train:``, ``val:`` and ``test:`` name (relative to its
    ``path:`` or to its own folder) are used when they exist inside an ``images/`` folder of
    the root; else the sub-folders of ``images/`` named like splits (``train``, ``val``,
    ``valid``, ``test``...). A folder named for two splits (``val: images/train``) is read
    once, for the first.
    """
    root = Path(root)
    if not ((root / "images").is_dir() and (root / "labels").is_dir()):
        return {}
    declared, named = _declared_splits(root), _named_splits(root / "images")
    out: dict[str, list[Path]] = {}
    seen: set[Path] = set()
    for split in ("train", "val", "test"):
        folders = [f for f in declared.get(split) or named.get(split, []) if f not in seen]
        seen.update(folders)
        if folders:
            out[split] = folders
    return out


def _named_splits(images: Path) -> dict[str, list[Path]]:
    """The sub-folders of ``images/`` named like splits, by split."""
    from napari_cellcurator.core.io.celltype_readers import SPLIT_NAMES

    out: dict[str, list[Path]] = {}
    for d in sorted(images.iterdir()):
        if d.is_dir() and d.name.lower() in SPLIT_NAMES:
            out.setdefault(SPLIT_NAMES[d.name.lower()], []).append(_normal(d))
    return out


def _declared_splits(root: Path) -> dict[str, list[Path]]:
    """The existing frame folders that ``root/data.yaml`` names for each split."""
    data = _data_yaml(root)
    bases = [root / data["path"], root] if isinstance(data.get("path"), str) else [root]
    out = {}
    for split in ("train", "val", "test"):
        entries = data.get(split)
        entries = [entries] if isinstance(entries, str) else entries
        found = [_frames_folder(root, bases, e) for e in entries or [] if isinstance(e, str)]
        out[split] = [f for f in found if f is not None]
    return out


def _frames_folder(root: Path, bases: list[Path], entry: str) -> Path | None:
    """A ``train:``/``val:``/``test:`` entry as an existing folder inside ``images/`` and
    inside ``root`` (the first base it exists in; Roboflow's ``../`` prefix dropped as
    Ultralytics does), or None. Folders outside ``root`` are left out: an absolute path
    names where the data set was made (another machine, an older copy), not the folder
    being read."""
    top = _normal(root)
    for base in bases:
        for relative in dict.fromkeys((entry, entry.removeprefix("../"))):
            folder = _normal(base / relative)
            if top in folder.parents and folder.is_dir() and split_labels(folder) is not None:
                return folder
    return None


def _normal(path: Path) -> Path:
    return Path(os.path.normpath(path))


def _data_yaml(root: Path) -> dict:
    """``root/data.yaml`` (or ``data.yml``) as a mapping; empty when absent or unreadable
    (reading the class names then names the file and the problem)."""
    import yaml

    for name in ("data.yaml", "data.yml"):
        path = root / name
        if path.is_file():
            try:
                data = yaml.safe_load(_text(path))
            except yaml.YAMLError:
                return {}
            return data if isinstance(data, dict) else {}
    return {}
