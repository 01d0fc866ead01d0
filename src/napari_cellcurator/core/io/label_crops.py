"""Crops of a label image (a napari Labels layer, or the Shapes drawn into one): one item per
label id, cut around the label's centre."""

from __future__ import annotations

import warnings

import numpy as np

from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.io.points import POINT_CROP, POINT_INPUT, items_from_points


def items_from_labels_layer(image: np.ndarray, label_image: np.ndarray,
                            labels: dict | None = None, crop_size: int = POINT_CROP,
                            input_size: int | None = POINT_INPUT,
                            frame: str = "image") -> ItemSet:
    """One item per label id of ``label_image``, cut around its centre (napari Labels layer).

    A label painted in several separate pieces is cut around its largest piece (the centre
    of all pieces may lie on none of them), with a warning.

    Parameters
    ----------
    image
        The frame: 2-D, ``(C, H, W)`` or RGB ``(H, W, 3|4)``.
    label_image
        2-D, the frame's height and width.
    labels
        Optional label id → class name.
    crop_size, input_size, frame
        As :func:`~napari_cellcurator.core.io.points.items_from_points`.

    Returns
    -------
    ItemSet
        With a ``label_id`` column; ids ``<frame>:label<id>``.
    """
    lab = np.asarray(label_image)
    lab = lab.reshape(lab.shape[-2:]) if lab.ndim > 2 and lab.shape[0] == 1 else lab
    if lab.ndim != 2:
        raise InputError(None, f"label image has shape {lab.shape}", "a 2-D label image")
    _check_frame(image, lab)
    ids = np.unique(lab)
    ids = ids[ids > 0]
    centres = label_centres(lab, ids)
    classes = [labels.get(int(i)) if labels else None for i in ids]
    items = items_from_points(image, centres, classes, crop_size, input_size, frame=frame)
    items.table["label_id"] = ids.astype(np.int64)
    items.table["item_id"] = [f"{frame}:label{i}" for i in ids]
    return items


def _check_frame(image: np.ndarray, lab: np.ndarray) -> None:
    """The label image must cover the frame pixel for pixel (else its cells lie elsewhere)."""
    shape = np.shape(image)
    frames = {tuple(shape[:2]), tuple(shape[-2:])} if len(shape) == 3 else {tuple(shape[-2:])}
    if tuple(lab.shape) not in frames:
        raise InputError(None, f"label image of shape {lab.shape} does not match the image "
                         f"{shape}", "a Labels layer painted on this image, pixel for pixel")


def label_centres(lab: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """(row, col) of each label: its centre of mass, or its largest piece's where it has
    several (a centre between two pieces would crop background)."""
    from scipy import ndimage

    centres = np.asarray(ndimage.center_of_mass(np.ones_like(lab), lab, ids)).reshape(-1, 2)
    boxes = ndimage.find_objects(lab)
    split = []
    for k, i in enumerate(ids):
        window = boxes[int(i) - 1]
        pieces, n = ndimage.label(lab[window] == i)
        if n > 1:
            sizes = np.bincount(pieces.ravel())[1:]
            y, x = ndimage.center_of_mass(pieces == np.argmax(sizes) + 1)
            centres[k] = (y + window[0].start, x + window[1].start)
            split.append(int(i))
    if split:
        warnings.warn(f"label(s) {split[:10]} are painted in separate pieces: each is cropped "
                      "around its largest piece (give each cell its own label)", InputWarning,
                      stacklevel=3)
    return centres
