"""The cellness task: is a calcium-imaging ROI candidate a cell? (footprint patch + trace)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from napari_cellcurator.core.data.traces import robust_normalise
from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.items import FORMER_ID, ItemSet, concat_itemsets
from napari_cellcurator.core.io.movies import MOVIE_SUFFIXES, is_video_folder
from napari_cellcurator.core.io.rois import CLASSES, footprints_to_labels, roiset_to_items
from napari_cellcurator.core.tasks.base import ClassificationTask, Hyper, ReadOptions

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"
MIN_CROP = 48  # shortest random trace window used as augmentation


def read_rois(path: Path, options: ReadOptions) -> ItemSet:
    """Detect the format of ``path`` and read its ROI candidates.

    CaImAn ids are ``<folder>/<file stem>:k``, as Suite2p's and Minian's name their
    recording's folder: CaImAn pipelines save ``analysis_results.hdf5`` in every session
    folder, and sessions read together must keep distinct ids. (Other formats are named
    after files that name their session: a movie, an NWB file.)
    """
    items = _read_rois(Path(path), options)
    if items.meta.get("format") != "caiman":
        return items
    return with_session_ids(items, Path(path))


def with_session_ids(items: ItemSet, path: Path) -> ItemSet:
    """Ids ``<stem>:k`` → ``<parent folder>/<stem>:k`` (the old id kept as ``FORMER_ID`` so
    labels journaled under it still apply)."""
    folder = path.expanduser().resolve().parent.name
    ids = items.table["item_id"].astype(str)
    if not folder or not len(ids) or not ids.str.startswith(f"{path.stem}:").all():
        return items
    table = items.table.copy()
    table[FORMER_ID] = ids.to_numpy()
    table["item_id"] = (f"{folder}/" + ids).to_numpy()
    return ItemSet(table, items.arrays, items.meta)


def _read_rois(path: Path, options: ReadOptions) -> ItemSet:
    from napari_cellcurator.core.io import suite2p

    path = Path(path)
    extra = dict(options.extra)
    if options.crop_size:
        extra.setdefault("patch_size", options.crop_size)
    suffix = path.suffix.lower()
    if suffix == ".npy" and (path.parent / "stat.npy").is_file():
        path, suffix = path.parent, ""  # stat.npy / F.npy / iscell.npy: their plane folder
    if path.is_dir() or path.name == "regions.json":
        from napari_cellcurator.core.io.neurofinder import neurofinder_root, read_neurofinder

        if neurofinder_root(path) is not None:  # images/ + regions/regions.json
            return roiset_to_items(read_neurofinder(path, options.progress), extra)
    if path.is_dir():
        from napari_cellcurator.core.io.minian import minian_folder, read_minian

        if minian_folder(path) is not None:  # the folder, or one of its stores (A.zarr)
            return roiset_to_items(read_minian(path, extra), extra)
    if path.is_dir() and suffix != ".zarr":
        if suite2p.is_suite2p_folder(path):
            sets = [roiset_to_items(r, extra) for r in suite2p.read_suite2p(path, extra)]
            return concat_itemsets(sets)
        movie = frame_folder_of(path)
        if movie is None:
            raise InputError(path, "is not a Suite2p folder", "a plane folder with stat.npy, "
                             "its parent, a Minian folder (A.zarr, C.zarr), a CaImAn .hdf5, "
                             "an NWB file, an Allen .json, a Neurofinder data set, a "
                             "movie .tif/.zarr/.npy/.h5/.mmap/data.bin/.avi, a folder of "
                             ".avi (Miniscope) or of one image per frame")
        path = movie  # the folder of frames, or a Neurofinder test set's images/
    if suffix == ".json":
        from napari_cellcurator.core.io.allen import read_allen_json

        return roiset_to_items(read_allen_json(path, extra), extra)
    if suffix in (".hdf5", ".h5"):
        from napari_cellcurator.core.io.caiman import is_caiman_results, read_caiman

        if is_caiman_results(path):
            return roiset_to_items(read_caiman(path, extra), extra)
    if suffix == ".nwb":
        from napari_cellcurator.core.io.nwb import has_segmentation, read_nwb

        if has_segmentation(path):
            return concat_itemsets([roiset_to_items(r, extra) for r in read_nwb(path, extra)])
        # else a raw recording: its movie's candidates (below)
    if suffix in MOVIE_SUFFIXES or path.is_dir():  # a raw movie (so is an HDF5 without
        # CaImAn estimates, or a folder of videos)
        from napari_cellcurator.core.io.pcaica import read_movie_candidates
        from napari_cellcurator.core.io.roi_masks import mask_file_for, read_movie_with_masks

        masks = mask_file_for(path)
        if masks is not None:  # ROIs from elsewhere (Cellpose, Fiji labels or RoiSet.zip)
            return roiset_to_items(read_movie_with_masks(path, masks, options.progress),
                                   extra)

        return roiset_to_items(read_movie_candidates(path, extra, options.progress), extra)
    raise InputError(path, "is not a recognised cellness format", "Suite2p folder, Minian "
                     "folder, CaImAn .hdf5/.h5, NWB .nwb, Allen .json, or a raw movie "
                     ".tif/.tiff/.zarr/.npy/"
                     ".h5/.mmap/data.bin/.avi/.mp4")


def frame_folder_of(folder: Path) -> Path | None:
    """The movie a folder that is no pipeline's output holds: itself when it holds videos
    (Miniscope) or frame images (one TIFF per frame, as microscopes and Neurofinder save
    them), its ``images/`` frame folder (a Neurofinder test set, without regions); else None.
    """
    from napari_cellcurator.core.io.images import image_files

    if is_video_folder(folder) or image_files(folder):
        return folder
    frames = folder / "images"
    return frames if frames.is_dir() and image_files(frames) else None


def trace_batch(traces: np.ndarray, augment: bool, rng: np.random.Generator) -> np.ndarray:
    """Normalised traces; with ``augment`` a common random window, gain and noise."""
    x = robust_normalise(traces)
    if augment and x.shape[1] > MIN_CROP:
        length = int(rng.integers(MIN_CROP, x.shape[1] + 1))
        start = rng.integers(0, x.shape[1] - length + 1, size=len(x))
        x = np.stack([row[s:s + length] for row, s in zip(x, start, strict=True)])
        x = robust_normalise(x)
    if augment:
        x = x * rng.uniform(0.8, 1.25, size=(len(x), 1)).astype(np.float32)
        x = x + rng.normal(0, 0.05, size=x.shape).astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def image_batch(images: np.ndarray, augment: bool, rng: np.random.Generator) -> np.ndarray:
    """Patches; with ``augment`` random 90° rotations and flips (ROIs have no orientation)."""
    x = np.asarray(images, dtype=np.float32)
    if augment:
        x = np.rot90(x, int(rng.integers(4)), axes=(2, 3))
        if rng.random() < 0.5:
            x = x[..., ::-1]
    return np.ascontiguousarray(x)


class CellnessTask(ClassificationTask):
    """ROI candidate → cell / not_cell. Inputs ``image`` (N, C, S, S), ``trace`` (N, T)."""

    name = "cellness"
    default_arch = "twobranch"
    # Suite2p iscell / CaImAn idx_components come from those pipelines' own classifiers
    file_labels_are_predictions = True
    input_keys = ("image", "trace")
    # footprint and mask are 0 outside the ROI, context channels zero-mean per patch: a
    # patch-mean fill would paint footprint where there is none
    occlusion_fill = "zero"
    hyper = Hyper(epochs=30, batch_size=32, lr=1e-3, weight_decay=1e-3, val_fraction=0.2,
                  balance="sampler")

    def read(self, path: Path, options: ReadOptions) -> ItemSet:
        return read_rois(path, options)

    def classes_from(self, items: ItemSet) -> list[str]:
        found = set(items.table["label"].dropna().astype(str))
        unknown = found - set(CLASSES)
        if unknown:
            raise InputError(items.meta.get("path"), f"labels {sorted(unknown)} are not "
                             "cellness classes", f"{CLASSES}")
        return list(CLASSES)

    def check_label(self, label: str, known: list[str], new_class: bool = False) -> str:
        if label.strip() not in CLASSES:  # two classes, always: no new ones
            raise InputError(None, f"label {label!r} is not a cellness class", f"{CLASSES}")
        return label.strip()

    def fit_preprocessing(self, items: ItemSet, options: ReadOptions) -> dict:
        images = items.arrays["image"]
        if len(images) == 0:
            raise InputError(None, "no training ROIs")
        return {
            "read_options": {"channels": options.channels, "crop_size": int(images.shape[-1]),
                             "extra": dict(options.extra)},
            "input_size": int(images.shape[-1]),
            "in_channels": int(images.shape[1]),
            "trace_norm": "robust_z/5",
            "trace_length_trained": int(items.arrays["trace"].shape[1]),
        }

    def make_batch(self, items, index, prep, augment, rng):
        images = image_batch(items.load(index, "image"), augment, rng)
        traces = trace_batch(items.load(index, "trace"), augment, rng)
        return {"image": torch.from_numpy(images), "trace": torch.from_numpy(traces)}

    def model_spec(self, prep, classes):
        return {"in_channels": prep["in_channels"], "n_outputs": len(classes),
                "input_size": prep["input_size"]}

    def loss(self, logits, targets, class_weights=None, arch: str = ""):
        if arch == "3cnet":  # the report trains 3CNet as an SVM: multiclass hinge loss
            return torch.nn.functional.multi_margin_loss(logits, targets, weight=class_weights)
        return torch.nn.functional.cross_entropy(logits, targets, weight=class_weights)

    def metrics(self, table, scores, classes):
        out = super().metrics(table, scores, classes)
        cell = out.get("per_class", {}).get("cell")
        if cell is not None:
            out.update({"precision": cell["precision"], "recall": cell["recall"],
                        "f1": cell["f1"]})
        return out

    def prediction_table(self, table: pd.DataFrame, scores, classes) -> pd.DataFrame:
        return super().prediction_table(table, scores, classes)

    def default_init(self, arch: str) -> str | None:
        folder = PRETRAINED / f"cellness_{arch}"
        return str(folder) if (folder / "config.json").is_file() else None

    def write_back(self, items: ItemSet, predictions: pd.DataFrame, target: Path) -> Path:
        from napari_cellcurator.core.io.writeback import write_back

        return write_back(items, predictions, target)


__all__ = ["CellnessTask", "footprints_to_labels", "read_rois"]
