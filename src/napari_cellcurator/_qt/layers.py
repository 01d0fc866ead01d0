"""Items and predictions → napari layer data tuples (numpy/pandas only, no Qt, no torch).

Shared by the reader (which must work without a window), the Load widget and
:func:`napari_cellcurator._qt.show.show_task_results`.

How items look (:func:`point_style`, :func:`labels_colormap_dict`):

* colour = the class shown: a person's label; else a file/cluster label the model agrees
  with (or no prediction yet); else the model's prediction (unlabelled items, and labels
  the model contradicts). 20 distinct colours (:data:`PALETTE`), grey = no class.
* opacity = how sure: a label the model does not weigh in on is solid; a class the model
  backs is faded by its probability, never below :data:`FADE_FLOOR` (0.5).
* Points: squares, thick border = a person's label; discs = file/cluster label or model;
  diamonds (:data:`CONFLICT_SYMBOL`) = a file/cluster label the model contradicts (drawn
  in the model's class colour).
* Labels (ROI footprints): a person's label is opaque; file labels and predictions are at
  most half as opaque; a file label the model contradicts is white (:data:`CONFLICT_RGB`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from napari_cellcurator.core.data.quality import QC_FLAG
from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.triage import PERSON_SOURCES

#: 20 distinct colours for classes, RGB: tab10's strong colours without its grey, yellow and
#: magenta, then tab20's light ones without grey (a violet and a teal for its pale lavender
#: and tan) — no grey: grey means "no class"
PALETTE = np.array([
    (0.12, 0.47, 0.71), (1.0, 0.50, 0.05), (0.17, 0.63, 0.17), (0.84, 0.15, 0.16),
    (0.58, 0.40, 0.74), (0.55, 0.34, 0.29), (0.89, 0.47, 0.76), (0.74, 0.74, 0.13),
    (0.09, 0.75, 0.81), (1.0, 0.87, 0.0), (0.80, 0.0, 0.80),
    (0.68, 0.78, 0.91), (1.0, 0.73, 0.47), (0.60, 0.87, 0.54), (1.0, 0.60, 0.59),
    (0.70, 0.55, 0.95), (0.0, 0.50, 0.50), (0.97, 0.71, 0.82), (0.86, 0.86, 0.55),
    (0.62, 0.85, 0.90),
])
#: least opacity of a predicted class (probability 0 → FADE_FLOOR, 1 → 1)
FADE_FLOOR = 0.5
#: colour of a Labels item whose file label the model contradicts (no palette colour)
CONFLICT_RGB = (1.0, 1.0, 1.0)
#: most opacity of a non-human item in a Labels layer (a person's label: 1)
LABELS_MODEL_ALPHA = 0.5
CHANNEL_COLORMAPS = ("gray", "green", "magenta", "cyan", "yellow", "red", "blue")
MOSAIC_GAP = 2
HUMAN_SYMBOL, MODEL_SYMBOL, CONFLICT_SYMBOL = "square", "disc", "diamond"
#: the columns this plugin writes into ``layer.features``; ``shown_class`` (the class
#: shown, see the module docstring) colours the items — never ``class``, the user's own
#: expert labels column
FEATURE_COLUMNS = ("item_id", "label", "label_source", "prediction", "probability",
                   "uncertainty", "shown_class", QC_FLAG)


def class_color(classes: list[str], name: str | None, alpha: float = 1.0) -> np.ndarray:
    """RGBA colour of class ``name`` (grey for unknown/empty)."""
    if name is None or name == "" or name not in classes:
        return np.array([0.6, 0.6, 0.6, alpha * 0.6])
    rgb = PALETTE[classes.index(name) % len(PALETTE)]
    return np.array([*rgb, alpha])


def class_colors(classes: list[str], names, alpha: np.ndarray) -> np.ndarray:
    """``(n, 4)`` RGBA of :func:`class_color` for many items at once (one lookup per class,
    not per item: a keypress re-colours every item of the layer)."""
    known = list(dict.fromkeys(str(c) for c in classes))
    table = np.array([class_color(known, c) for c in known] + [class_color(known, None)])
    names = pd.Series(names, dtype=object)
    names = names.where(names.notna(), "").astype(str)  # None / NaN: no class (grey)
    codes = pd.Index(known).get_indexer(names)  # -1: not a class
    rgba = table[np.where(codes < 0, len(known), codes)].reshape(-1, 4)
    rgba[:, 3] = np.asarray(alpha, dtype=float) * np.where(codes < 0, 0.6, 1.0)
    return rgba


def mosaic_positions(n: int, size: int) -> tuple[np.ndarray, int]:
    """Top-left (row, col) pixel of each of ``n`` crops tiled in a near-square grid."""
    cols = max(1, math.ceil(math.sqrt(n)))
    step = size + MOSAIC_GAP
    idx = np.arange(n)
    return np.stack([(idx // cols) * step, (idx % cols) * step], axis=1), cols


def mosaic(crops: np.ndarray) -> np.ndarray:
    """(N, C, S, S) crops → (C, H, W) image with the crops on a grid (gaps are 0)."""
    n, c, s = crops.shape[0], crops.shape[1], crops.shape[-1]
    pos, cols = mosaic_positions(n, s)
    rows = max(1, math.ceil(n / cols))
    step = s + MOSAIC_GAP
    out = np.zeros((c, rows * step, cols * step), dtype=np.float32)
    for i, (y, x) in enumerate(pos):
        out[:, y:y + s, x:x + s] = crops[i]
    return out


def item_centres(items: ItemSet) -> np.ndarray:
    """(N, 2) y, x of each item in the displayed frame (mosaic for crops, table y/x otherwise)."""
    t = items.table
    if "y" in t.columns and "x" in t.columns and "mosaic" not in items.meta:
        return t[["y", "x"]].to_numpy(dtype=float)
    s = items.arrays["image"].shape[-1]
    pos, _ = mosaic_positions(len(items), s)
    return pos + (s - 1) / 2.0


def item_features(table: pd.DataFrame, predictions: pd.DataFrame | None = None,
                  sources: pd.Series | None = None) -> pd.DataFrame:
    """Feature table of the item layer: label, its source, prediction and confidence.

    Parameters
    ----------
    table
        Item table (``item_id``, ``label``) with labels already merged with the journal.
    predictions
        Prediction table in the same row order, or None.
    sources
        ``label_source`` per row (``human``, ``data``...); default ``data`` where labelled.
    """
    n = len(table)
    label = table["label"].astype(object).where(table["label"].notna(), "").astype(str)
    if sources is None:
        if "label_source" in table.columns:
            sources = table["label_source"]
        else:
            sources = pd.Series(np.where(label != "", "file", ""), index=table.index)
    feats = pd.DataFrame({
        "item_id": table["item_id"].astype(str).to_numpy(),
        "label": label.to_numpy(),
        "label_source": pd.Series(sources).fillna("").astype(str).to_numpy(),
        "prediction": [""] * n,
        "probability": np.full(n, np.nan),
        "uncertainty": np.full(n, np.nan),
    })
    if predictions is not None and len(predictions) == n:
        feats["prediction"] = predictions["prediction"].astype(str).to_numpy()
        feats["probability"] = predictions["probability"].to_numpy(dtype=float)
        feats["uncertainty"] = predictions["uncertainty"].to_numpy(dtype=float)
    feats["shown_class"] = np.where(_conflict(feats) | (feats["label"] == ""),
                                    feats["prediction"], feats["label"])
    if QC_FLAG in table.columns:  # why the quality filter would drop it: not trained on
        feats[QC_FLAG] = table[QC_FLAG].fillna("").astype(str).to_numpy()
    return feats


def _conflict(features: pd.DataFrame) -> np.ndarray:
    """Items whose file/cluster label the model's prediction contradicts."""
    label = features["label"].to_numpy().astype(str)
    pred = features["prediction"].to_numpy().astype(str)
    human = features["label_source"].isin(PERSON_SOURCES).to_numpy()
    return (label != "") & (pred != "") & (pred != label) & ~human


def item_alpha(features: pd.DataFrame) -> np.ndarray:
    """Opacity of each item: solid for a person's label or a label the model does not
    weigh in on; otherwise faded by the probability of the class shown (the model's)."""
    prob = features["probability"].to_numpy(dtype=float)
    human = features["label_source"].isin(PERSON_SOURCES).to_numpy()
    pred = features["prediction"].to_numpy().astype(str)
    by_model = ~human & ~np.isnan(prob) & (pred != "") & (
        pred == features["shown_class"].to_numpy().astype(str))
    return np.where(by_model, FADE_FLOOR + (1 - FADE_FLOOR) * np.nan_to_num(prob), 1.0)


def point_style(features: pd.DataFrame, classes: list[str]) -> dict:
    """Border colour by the class shown, opacity by confidence, symbol by label source
    (square: a person's; diamond: a label the model contradicts; disc: otherwise)."""
    human = features["label_source"].isin(PERSON_SOURCES).to_numpy()
    border = class_colors(classes, features["shown_class"], item_alpha(features))
    symbol = np.where(human, HUMAN_SYMBOL,
                      np.where(_conflict(features), CONFLICT_SYMBOL, MODEL_SYMBOL))
    return {
        "border_color": border,
        "face_color": np.zeros((len(features), 4)),
        "symbol": symbol,
        "border_width": np.where(human, 0.22, 0.15),
    }


def labels_colormap_dict(features: pd.DataFrame, label_ids: np.ndarray,
                         classes: list[str]) -> dict:
    """{label id: RGBA} for a Labels layer: class colour; a person's label opaque, others
    at most :data:`LABELS_MODEL_ALPHA` and fainter when unsure; contradicted file labels
    :data:`CONFLICT_RGB`."""
    human = features["label_source"].isin(PERSON_SOURCES).to_numpy()
    rgba = class_colors(classes, features["shown_class"], item_alpha(features))
    rgba[_conflict(features), :3] = CONFLICT_RGB
    rgba[:, 3] = np.where(human, 1.0, rgba[:, 3] * LABELS_MODEL_ALPHA)
    colors = {None: np.zeros(4), 0: np.zeros(4)}
    colors.update({int(lid): c for lid, c in zip(label_ids, rgba, strict=True)})
    return colors


def celltype_layer_data(items: ItemSet, predictions: pd.DataFrame | None = None,
                        classes: list[str] | None = None, name: str = "cells") -> list[tuple]:
    """Crops as a mosaic (one image layer per channel) plus a Points layer of items."""
    crops = np.asarray(items.arrays["image"])
    items.meta["mosaic"] = True
    classes = classes or list(items.meta.get("classes") or
                              sorted(items.table["label"].dropna().astype(str).unique()))
    img = mosaic(crops)
    n_ch = img.shape[0]
    image_meta = {"name": [f"{name} ch{c}" for c in range(n_ch)] if n_ch > 1 else f"{name} crops",
                  "metadata": {"cellcurator_role": "image"}}
    if n_ch == 3 and _from_colour_files(items):  # RGB photographs (stained smears): one layer
        img = np.moveaxis(img, 0, -1)
        img = np.clip(img / (255.0 if img.max() > 1 else 1.0), 0, 1)
        image_meta.update(name=f"{name} crops", rgb=True)
        n_ch = 1
        img = img[None]
    elif n_ch > 1:
        image_meta.update(channel_axis=0, blending="additive",
                          colormap=[CHANNEL_COLORMAPS[c % len(CHANNEL_COLORMAPS)]
                                    for c in range(n_ch)])
    feats = item_features(items.table, predictions)
    points_meta = {
        "name": f"{name} items", "features": feats, "size": crops.shape[-1],
        "metadata": {"cellcurator_role": "items", "cellcurator_task": "celltype",
                     "cellcurator_path": items.meta.get("path"), "classes": classes},
        **point_style(feats, classes),
    }
    return [(img if n_ch > 1 else img[0], image_meta, "image"),
            (item_centres(items), points_meta, "points")]


def _from_colour_files(items: ItemSet) -> bool:
    """Whether the crops were cut from RGB photographs (JPEG/PNG/BMP), not channel stacks."""
    if items.meta.get("rgb"):  # the reader knew (8-bit RGB arrays of an .npz)
        return True
    column = "frame" if "frame" in items.table.columns else "source"
    suffixes = items.table[column].astype(str).str.lower().str.rsplit(".", n=1).str[-1]
    return len(suffixes) > 0 and suffixes.isin(["jpg", "jpeg", "png", "bmp"]).all()


def layer_data_for(task: str, items: ItemSet, predictions: pd.DataFrame | None = None,
                   classes: list[str] | None = None) -> list[tuple]:
    """Layer data tuples for the items of ``task`` (dispatch to the task's builder)."""
    if task == "celltype":
        return celltype_layer_data(items, predictions, classes)
    if task == "cellness":
        from napari_cellcurator._qt.task_layers import cellness_layer_data

        return cellness_layer_data(items, predictions, classes)
    if task == "mixture":
        from napari_cellcurator._qt.task_layers import mixture_layer_data

        return mixture_layer_data(items, predictions)
    raise ValueError(f"no layers for task {task!r}")
