"""Frames with a label image of their cells beside them (Cellpose, StarDist, Fiji): one
unlabelled cell per label, cut around its centre — candidates to predict and curate.

``field1.png`` + ``field1_cp_masks.png`` (or ``_masks``, ``_rois``…, TIFF/PNG/npy) or the
Cellpose GUI's ``field1_seg.npy``: the same names as a movie's ROI masks
(:mod:`.roi_masks`). Frames without a label image are not read (with a warning).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.io.annotated_frames import AnnotatedFrames
from napari_cellcurator.core.io.images import image_files
from napari_cellcurator.core.io.names import readable


def _frames_with_masks(folder: Path) -> tuple[dict[Path, Path], list[Path]]:
    """``({frame: its label image}, frames without one)``; label images are not frames."""
    from napari_cellcurator.core.io.frame_folders import MAX_FRAME_CHANNELS, tiff_planes
    from napari_cellcurator.core.io.roi_masks import MASK_NAME, label_image_names

    listing = os.listdir(folder)
    if not any(MASK_NAME.search(n) for n in listing):  # a folder of 100,000 crops: one pass
        return {}, []
    names = {n: folder / n for n in listing}
    images = image_files(folder)
    pairs: dict[Path, Path] = {}
    for image in images:
        mask = next((names[n] for n in label_image_names(image.stem) if n in names), None)
        # a movie's ROIs are cellness's: more planes than a frame has channels
        if mask is not None and tiff_planes(image) <= MAX_FRAME_CHANNELS:
            pairs[image] = mask
    masks = set(pairs.values())
    alone = [f for f in images if f not in pairs and f not in masks]
    return pairs, alone


def is_masks_folder(folder: Path) -> bool:
    """Whether ``folder`` holds frames with a label image of their cells beside them."""
    folder = Path(folder)
    return folder.is_dir() and bool(_frames_with_masks(folder)[0])


def masks_frames(folder: Path) -> AnnotatedFrames:
    """The frames of ``folder`` with a cell at the centre of each label of their masks."""
    from napari_cellcurator.core.io.label_crops import label_centres
    from napari_cellcurator.core.io.roi_masks import read_label_image

    folder = Path(folder)
    pairs, alone = _frames_with_masks(folder)
    if alone:
        warnings.warn(f"{readable(folder)}: {len(alone)} image(s) have no label image beside "
                      f"them and are not read: {[f.name for f in alone[:5]]}", InputWarning,
                      stacklevel=3)
    parsed, shapes = {}, {}
    for frame, mask in pairs.items():
        labels = np.clip(read_label_image(mask), 0, None)
        ids = np.unique(labels)
        ids = ids[ids > 0]
        parsed[frame] = (label_centres(labels, ids), [None] * len(ids))
        shapes[frame] = labels.shape[-2:]  # one label per frame pixel: checked on reading
    if not any(len(p) for p, _ in parsed.values()):
        raise InputError(folder, "has label images without cells (all 0)")
    return AnnotatedFrames(parsed, pairs, folder, own_names=True, shapes=shapes)
