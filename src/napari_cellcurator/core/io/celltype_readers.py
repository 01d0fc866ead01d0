"""Readers for the celltype task: folders of class folders, full frames + point labels."""

from __future__ import annotations

import re
import unicodedata
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.io.crop_fits import crops_of_one_size
from napari_cellcurator.core.io.images import image_files, is_junk_file, read_image_chw, subfolders
from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.io.names import readable, table_path, table_separator
from napari_cellcurator.core.progress import counted
from napari_cellcurator.core.tasks.base import ReadOptions


def read_celltype_path(path: Path, options: ReadOptions) -> ItemSet:
    """Detect the layout of ``path`` and read it."""
    from napari_cellcurator.core.io.arrays import is_array_file

    path = Path(path)
    if is_array_file(path):
        return read_array_items(path, options)
    if path.is_dir():
        from napari_cellcurator.core.io import annotated_frames as af

        # frames + points, YOLO, VOC or COCO boxes: before class folders (images/ is no class)
        if af.frames_layout(path) is not None:
            return af.annotated_frames(path).items(path, options)
        splits = af.export_splits(path)  # Roboflow: train/ valid/ test/ of annotated frames
        if splits:
            return af.read_export_splits(path, splits, options)
    splits = split_folders(path)
    if splits:
        return read_split_folders(path, splits, options)
    if path.is_dir() and any(p.is_dir() for p in path.iterdir()):
        _refuse_split_names_as_classes(path)
        return read_class_folders(path, options)
    if path.is_dir() and image_files(path):  # crops without classes: to predict, to curate
        return read_unlabelled_crops(path, options)
    if path.is_file() and path.suffix.lower() in (".csv", ".tsv"):
        return read_crop_table(path, options)
    raise InputError(path, "is not a recognised cell-type data layout",
                     "a folder of class folders <class>/*.tif|png|jpg, a folder of crops "
                     "without classes, train/ val/ test/ "
                     "folders of class folders, images/ + labels/<stem>.txt ('x y class' "
                     "lines) or Pascal VOC / COCO boxes, a CSV with file and label columns, "
                     "or an .npz of images and labels")


def _refuse_split_names_as_classes(root: Path) -> None:
    """Folders all named like splits (``train/ valid/``) holding neither class folders nor
    annotated frames: an error, not classes "train" and "valid" of whole frames."""
    subs = subfolders(root)
    if subs and all(p.name.lower() in SPLIT_NAMES for p in subs):
        raise InputError(root, f"its folders {sorted(p.name for p in subs)} are split names, "
                         "not classes, but hold no class folders and no box annotations",
                         "train/<class>/*.png, or frames with their boxes in each split "
                         "(_annotations.coco.json, images/ + labels/, VOC .xml beside each "
                         "image); images without classes: --data <root>/<split>")


#: column names (lower case, alphanumerics only) of a crop table's file and class columns
FILE_COLUMNS = ("path", "file", "filename", "filepath", "image", "imagepath", "imagefile",
                "imagename", "img", "name")
LABEL_COLUMNS = ("label", "class", "classname", "category", "type", "celltype", "target",
                 "labelname", "phase")


def column_key(name: object) -> str:
    """A column name as compared with ``FILE_COLUMNS`` / ``LABEL_COLUMNS``: lower case,
    letters and digits only (``"Image File"`` → ``"imagefile"``)."""
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


def _column(table: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    norm = {column_key(c): c for c in table.columns}
    return next((norm[n] for n in names if n in norm), None)


def read_crop_table(csv: Path, options: ReadOptions) -> ItemSet:
    """A CSV (or TSV) listing crop files and their classes, e.g. ``filename,label``.

    File paths are relative to the CSV's folder (or absolute); a row without a label is an
    unlabelled cell (predicted, not trained on). Other columns are kept in the item table.
    """
    try:
        # the header's separator (pandas' sniffer splits a one-column 'filename' file at 'e')
        table = pd.read_csv(csv, sep=table_separator(csv), dtype=str, keep_default_na=False,
                            skip_blank_lines=True, encoding="utf-8-sig")
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(csv, f"cannot be read as a table ({exc})",
                         "a CSV with file and label columns") from None
    file_col, label_col = _column(table, FILE_COLUMNS), _column(table, LABEL_COLUMNS)
    if file_col is None or table.empty:
        raise InputError(csv, f"has no file column among {list(table.columns)[:8]}"
                         if file_col is None else "has no rows",
                         "a CSV with columns such as filename,label")
    files = [table_path(v, csv) for v in table[file_col]]
    missing = [(n + 2, f) for n, f in enumerate(files) if not f.is_file()]
    if missing:
        line, f = missing[0]
        raise InputError(csv, f"line {line}: {readable(f)} does not exist "
                         f"({len(missing)} of {len(files)} files missing)",
                         "file paths relative to the CSV's folder")
    labels = [v.strip() or None for v in table[label_col]] if label_col else [None] * len(files)
    ids = ["/".join(f.relative_to(csv.parent).parts) if f.is_relative_to(csv.parent)
           else str(f) for f in files]
    extra = {c: table[c].tolist() for c in table.columns
             if c not in (file_col, label_col) and c not in ("item_id", "source", "label")}
    return _crop_items(csv, files, labels, ids, extra, options)


def select_channels(arr: np.ndarray, channels: list[int] | None, path: Path) -> np.ndarray:
    """Keep ``channels`` of a (C, H, W) image, with a clear error when one is missing."""
    if channels is None:
        return arr
    bad = [c for c in channels if c >= arr.shape[0] or c < -arr.shape[0]]
    if bad:
        raise InputError(path, f"has {arr.shape[0]} channels; channels {bad} do not exist")
    return arr[channels]


def _class_files(root: Path) -> tuple[list[Path], list[str], list[Path]]:
    """Image files of ``root/<class>/`` (sub-folders included), their class names and the
    class folders without images (hidden folders, ``__MACOSX`` and junk files such as
    ``._x.tif`` left out)."""
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not is_junk_file(p)
                        and p.name != "__MACOSX")
    files, labels, empty = [], [], []
    for d in class_dirs:
        found = image_files(d, recursive=True)
        files += found
        # composed (NFC) as typed and as Windows/Linux write it: macOS copies and zips may
        # keep the decomposed form, and "agrégée" would be two different classes
        labels += [unicodedata.normalize("NFC", readable(d.name))] * len(found)
        if not found:
            empty.append(d)
    return files, labels, empty


def read_unlabelled_crops(folder: Path, options: ReadOptions) -> ItemSet:
    """A folder of crops without class folders (a Kaggle ``test/``, new cells to score):
    unlabelled items, ids = file names."""
    files = image_files(folder)
    ids = [f.name for f in files]
    return _crop_items(folder, files, [None] * len(files), ids, {}, options)


def read_class_folders(root: Path, options: ReadOptions) -> ItemSet:
    """``root/<class>/*.tif|png|jpg`` → crops of one size, label = folder name.

    Images in sub-folders of a class folder (``G1/patient3/*.tif``) belong to the class; the
    first sub-folder name is their split group, so cells of one patient / slide / run stay on
    one side of the train/validation split (across classes too).
    """
    files, labels, empty = _class_files(root)
    if empty and files:  # a class without examples cannot be learnt: say so, read the rest
        warnings.warn(f"{readable(root)}: class folders without images are ignored: "
                      f"{[readable(d.name) for d in empty]}", InputWarning, stacklevel=2)
    if not files:
        raise InputError(root, "contains no images in its class folders",
                         "<class>/*.tif|png|jpg")
    rel = [f.relative_to(root) for f in files]
    ids = ["/".join(r.parts) for r in rel]
    columns = {}
    if any(len(r.parts) > 2 for r in rel):
        columns["group"] = [f"sub:{r.parts[1]}" if len(r.parts) > 2 else i
                            for r, i in zip(rel, ids, strict=True)]
    return _crop_items(root, files, labels, ids, columns, options)


def _crop_items(root: Path, files: list[Path], labels: list[str], ids: list[str],
                columns: dict[str, list], options: ReadOptions) -> ItemSet:
    """Read ``files`` as crops of one size; the item table with labels, ids and ``columns``."""
    cells = channel_file_groups(root, files)
    numbers = None
    if cells is not None:  # one file per channel (IDEAS export): one item per cell
        first = [group[0] for group in cells.values()]
        position = {f: k for k, f in enumerate(files)}
        keep = [position[f] for f in first]
        labels, columns = [labels[k] for k in keep], {c: [v[k] for k in keep]
                                                      for c, v in columns.items()}
        ids = [ids[k].rsplit("/", 1)[0] + "/" + cell.name for k, cell in zip(keep, cells,
                                                                              strict=True)]
        groups, numbers = _chosen_channel_files(root, list(cells.values()), options)
        raw = [_stack_channels(group) for group in
               counted(groups, options.progress, "reading images")]
        files = first  # the source of a cell: its first channel file
    else:
        raw = [read_image_chw(f) for f in counted(files, options.progress, "reading images")]
        raw = [select_channels(r, options.channels, f) for r, f in zip(raw, files, strict=True)]
    raw = _same_channel_count(root, files, raw)
    items = _items_of_crops(root, raw, [readable(f) for f in files], labels, ids, columns,
                            options)
    if numbers is not None:
        items.meta["read_settings"]["channel_numbers"] = numbers
    return items


def _chosen_channel_files(root: Path, groups: list[list[Path]], options: ReadOptions
                          ) -> tuple[list[list[Path]], list[int]]:
    """The channel files to stack for each cell, and their channel numbers (``3`` of
    ``_Ch3``): by number where a model recorded them (another export may hold more or other
    channels: position 0 of Ch1…Ch12 is not position 0 of Ch3, Ch4, Ch6), else by position
    (``--channels``)."""
    numbers = [_channel_number(f) for f in groups[0]]
    wanted = (options.extra or {}).get("channel_numbers")
    if wanted is not None:
        missing = [n for n in wanted if n not in numbers]
        if missing:
            raise InputError(root, f"has channels {_names(numbers)}, not "
                             f"{_names(missing)} that the model was trained on",
                             f"one file per channel {_names(wanted)} for every cell")
        chosen = [int(n) for n in wanted]
    elif options.channels is None:
        chosen = numbers
    else:
        bad = [c for c in options.channels if not -len(numbers) <= c < len(numbers)]
        if bad:
            raise InputError(root, f"has {len(numbers)} channel files per cell "
                             f"({_names(numbers)}); channels {bad} do not exist")
        chosen = [numbers[c] for c in options.channels]
    return [[group[numbers.index(n)] for n in chosen] for group in groups], chosen


def _channel_match(file: Path) -> re.Match | None:
    """``<cell>_Ch<k>`` of a file name (suffix and ``.ome`` aside), or None."""
    return CHANNEL_FILE.match(file.name[: -len(file.suffix)].removesuffix(".ome"))


def _channel_number(file: Path) -> int:
    return int(_channel_match(file)["ch"])


def _names(numbers: list[int]) -> str:
    return ", ".join(f"Ch{n}" for n in numbers)


def _items_of_crops(root: Path, raw: list[np.ndarray], sources: list[str],
                    labels: list[str | None], ids: list[str], columns: dict[str, list],
                    options: ReadOptions) -> ItemSet:
    """Crops brought to one size, the item table and the QC columns."""
    crops, settings = crops_of_one_size(raw, options, readable(root))
    # file names that are not UTF-8 (bytes on Linux) become \xNN text, see names.readable
    table = pd.DataFrame({
        "item_id": [readable(i) for i in ids],
        "source": sources,
        "label": pd.Series([None if lab is None else readable(lab) for lab in labels],
                           dtype=object),
        **columns,
    })
    from napari_cellcurator.core.data.quality import QC_KEEP, apply_qc, crop_quality

    for col, values in crop_quality(crops, np.zeros(len(crops))).items():
        table[col] = values
    items = ItemSet(table, {"image": crops},
                    {"path": str(root), "classes": sorted(set(table["label"].dropna())),
                     "read_settings": settings})
    # pre-cut crops (imaging flow cytometry): QC counts only by default; dropping would
    # remove real, merely dim cells (extra {"qc": true} or a QCOptions dict turns it on)
    return apply_qc(items, options.extra.get("qc", False),
                    keep=bool(options.extra.get(QC_KEEP)))


def _same_channel_count(root: Path, files: list[Path], raw: list[np.ndarray]
                        ) -> list[np.ndarray]:
    """One channel count for all crops. Grey PNG/JPEG/BMP files among colour ones (a common
    mix in exported crops) get their grey copied to R, G and B, with a warning; any other
    mix is an error naming a file of each count."""
    n_ch = {c.shape[0] for c in raw}
    if len(n_ch) == 1:
        return raw
    pil_only = all(f.suffix.lower() not in (".tif", ".tiff") for f in files)
    if n_ch == {1, 3} and pil_only:
        grey = [f for f, c in zip(files, raw, strict=True) if c.shape[0] == 1]
        warnings.warn(f"{readable(root)}: {len(grey)} grey image(s) among colour ones read as "
                      f"colour (grey copied to R, G, B), e.g. {readable(grey[0])}",
                      InputWarning, stacklevel=3)
        return [np.repeat(c, 3, axis=0) if c.shape[0] == 1 else c for c in raw]
    examples = {c.shape[0]: f for f, c in zip(files, raw, strict=True)}
    named = ", ".join(f"{n}: {readable(f)}" for n, f in sorted(examples.items()))
    raise InputError(root, f"images have different channel counts {sorted(n_ch)} ({named})",
                     "the same channels in every image")


#: a file of one channel of one cell, as imaging flow cytometry software exports them
#: (Amnis IDEAS: ``<cell>_Ch3.ome.tif``); case-insensitive, ``_``, ``-`` or space before Ch
CHANNEL_FILE = re.compile(r"^(?P<cell>.+?)[_\- ]ch(?P<ch>\d+)$", re.IGNORECASE)


def channel_file_groups(root: Path, files: list[Path]) -> dict[Path, list[Path]] | None:
    """``{cell: [channel files in channel-number order]}`` when the files are named
    ``<cell>_Ch<k>`` with several channels per cell; None otherwise (each file is then one
    cell). The cell key is the file path without the ``_Ch<k>`` part. Cells must all have the
    same channels, and a file named otherwise among them is an error (read as a cell of its
    own it would turn every other cell into single-channel items, their ids and labels
    with them)."""
    found: dict[Path, dict[int, Path]] = {}
    odd: list[Path] = []
    for f in files:
        m = _channel_match(f)
        if m is None:
            odd.append(f)
            continue
        chans = found.setdefault(f.with_name(m["cell"]), {})
        if int(m["ch"]) in chans:  # x_Ch1.tif and x_Ch1.png: not a channel layout
            return None
        chans[int(m["ch"])] = f
    if len(found) == len(files) - len(odd):  # one channel per cell: plain files (or none)
        return None
    if odd:
        raise InputError(odd[0], f"is not named <cell>_Ch<k> like the other "
                         f"{len(files) - len(odd)} files (one file per channel of a cell)",
                         "every image named <cell>_Ch<k>, or move it out of the folder")
    sets = {tuple(sorted(c)) for c in found.values()}
    if len(sets) > 1:
        full = max(sets, key=len)
        cell, chans = next((k, c) for k, c in found.items() if tuple(sorted(c)) != full)
        raise InputError(cell.parent / f"{cell.name}_Ch*",
                         f"has channels {sorted(chans)} but other cells have {list(full)}",
                         "one file per channel for every cell")
    return {cell: [chans[k] for k in sorted(chans)] for cell, chans in found.items()}


def _stack_channels(files: list[Path]) -> np.ndarray:
    """One ``(C, H, W)`` cell from single-channel files of one size."""
    planes = [read_image_chw(f) for f in files]
    for f, p in zip(files, planes, strict=True):
        if p.shape[0] != 1 or p.shape[1:] != planes[0].shape[1:]:
            raise InputError(f, f"has shape {p.shape[1:]} ({p.shape[0]} channel(s)); "
                             f"{files[0].name} has {planes[0].shape[1:]}",
                             "single-channel images of one size for the channels of a cell")
    dtype = np.result_type(*[p.dtype for p in planes])
    return np.concatenate([p.astype(dtype, copy=False) for p in planes])


#: folder names of a pre-split data set (torchvision ImageFolder / Kaggle style), lower case
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
               "validation": "val", "dev": "val", "test": "test", "testing": "test"}


def split_folders(root: Path) -> dict[str, list[Path]]:
    """``{"train"|"val"|"test": [folders]}`` when every sub-folder of ``root`` is a split
    name holding class folders (``root/train/<class>/*``) — a ``test/`` may instead hold the
    unlabelled crops to predict (Kaggle style); else empty."""
    root = Path(root)
    if not root.is_dir():
        return {}
    subs = subfolders(root)
    if not subs or any(p.name.lower() not in SPLIT_NAMES for p in subs):
        return {}
    loose = [p for p in subs if not any(c.is_dir() for c in p.iterdir())]
    if len(loose) == len(subs) or any(SPLIT_NAMES[p.name.lower()] != "test" for p in loose):
        return {}  # split names are never class names
    out: dict[str, list[Path]] = {}
    for p in sorted(subs):
        out.setdefault(SPLIT_NAMES[p.name.lower()], []).append(p)
    return out


def read_split_folders(root: Path, splits: dict[str, list[Path]],
                       options: ReadOptions) -> ItemSet:
    """A pre-split data set ``root/train|val|test/<class>/*``.

    train + val are the labelled data and keep their sides of the train/validation split
    (each item's ``group`` is chosen so the hash split puts it there); without ``val/`` the
    usual hash split divides ``train/``. ``test/`` is held out, with a warning: evaluate on it
    with ``--data root/test``. A folder with only ``test/`` is read as it is.
    """
    used = [s for s in ("train", "val") if s in splits] or ["test"]
    if "test" in splits and used != ["test"]:
        n = sum(len(_class_files(d)[0]) or len(image_files(d)) for d in splits["test"])
        warnings.warn(f"{readable(root)}: {n} images of {[d.name for d in splits['test']]} "
                      "are kept aside as the test set (not read); to predict or evaluate them, "
                      f"load {readable(splits['test'][0])} itself (CLI: --data "
                      f"{readable(splits['test'][0])})", InputWarning, stacklevel=2)
    files, labels, ids, side = [], [], [], []
    for split in used:
        for d in splits[split]:
            f, lab, _ = _class_files(d)
            files += f
            labels += lab
            ids += ["/".join(x.relative_to(root).parts) for x in f]
            side += [split] * len(f)
    if not files:
        raise InputError(root, f"its {'/'.join(used)} folders hold no images in class folders",
                         "train/<class>/*.tif|png|jpg")
    groups = split_groups(side, ids) if "val" in used else list(ids)
    return _crop_items(root, files, labels, ids, {"split": side, "group": groups}, options)


def split_groups(sides: list[str], ids: list[str]) -> list[str]:
    """Per item a ``group`` whose hash puts it on its given side (``train``/``val``) of the
    train/validation split: a data set's own validation set stays the validation set."""
    from napari_cellcurator.core.io.mixture_readers import forced_group
    from napari_cellcurator.core.tasks.celltype import CellTypeTask

    frac = CellTypeTask.hyper.val_fraction
    return [forced_group(s, i, frac) for s, i in zip(sides, ids, strict=True)]


def read_array_items(path: Path, options: ReadOptions) -> ItemSet:
    """An ``.npz`` of crops and labels (see :mod:`napari_cellcurator.core.io.arrays`)."""
    from napari_cellcurator.core.io.arrays import read_array_file

    crops = read_array_file(path)
    if not crops.raw:
        raise InputError(crops.file, "holds no images")
    raw = [select_channels(r, options.channels, crops.file) for r in crops.raw]
    if len({r.shape[0] for r in raw}) > 1:
        raise InputError(crops.file, "its sets have different channel counts "
                         f"{sorted({r.shape[0] for r in raw})}", "one channel count")
    columns = dict(crops.columns)
    if "val" in columns.get("split", []):  # keep val on the validation side, as val/ folders
        columns["group"] = split_groups(columns["split"], crops.ids)
    items = _items_of_crops(crops.file, raw, [str(crops.file)] * len(raw), crops.labels,
                            crops.ids, columns, options)
    # 8-bit three-channel arrays are colour photographs (MedMNIST's blood/derma/path sets)
    items.meta["rgb"] = bool(raw[0].dtype == np.uint8 and raw[0].shape[0] == 3)
    return items


def __getattr__(name: str):
    # the GUI calls these through this module; they live in io/points.py, io/label_crops.py
    if name == "items_from_points":
        from napari_cellcurator.core.io import points

        return points.items_from_points
    if name == "items_from_labels_layer":
        from napari_cellcurator.core.io import label_crops

        return label_crops.items_from_labels_layer
    raise AttributeError(name)
