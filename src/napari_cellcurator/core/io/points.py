"""Full frames + per-cell points → crops (celltype task).

Layout read by :func:`read_points_folder`::

    root/images/<stem>.jpg|png|tif     full frames (e.g. 640×480 RGB blood smears)
    root/labels/<stem>.txt             one line per cell: ``x y class`` (x = column, y = row)

or Pascal VOC (``JPEGImages/`` + ``Annotations/<stem>.xml``, boxes: cells at their centres).

Cells without a line are simply not items: "unlabelled" is not a class. Crops of
``crop_size`` pixels are cut around each point (reflect padding at the image border) and
resized to ``input_size`` so one pixel keeps one physical size (cell size is a class cue).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from napari_cellcurator.core.data.quality import QC_KEEP, QCOptions, apply_qc
from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.io.annotated_frames import AnnotatedFrames, check_frame_shape
from napari_cellcurator.core.io.images import image_files, is_junk_file, read_image_chw, subfolders
from napari_cellcurator.core.io.items import FORMER_ID, ItemSet
from napari_cellcurator.core.io.names import field_separator, readable
from napari_cellcurator.core.io.point_crops import cut_crops_with_quality, normalise_frame

POINT_CROP = 64  # px around a point: one RBC (~40 px at 1000×) plus context
#: model input side: 64 px crops halved (RBC shape kept, 4× less memory). The whole 64 px crop
#: with a stride-2 stem trains as fast but measured no better on Chula RBC-12 (seeded runs:
#: accuracy 0.708 / 0.705 at 64 px vs 0.716 at 32 px)
POINT_INPUT = 32

#: Chula RBC-12 class ids → names (applied only when the ids look like that data set)
CHULA_NAMES = ("normal", "macrocyte", "microcyte", "spherocyte", "target_cell", "stomatocyte",
               "ovalocyte", "teardrop", "burr_cell", "schistocyte", "uncategorised",
               "hypochromia", "elliptocyte")


#: names (any letter case) of the frames' and the point files' folders: ours, the Chula
#: RBC-12 repository's own ``Dataset/`` + ``Label/``, and common annotation layouts
IMAGE_DIRS = ("images", "image", "imgs", "img", "dataset", "frames", "jpegimages")
LABEL_DIRS = ("labels", "label", "annotations", "annotation", "points")


def points_dirs(path: Path) -> tuple[Path, Path] | None:
    """The (frames, point files) folders of a full-frames + points folder, or None.

    Both must hold what they are for (images; ``.txt``/``.csv``/``.tsv`` files), so a
    folder of class folders that happens to have a class named "label" is not taken for one.
    A split of an Ultralytics data set, ``images/<split>/``, is its own frames folder with
    ``labels/<split>/`` beside ``images/``.
    """
    path = Path(path)
    if not path.is_dir():
        return None
    subdirs = {d.name.lower(): d for d in subfolders(path, (*IMAGE_DIRS, *LABEL_DIRS))}
    frames = next((subdirs[n] for n in IMAGE_DIRS if n in subdirs), None)
    labels = next((subdirs[n] for n in LABEL_DIRS if n in subdirs), None)
    if frames is None or labels is None:
        from napari_cellcurator.core.io.yolo import split_labels

        labels = split_labels(path)
        return (path, labels) if labels is not None and labels.is_dir() else None
    if (frames.name.lower(), labels.name.lower()) == ("images", "labels"):
        return frames, labels  # our own layout: an empty folder gets its own clear error
    if not image_files(frames) or not any(
            f.suffix.lower() in LABEL_SUFFIXES for f in labels.iterdir() if f.is_file()):
        return None
    return frames, labels


def is_points_folder(path: Path) -> bool:
    """True when ``path`` has the ``images/`` + ``labels/`` layout (see :func:`points_dirs`)."""
    return points_dirs(path) is not None


def as_chw(image: np.ndarray) -> np.ndarray:
    """An image from a napari layer as ``(C, H, W)``: 2-D, RGB(A) ``(H, W, 3|4)`` (alpha
    dropped, as for files: transparency is not a measurement) or CHW."""
    image = np.asarray(image)
    if image.ndim == 2:
        return image[None]
    if image.ndim == 3 and image.shape[-1] in (3, 4) and image.shape[0] > 4:
        return np.moveaxis(image[..., :3], -1, 0)
    if image.ndim == 3:
        return image
    raise InputError(None, f"image has shape {image.shape}", "a 2-D, RGB or (C, H, W) image")


def point_ids(frame: str, points_yx: np.ndarray) -> list[str]:
    """Item ids from the points' positions (``frame:y120.5x33.0``): deleting or adding a point
    in a napari layer leaves the other points' ids, and so their journal labels, in place
    (row numbers would shift). Points at the same position get ``#2``, ``#3``..."""
    seen: dict[str, int] = {}
    ids = []
    for y, x in np.asarray(points_yx, dtype=np.float64).reshape(-1, 2):
        key = f"{frame}:y{y:.1f}x{x:.1f}"
        seen[key] = seen.get(key, 0) + 1
        ids.append(key if seen[key] == 1 else f"{key}#{seen[key]}")
    return ids


def items_from_points(image: np.ndarray, points_yx: np.ndarray, labels: list | None = None,
                      crop_size: int = POINT_CROP, input_size: int | None = POINT_INPUT,
                      qc: QCOptions | bool = False, frame: str = "image",
                      channels: list[int] | None = None, frame_norm: bool = True) -> ItemSet:
    """Items cut around ``points_yx`` (row, col) of one image (napari Points layer → crops).

    Parameters
    ----------
    labels
        One class per point (None / NaN / "" = unlabelled), or None for no labels.
    qc
        Quality control; False (default, the GUI) keeps every point so items align with the
        layer's points; QC values are always in the table (``qc_*`` columns).
    frame_norm
        Bright-field frames: scale channels so the background matches across frames
        (:func:`normalise_frame`), as the folder reader does by default.
    """
    chw = as_chw(image)
    if channels is not None:
        chw = chw[channels]
    if frame_norm:
        chw = normalise_frame(chw)
    pts = np.asarray(points_yx, dtype=np.float64).reshape(-1, 2)
    if labels is not None and len(labels) != len(pts):
        raise InputError(None, f"{len(labels)} labels for {len(pts)} points")
    size = input_size or crop_size
    crops, quality = cut_crops_with_quality(chw, pts, crop_size, size)
    clean = [_clean_label(v) for v in (labels if labels is not None else [None] * len(pts))]
    table = pd.DataFrame({
        "item_id": point_ids(frame, pts),
        "source": frame, "label": pd.Series(clean, dtype=object),
        "y": pts[:, 0], "x": pts[:, 1], "frame": frame, "group": frame,
        # the crop's side in frame pixels (resized to the model's input): explanations are
        # drawn over this much of the frame
        "crop_size": int(crop_size),
    })
    for col, values in quality.items():
        table[col] = values
    items = ItemSet(table, {"image": crops}, {"path": frame, "frames": [frame],
                                              "crop_size": crop_size})
    return apply_qc(items, qc)


def _clean_label(value) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


#: header names (lower case, without spaces, ``_``, ``-``) of the x (column) and y (row)
#: coordinates and of the class: ours, napari's Points CSV (``axis-0`` = row), scikit-image
#: regionprops tables (``centroid-0`` = row), and common spreadsheet names
X_NAMES = {"x", "col", "column", "cx", "xc", "axis1", "centroid1", "xcoord", "xcoordinate",
           "xpos", "posx", "positionx", "centroidx", "centerx", "centrex", "xcenter", "xcentre",
           "xpx", "xpixel", "xpixels"}
Y_NAMES = {"y", "row", "cy", "yc", "axis0", "centroid0", "ycoord", "ycoordinate", "ypos",
           "posy", "positiony", "centroidy", "centery", "centrey", "ycenter", "ycentre", "ypx",
           "ypixel", "ypixels"}
CLASS_NAMES = {"class", "label", "type", "classid", "classname", "category", "celltype",
               "labelid", "cls", "classes"}
EXPECTED_LINES = ("lines 'x y class' (x = column, y = row; spaces, tabs, commas or semicolons "
                  "between them), optionally below a header naming the x, y and class columns")


def _fields(line: str, sep: str | None) -> list[str]:
    """The fields of one line: CSV quoting understood; decimal commas of ';' / tab files."""
    if sep is None:
        return line.split()
    import csv

    fields = [f.strip() for f in next(csv.reader([line], delimiter=sep))]
    return [f.replace(",", ".") for f in fields] if sep != "," else fields


def _header_columns(header: list[str], path: Path, n: int) -> tuple[int, int, int | None]:
    """Positions of x, y and class named in a header line."""
    names = ["".join(ch for ch in h.lower() if ch.isalnum()) for h in header]
    cols = [next((i for i, v in enumerate(names) if v in group), None)
            for group in (X_NAMES, Y_NAMES, CLASS_NAMES)]
    if cols[0] is None or cols[1] is None:
        raise InputError(path, f"line {n} {', '.join(header)[:60]!r} is not numeric and names "
                         "no x and y columns", EXPECTED_LINES)
    return cols[0], cols[1], cols[2]


def _number(text: str) -> float:
    return float(text.strip().strip('"'))


def read_points_file(path: Path, image_shapes: dict | None = None
                     ) -> tuple[np.ndarray, list[str]]:
    """Point label file → points ``(N, 2)`` as (row, col) and class id strings.

    Lines ``x y class`` (class optional) separated by spaces, tabs, commas or semicolons;
    ``#`` comments and blank lines skipped. A first line that is not numeric is a header: its
    names choose the x, y and class columns (``x``/``col``/``axis-1``, ``y``/``row``/``axis-0``,
    ``class``/``label``/``type``...), so napari Points CSVs and spreadsheet exports read too.
    An ``.xml`` is Pascal VOC boxes (:func:`read_voc_file`; its image size goes into
    ``image_shapes`` when given).
    """
    if path.suffix.lower() == ".xml":
        from napari_cellcurator.core.io.voc import read_voc_file

        return read_voc_file(path, image_shapes)
    pts, ids = [], []
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc})") from None
    sep, cols, first = None, (0, 1, 2), True
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if first:
            sep = field_separator(line, None)
        parts = _fields(line, sep)
        try:
            x, y = _number(parts[cols[0]]), _number(parts[cols[1]])
        except (ValueError, IndexError):
            if first:
                cols, first = _header_columns(parts, path, n), False
                continue
            raise InputError(path, f"line {n} is {line.strip()[:60]!r}", EXPECTED_LINES) from None
        first = False
        if not (np.isfinite(x) and np.isfinite(y)):
            raise InputError(path, f"line {n} has a non-finite coordinate")
        pts.append((y, x))
        cls = parts[cols[2]].strip().strip('"') if cols[2] is not None and \
            len(parts) > cols[2] else ""
        ids.append(None if cls.lower() in ("", "nan", "none") else cls)
    return np.asarray(pts, dtype=np.float64).reshape(-1, 2), ids


def class_names_for(ids: set[str], frame_shape: tuple[int, ...] | None = None
                    ) -> dict[str, str]:
    """Readable names when the ids look like Chula RBC-12: integer ids 0–12 on colour (RGB)
    blood-smear frames, either ≥ 8 of them or the data set's 640×480 frames (small subsets).
    Otherwise no renaming (two-channel fluorescence with classes 0–7 keeps its ids)."""
    ids = {i for i in ids if i is not None}
    if not ids or not all(i.isdigit() and int(i) <= 12 for i in ids):
        return {}
    shape = tuple(frame_shape or ())
    if shape[:1] != (3,):
        return {}
    if len(ids) >= 8 or shape == (3, 480, 640):
        return {i: CHULA_NAMES[int(i)] for i in ids}
    return {}


LABEL_SUFFIXES = (".txt", ".csv", ".tsv", ".xml")


def label_files(folder: Path) -> dict[str, Path]:
    """Point files in ``folder`` by stem (``.txt`` before ``.csv`` / ``.tsv``)."""
    found: dict[str, Path] = {}
    files = [f for f in folder.iterdir() if f.is_file() and not is_junk_file(f)
             and f.suffix.lower() in LABEL_SUFFIXES]
    for f in sorted(files, key=lambda f: (LABEL_SUFFIXES.index(f.suffix.lower()), f.name)):
        found.setdefault(f.stem, f)
    return found


def _frames_and_labels(frames_dir: Path, labels_dir: Path) -> dict[Path, Path]:
    """Each frame with its label file; frames without one are skipped (not an error), label
    files without a frame are named in a warning (a misspelt name loses labels silently)."""
    frames = image_files(frames_dir)
    if not frames:
        raise InputError(frames_dir, "contains no images", "*.jpg|png|tif frames")
    stems: dict[str, Path] = {}
    for f in frames:
        if f.stem in stems:
            raise InputError(f, f"shares the name {f.stem!r} with {stems[f.stem].name}; "
                             f"{labels_dir.name}/{f.stem}.txt cannot belong to both",
                             "one image per name")
        stems[f.stem] = f
    labels = label_files(labels_dir)
    lower = {k.lower(): k for k in labels}
    for stem in stems:  # IMG_1.JPG labelled by img_1.txt: match regardless of letter case
        if stem not in labels and stem.lower() in lower and lower[stem.lower()] not in stems:
            labels[stem] = labels.pop(lower[stem.lower()])
    orphans = sorted(set(labels) - set(stems))
    if orphans:
        warnings.warn(f"{readable(labels_dir)}: {len(orphans)} label file(s) match no "
                      f"image in {frames_dir.name}/ and are not read: "
                      f"{[readable(labels[o].name) for o in orphans[:5]]}",
                      InputWarning, stacklevel=3)
    return {stems[s]: labels[s] for s in sorted(stems, key=lambda s: stems[s])
            if s in labels}


def _inside(pts: np.ndarray, ids: list, shape: tuple[int, ...], label_file: Path
            ) -> np.ndarray:
    """Positions of the points on the frame (a pixel of slack); the others are dropped with
    a warning (their positions are kept out of item ids, so ids still follow the file)."""
    h, w = shape[-2:]
    ok = (pts[:, 0] >= -1) & (pts[:, 0] <= h) & (pts[:, 1] >= -1) & (pts[:, 1] <= w)
    if not ok.all():
        warnings.warn(f"{readable(label_file)}: {int((~ok).sum())} point(s) lie outside the "
                      f"{w}×{h} image and are ignored (x = column, y = row)",
                      InputWarning, stacklevel=4)
    return np.flatnonzero(ok)


def read_points_folder(root: Path, options) -> ItemSet:
    """``images/`` + ``labels/<stem>.txt`` → labelled crops, one group per frame."""
    return points_frames(root).items(root, options)


def points_frames(root: Path) -> AnnotatedFrames:
    """The frames of an ``images/`` + ``labels/`` folder with their points (YOLO boxes:
    their centres, classes named by the data set's own names file)."""
    root = Path(root)
    dirs = points_dirs(root)
    if dirs is None:
        raise InputError(root, "is not a frames + points folder",
                         "images/ with the frames and labels/<stem>.txt with 'x y class' lines")
    frames_dir, labels_dir = dirs
    pairs = _frames_and_labels(frames_dir, labels_dir)
    from napari_cellcurator.core.io import yolo

    boxes = bool(pairs) and all(yolo.is_yolo_file(lab) for lab in pairs.values())
    sizes: dict = {}  # VOC files (JPEGImages/ + Annotations/) record their image's size
    parsed = yolo.read_yolo_pairs(root, pairs) if boxes else {
        f: read_points_file(lab, sizes) for f, lab in pairs.items()}
    if not any(len(p) for p, _ in parsed.values()):
        raise InputError(labels_dir, "has no points for the images",
                         f"{labels_dir.name}/<image stem>.txt with lines 'x y class'")
    return AnnotatedFrames(parsed, pairs, labels_dir, own_names=boxes,
                           shapes={f: sizes[lab] for f, lab in pairs.items() if lab in sizes})


def items_from_frames(root: Path, parsed: dict, sources: dict, where: Path, options,
                      shapes: dict | None = None) -> ItemSet:
    """Crops around the points of each frame, one group per frame.

    Parameters
    ----------
    root
        The data set (its path names the items' source).
    parsed
        ``{frame file: (points (N, 2) row/col, class ids)}``.
    sources
        ``{frame file: the annotation file its points came from}`` (named in warnings).
    where
        Where the annotations are (named in errors).
    options
        The task's :class:`ReadOptions` (channels, crop size, ``extra`` settings).
    shapes
        ``{frame file: (rows, columns)}`` its annotation says the frame has: a frame of
        another size is refused, naming both.
    """
    from napari_cellcurator.core.io.celltype_readers import select_channels

    extra = dict(options.extra or {})
    crop = int(extra.get("point_crop", POINT_CROP))
    size = int(options.crop_size or extra.get("input_size", POINT_INPUT))
    first = next(iter(parsed), None)
    first_frame = None if first is None else read_image_chw(first)  # read once
    names = class_names_for({i for _, ids in parsed.values() for i in ids},
                            None if first_frame is None else first_frame.shape) \
        if extra.get("class_names", True) else {}
    parts, frame_list = [], []
    for f, (pts, ids) in parsed.items():
        frame_list.append(readable(f))
        if not len(pts):
            continue
        raw = first_frame if f == first else read_image_chw(f)
        check_frame_shape(f, raw.shape[1:], (shapes or {}).get(f), sources[f])
        chw = select_channels(raw, options.channels, f)
        keep = _inside(pts, ids, chw.shape, sources[f])
        if not len(keep):
            continue
        pts, ids = pts[keep], [ids[k] for k in keep]
        labels = [names.get(i, i) if i is not None else None for i in ids]
        part = items_from_points(chw, pts, labels, crop, size, qc=False, frame=readable(f),
                                 frame_norm=bool(extra.get("frame_norm", True)))
        part.table["group"] = readable(f.stem)
        # ids from positions, as for napari points: a point deleted from (or inserted into)
        # a label file must not move the journal's labels onto the next cells
        part.table["item_id"] = point_ids(readable(f.stem), pts)
        part.table[FORMER_ID] = [f"{readable(f.stem)}:{i}" for i in keep]  # older journals
        parts.append(part)
    if not parts:
        raise InputError(where, "has no points inside the images",
                         "x (column) and y (row) within each image")
    channels_n = {p.arrays["image"].shape[1] for p in parts}
    if len(channels_n) > 1:
        raise InputError(root, f"frames have different channel counts {sorted(channels_n)}")
    table = pd.concat([p.table for p in parts], ignore_index=True)
    crops = np.concatenate([p.arrays["image"] for p in parts])
    items = ItemSet(table, {"image": crops}, {
        "path": readable(root), "frames": frame_list, "crop_size": crop,
        # Chula: all 13 classes, index == id, so a model trained without (say) elliptocytes
        # still evaluates a folder that has them (they count as errors, not as a crash)
        "classes": list(CHULA_NAMES) if names else None,
        "class_ids": {n: i for i, n in enumerate(CHULA_NAMES)} if names else None,
        # the settings actually used, defaults included: saved in the model config so a model
        # keeps reading data the way it was trained even if a default changes later
        "read_settings": {"point_crop": crop, "input_size": size,
                          "frame_norm": bool(extra.get("frame_norm", True))},
    })
    kept = apply_qc(items, extra.get("qc", True), keep=bool(extra.get(QC_KEEP)))
    if len(kept) == 0:  # an empty data set would fail later with a puzzling message
        raise InputError(where, f"all {len(items)} cells were dropped by the quality filter "
                         "(empty, defocused or cut by the border)",
                         "points on the cells (x = column, y = row), or read option qc=False")
    return kept
