"""Crops stored as arrays: a NumPy ``.npz`` or an HDF5 ``.h5``/``.hdf5`` of images and labels
(MedMNIST and ML exports; in HDF5 also ``train/images`` in a group per set).

Layouts understood (key names compared case-insensitively):

- ``images`` + ``labels`` (also ``x``/``y``, ``imgs``, ``data``/``targets``...): one set;
- ``train_images``, ``val_images``, ``test_images`` + the matching ``*_labels`` (MedMNIST):
  train and val are read (val stays on the validation side of the split), test is kept aside
  and read with ``data.npz#test``;
- optional ``classes`` / ``class_names``: the names of the integer labels.

Images are ``(N, H, W)``, ``(N, H, W, C)`` (channels last, C ≤ 4) or ``(N, C, H, W)``.
Arrays are loaded with ``allow_pickle=False``: an ``.npz`` holding Python objects is refused.
An HDF5 file is crops when it holds an image array *and* a label array (else it is a movie or
CaImAn results: :func:`holds_crops`).
"""

from __future__ import annotations

import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_cellcurator.core.errors import InputError, InputWarning

ARRAY_SUFFIXES = (".npz", ".h5", ".hdf5")
IMAGE_KEYS = ("images", "image", "imgs", "x", "data", "crops")
LABEL_KEYS = ("labels", "label", "y", "targets", "target", "classes_idx")
NAME_KEYS = ("classes", "class_names", "label_names", "names")
SPLITS = {"train": "train", "training": "train", "val": "val", "valid": "val",
          "validation": "val", "test": "test"}


def split_fragment(path: str | Path) -> tuple[Path, str | None]:
    """``data.npz#test`` → (``data.npz``, ``"test"``); a path without a fragment → (path, None).

    A real file whose name contains ``#`` is taken as it is.
    """
    path = Path(path)
    if path.exists() or "#" not in path.name:
        return path, None
    stem, _, fragment = path.name.rpartition("#")
    return path.with_name(stem), fragment.lower() or None


def is_array_file(path: str | Path) -> bool:
    """An ``.npz``, or an HDF5 file of crops and labels (a ``#split`` suffix allowed)."""
    file, _ = split_fragment(path)
    if file.suffix.lower() not in ARRAY_SUFFIXES or not file.is_file():
        return False
    return file.suffix.lower() == ".npz" or holds_crops(file, labelled=False)


def holds_crops(path: Path, labelled: bool = True) -> bool:
    """Whether an HDF5 file holds crops: an image array (by name) and, when ``labelled``, a
    label array for each set (what tells crops from a movie when no task is given)."""
    try:
        arrays = _H5Arrays(path)
    except InputError:
        return False
    try:
        sets = array_sets(path, arrays)
    except InputError:
        return False
    finally:
        arrays.close()
    return not labelled or all(label is not None for _, label in sets.values())


class _H5Arrays:
    """The datasets of an HDF5 file (root and one group level: ``train/images``), each read
    when first asked for; the :class:`_Arrays` interface."""

    def __init__(self, path: Path):
        from napari_cellcurator.core.io.hdf5 import import_h5py, open_hdf5

        h5py = import_h5py("hdf5")
        self.path = path
        self._fh = open_hdf5(path, "HDF5")
        self.files = []
        for name, node in self._fh.items():
            if isinstance(node, h5py.Dataset):
                self.files.append(name)
            elif isinstance(node, h5py.Group):
                self.files += [f"{name}/{k}" for k, v in node.items()
                               if isinstance(v, h5py.Dataset)]

    def __getitem__(self, key: str) -> np.ndarray:
        data = self._fh[key]
        if data.dtype.kind in "SO":  # class names stored as bytes or variable-length strings
            return np.array([v.decode() if isinstance(v, bytes) else str(v)
                             for v in np.asarray(data).ravel()])
        return np.asarray(data)

    def __iter__(self):
        return iter(self.files)

    def close(self) -> None:
        self._fh.close()


class _Arrays:
    """The arrays of an ``.npz``, each read when first asked for (a MedMNIST file's test
    set is not loaded to train), never with pickle."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._npz = np.load(path, allow_pickle=False)
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise InputError(path, f"is not a readable .npz ({exc})") from None
        self.files = list(self._npz.files)
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._cache:
            try:
                self._cache[key] = self._npz[key]
            except ValueError as exc:  # object arrays need pickle: never load them
                raise InputError(self.path, f"array {key!r} needs pickle to load ({exc})",
                                 "plain numeric/string arrays (np.savez(images=..., "
                                 "labels=...))") from None
            except (OSError, zipfile.BadZipFile, EOFError) as exc:
                raise InputError(self.path, f"array {key!r} cannot be read ({exc})") from None
        return self._cache[key]

    def __iter__(self):
        return iter(self.files)

    def close(self) -> None:
        self._npz.close()


def _find(keys: dict[str, str], names: tuple[str, ...]) -> str | None:
    """The first of ``names`` among ``keys`` (lower case → the file's own key)."""
    return next((keys[n] for n in names if n in keys), None)


def array_sets(path: Path, arrays) -> dict[str, tuple[str, str | None]]:
    """``{split: (image key, label key or None)}``; split ``"all"`` for a one-set file."""
    keys = {k.lower(): k for k in arrays}
    found = {}
    for name, split in SPLITS.items():
        for sep in ("_", "-", "/", ""):
            # train_images (MedMNIST) or images_train / x_train (Keras)
            for image_keys, label_keys in (
                    ([name + sep + k for k in IMAGE_KEYS], [name + sep + k for k in LABEL_KEYS]),
                    ([k + sep + name for k in IMAGE_KEYS], [k + sep + name for k in LABEL_KEYS])):
                image = _find(keys, tuple(image_keys))
                if image is not None and split not in found:
                    found[split] = (image, _find(keys, tuple(label_keys)))
    if found:
        return found
    image = _find(keys, IMAGE_KEYS)
    if image is None:
        raise InputError(path, f"has no image array among its keys {sorted(arrays)[:12]}",
                         "keys such as images + labels, or train_images + train_labels")
    return {"all": (image, _find(keys, LABEL_KEYS))}


def to_nchw(images: np.ndarray, path: Path, key: str) -> np.ndarray:
    """Images as ``(N, C, H, W)``; channels last when the last axis is short (≤ 4)."""
    if images.ndim == 3:
        return images[:, None]
    if images.ndim != 4:
        raise InputError(path, f"array {key!r} has shape {images.shape}",
                         "(N, H, W), (N, H, W, C) or (N, C, H, W) images")
    if images.shape[-1] <= 4 and images.shape[1] > 4:
        return np.moveaxis(images, -1, 1)
    return images


def label_names(labels: np.ndarray, names: np.ndarray | None, path: Path, key: str
                ) -> list[str | None]:
    """Labels as class names (integer labels mapped through ``names`` when given)."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise InputError(path, f"labels {key!r} have shape {labels.shape} (several labels per "
                         "image?)", "one class per image: shape (N,) or (N, 1)")
    if labels.dtype.kind in "iu" and names is not None:
        names = [str(n) for n in np.asarray(names).ravel()]
        bad = labels[(labels < 0) | (labels >= len(names))]
        if len(bad):
            raise InputError(path, f"label {int(bad[0])} has no name among {len(names)} classes")
        return [names[int(v)] for v in labels]
    if labels.dtype.kind == "f":
        if np.any(np.isnan(labels) | (labels != np.round(labels))):
            raise InputError(path, f"labels {key!r} are not whole numbers",
                             "integer class ids or class names")
        labels = labels.astype(np.int64)
    return [None if str(v) == "" else str(v) for v in labels]


@dataclass
class ArrayCrops:
    """Crops read from an ``.npz``, ready for the crop-table builder.

    Attributes
    ----------
    file
        The ``.npz`` path (without ``#split``).
    raw
        ``(C, H, W)`` crops in the file's pixel type.
    labels
        Class name per crop (None: unlabelled).
    ids
        Item ids (``train/12``; plain index for a one-set file).
    columns
        Extra item-table columns (``split`` for MedMNIST-style files).
    """

    file: Path
    raw: list[np.ndarray]
    labels: list[str | None]
    ids: list[str]
    columns: dict[str, list] = field(default_factory=dict)


def read_array_file(path: str | Path) -> ArrayCrops:
    """Crops and labels of ``path`` (``data.npz`` or ``data.npz#split``)."""
    file, wanted = split_fragment(path)
    arrays = _Arrays(file) if file.suffix.lower() == ".npz" else _H5Arrays(file)
    try:
        return _read_sets(file, wanted, arrays)
    finally:
        arrays.close()


def _read_sets(file: Path, wanted: str | None, arrays: _Arrays) -> ArrayCrops:
    sets = array_sets(file, arrays)
    if wanted is not None:
        wanted = SPLITS.get(wanted, wanted)
        if wanted not in sets:
            raise InputError(file, f"has no {wanted!r} set", f"one of {sorted(sets)}")
        used = [wanted]
    else:
        used = [s for s in ("train", "val") if s in sets] or sorted(sets)
        if "test" in sets and used != ["test"]:
            warnings.warn(f"{file.name}: its test images are kept aside (not read); "
                          f"evaluate on them with --data {file}#test", InputWarning, stacklevel=3)
    keys = {k.lower(): k for k in arrays}
    name_key = _find(keys, NAME_KEYS)
    names = arrays[name_key] if name_key else None
    raw, labels, ids, side = [], [], [], []
    for split in used:
        image_key, label_key = sets[split]
        images = to_nchw(np.asarray(arrays[image_key]), file, image_key)
        if label_key is None:
            labs = [None] * len(images)
        else:
            labs = label_names(arrays[label_key], names, file, label_key)
            if len(labs) != len(images):
                raise InputError(file, f"{len(images)} images ({image_key!r}) but "
                                 f"{len(labs)} labels ({label_key!r})")
        raw += list(images)
        labels += labs
        prefix = "" if split == "all" else f"{split}/"
        ids += [f"{prefix}{i}" for i in range(len(images))]
        side += [split] * len(images)
    return ArrayCrops(file, raw, labels, ids, {} if used == ["all"] else {"split": side})
