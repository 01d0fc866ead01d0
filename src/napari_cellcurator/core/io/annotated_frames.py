"""Full frames with box or point labels, and detection data sets exported split into
``train/ valid/ test/`` folders (Roboflow's COCO, YOLO and Pascal VOC exports) or into
``images/<split>/`` + ``labels/<split>/`` (Ultralytics' own YOLO layout).

Each annotation format parses its folder into :class:`AnnotatedFrames` (points files and YOLO
in :mod:`.points` / :mod:`.yolo`, VOC in :mod:`.voc`, COCO in :mod:`.coco`); the crops are
cut once for all frames, so the splits of an export share one crop size, one class naming and
one quality filter.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.io.images import image_files, is_junk_file
from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.io.names import readable

EXPECTED = ("train/ valid/ test/ folders each holding frames with their boxes: "
            "_annotations.coco.json, images/ + labels/, or a VOC .xml beside each image; "
            "or images/<split>/ with YOLO labels in labels/<split>/")


class AnnotatedFrames(NamedTuple):
    """Frames with the cells annotated on them, before cropping.

    Attributes
    ----------
    parsed
        ``{frame file: (points (N, 2) as row/col, class ids or names)}``.
    sources
        ``{frame file: the annotation file its points came from}`` (named in warnings).
    where
        Where the annotations are (named in errors).
    own_names
        The classes are the data set's own names or ids (never renamed to RBC-12's).
    shapes
        ``{frame file: (rows, columns)}`` the annotation says its image has (COCO, CVAT,
        VOC, LabelMe record it, None where a file records none; a label image has it): a
        frame of another size is refused when read — points of a resized or rotated copy
        would land on other cells.
    """

    parsed: dict[Path, tuple[np.ndarray, list[str | None]]]
    sources: dict[Path, Path]
    where: Path
    own_names: bool = False
    shapes: dict[Path, tuple[int, int] | None] | None = None

    def items(self, root: Path, options) -> ItemSet:
        """Crops around the points of every frame, one group per frame."""
        from napari_cellcurator.core.io.points import items_from_frames

        if self.own_names:
            options = replace(options, extra={**(options.extra or {}), "class_names": False})
        return items_from_frames(Path(root), self.parsed, self.sources, self.where, options,
                                 self.shapes)


def declared_shape(rows, columns) -> tuple[int, int] | None:
    """``(rows, columns)`` an annotation file records for its image, or None where it
    records none (missing, 0 or not a number: some tools write 0)."""
    try:
        shape = (int(float(rows)), int(float(columns)))
    except (TypeError, ValueError, OverflowError):
        return None
    return shape if min(shape) > 0 else None


def check_frame_shape(frame: Path, shape: tuple[int, ...], declared, source: Path) -> None:
    """Refuse a frame whose size is not the one its annotation records (``declared``:
    ``(rows, columns)`` of :attr:`AnnotatedFrames.shapes`, None where none is recorded)."""
    if declared is None or tuple(declared) == tuple(shape):
        return
    rows, cols = declared
    raise InputError(source, f"annotates {frame.name} as {cols}×{rows} px (width × height) but "
                     f"the image is {shape[1]}×{shape[0]} px: its cells would be cut at the "
                     "wrong places", "annotations made on this very image, not on a resized "
                     "or rotated copy")


def frames_beside(folder: Path, pairs: dict[Path, Path], files, read, kind: str,
                  expected: str, own_names: bool = True,
                  shapes: dict[Path, tuple[int, int]] | None = None) -> AnnotatedFrames:
    """The frames of ``folder`` with the cells ``read(annotation file)`` gives, for formats
    with one annotation file beside each image (VOC, LabelMe, QuPath).

    ``pairs`` maps each image to its file; a file of ``files`` without its image is named in
    a warning; no cell at all is one error (``kind`` names the files, ``expected`` what
    they should hold). ``shapes`` (filled by ``read`` where the format records it):
    ``{annotation file: (rows, columns) of its image}``.
    """
    orphans = sorted(set(files) - set(pairs.values()))
    if orphans:
        warnings.warn(f"{readable(folder)}: {len(orphans)} {kind} file(s) match no image and "
                      f"are not read: {[o.name for o in orphans[:5]]}", InputWarning,
                      stacklevel=4)
    parsed = {image: read(annotation) for image, annotation in pairs.items()}
    if not any(len(points) for points, _ in parsed.values()):
        raise InputError(folder, f"has no cells in the {kind} files beside its images",
                         expected)
    shapes = shapes or {}
    return AnnotatedFrames(parsed, pairs, folder, own_names,
                           {image: shapes[a] for image, a in pairs.items() if a in shapes})


def frames_layout(folder: Path) -> str | None:
    """Which annotated-frames layout ``folder`` has, or None: ``"points"`` (``images/`` +
    ``labels/`` of points or YOLO boxes, VOC's ``JPEGImages/`` + ``Annotations/``),
    ``"coco"``, ``"cvat"`` (CVAT's ``annotations.xml``), ``"voc"`` (an XML beside each
    image), ``"labelme"`` (a LabelMe JSON beside each image), ``"qupath"`` (a GeoJSON beside
    each image) or ``"masks"`` (a label image of the cells beside each image: Cellpose). An
    Ultralytics root (``images/<split>/``) is none: :func:`export_splits` reads it split by
    split."""
    from napari_cellcurator.core.io.coco import coco_layout
    from napari_cellcurator.core.io.cvat import cvat_xml
    from napari_cellcurator.core.io.frame_masks import is_masks_folder
    from napari_cellcurator.core.io.labelme import is_labelme_folder
    from napari_cellcurator.core.io.points import is_points_folder
    from napari_cellcurator.core.io.qupath import is_geojson_folder
    from napari_cellcurator.core.io.voc import is_voc_folder
    from napari_cellcurator.core.io.yolo import dataset_splits

    if not folder.is_dir() or dataset_splits(folder):
        return None
    if is_points_folder(folder):
        return "points"
    if coco_layout(folder) is not None:
        return "coco"
    if cvat_xml(folder) is not None:
        return "cvat"
    if is_voc_folder(folder):
        return "voc"
    if is_labelme_folder(folder):
        return "labelme"
    if is_geojson_folder(folder):
        return "qupath"
    return "masks" if is_masks_folder(folder) else None


def annotated_frames(folder: Path) -> AnnotatedFrames:
    """The annotated frames of one folder, whichever layout it has."""
    from napari_cellcurator.core.io import coco, cvat, frame_masks, labelme, points, qupath, voc
    from napari_cellcurator.core.io.yolo import split_labels

    layout = frames_layout(folder)
    labels = split_labels(folder)
    if layout is None and labels is not None:  # images/<split>/ without labels/<split>/
        raise InputError(labels, f"is missing: the frames of images/{folder.name}/ have no "
                         "labels", f"labels/{folder.name}/<image stem>.txt with YOLO lines "
                         "'class x_centre y_centre width height'")
    if layout is None:
        raise InputError(folder, "holds no frames with box or point annotations", EXPECTED)
    read = {"coco": coco.coco_frames, "points": points.points_frames, "cvat": cvat.cvat_frames,
            "voc": voc.voc_frames, "qupath": qupath.geojson_frames,
            "labelme": labelme.labelme_frames, "masks": frame_masks.masks_frames}[layout]
    return read(folder)


def _sub_folders(root: Path) -> list[Path]:
    # split names first: a stat per entry of a folder of 100,000 crops costs seconds
    from napari_cellcurator.core.io.celltype_readers import SPLIT_NAMES

    entries = list(root.iterdir())
    if not any(p.name.lower() in SPLIT_NAMES for p in entries):
        return []
    return sorted(p for p in entries if p.is_dir() and not is_junk_file(p)
                  and p.name != "__MACOSX")


def export_splits(root: Path) -> dict[str, list[Path]]:
    """``{"train"|"val"|"test": [folders of frames]}`` of a detection data set split into
    folders, else empty: a Roboflow export (every sub-folder of ``root`` a split name, one
    holding annotated frames: ``train/ valid/ test/`` with COCO, YOLO or VOC boxes in each)
    or an Ultralytics root (``images/<split>/`` + ``labels/<split>/``, see
    :func:`~napari_cellcurator.core.io.yolo.dataset_splits`)."""
    from napari_cellcurator.core.io.yolo import dataset_splits

    root = Path(root)
    if not root.is_dir():
        return {}
    return _roboflow_splits(root) or dataset_splits(root)


def _roboflow_splits(root: Path) -> dict[str, list[Path]]:
    """The split folders of a Roboflow export ``root/train|valid|test/``, else empty."""
    from napari_cellcurator.core.io.celltype_readers import SPLIT_NAMES

    subs = _sub_folders(root)
    if not subs or any(p.name.lower() not in SPLIT_NAMES for p in subs):
        return {}
    if not any(frames_layout(p) for p in subs):
        return {}
    out: dict[str, list[Path]] = {}
    for p in subs:
        out.setdefault(SPLIT_NAMES[p.name.lower()], []).append(p)
    return out


def read_export_splits(root: Path, splits: dict[str, list[Path]], options) -> ItemSet:
    """A detection export ``root/train|valid|test/`` (or Ultralytics'
    ``root/images/train|val|test/``) → the cells of train + valid.

    As for split folders of crops, valid keeps the validation side of the train/validation
    split and test is held out with a warning (``--data root/test``, or
    ``root/images/test``, evaluates on it); item ids start with the split folder's name
    (frames of two splits may share a name).
    """
    used = [s for s in ("train", "val") if s in splits] or ["test"]
    if "test" in splits and used != ["test"]:
        n = sum(len(image_files(d, recursive=True)) for d in splits["test"])
        warnings.warn(f"{readable(root)}: {n} frames of {[d.name for d in splits['test']]} "
                      "are kept aside as the test set (not read); to predict or evaluate "
                      f"them, load {readable(splits['test'][0])} itself (CLI: --data "
                      f"{readable(splits['test'][0])})", InputWarning,
                      stacklevel=3)
    parsed, sources, shapes, folder_of, own = {}, {}, {}, {}, False
    for split in used:
        for d in splits[split]:
            frames = annotated_frames(d)
            parsed.update(frames.parsed)
            sources.update(frames.sources)
            shapes.update(frames.shapes or {})
            folder_of.update({readable(f): (split, d.name) for f in frames.parsed})
            own = own or frames.own_names
    items = AnnotatedFrames(parsed, sources, Path(root), own, shapes).items(root, options)
    return _split_columns(items, folder_of, "val" in used)


def _split_columns(items: ItemSet, folder_of: dict[str, tuple[str, str]],
                   keep_val: bool) -> ItemSet:
    """Ids prefixed with the split folder, ``split`` = train/val and a ``group`` per frame
    that (with a validation folder) puts the frame's cells on its side of the split."""
    from napari_cellcurator.core.io.celltype_readers import split_groups

    table = items.table
    side = [folder_of[f][0] for f in table["frame"]]
    folder = [folder_of[f][1] for f in table["frame"]]
    frame = [f"{d}/{g}" for d, g in zip(folder, table["group"], strict=True)]
    table["item_id"] = [f"{d}/{i}" for d, i in zip(folder, table["item_id"], strict=True)]
    table["split"] = side
    if keep_val:  # one forced group per frame, computed once per frame
        keys = sorted(set(zip(side, frame, strict=True)))
        forced = dict(zip(keys, split_groups([s for s, _ in keys], [k for _, k in keys]),
                          strict=True))
        frame = [forced[k] for k in zip(side, frame, strict=True)]
    table["group"] = frame
    return ItemSet(table, items.arrays, items.meta)
