"""Items and predictions → napari layer data tuples (numpy/pandas only, no Qt, no torch).

Shared by the reader (which must work without a window), the Load widget and
:func:`napari_cellcurator._qt.show.show_task_results`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from napari_cellcurator.core.io.items import ItemSet

#: distinct colours for classes (tab10), RGBA
PALETTE = np.array([
    (0.12, 0.47, 0.71), (1.0, 0.50, 0.05), (0.17, 0.63, 0.17), (0.84, 0.15, 0.16),
    (0.58, 0.40, 0.74), (0.55, 0.34, 0.29), (0.89, 0.47, 0.76), (0.50, 0.50, 0.50),
    (0.74, 0.74, 0.13), (0.09, 0.75, 0.81),
])
CHANNEL_COLORMAPS = ("gray", "green", "magenta", "cyan", "yellow", "red", "blue")
MOSAIC_GAP = 2
HUMAN_SYMBOL, MODEL_SYMBOL = "square", "disc"
#: the columns this plugin writes into ``layer.features``; ``shown_class`` (label, else
#: prediction) colours the items — never ``class``, the user's own expert labels column
FEATURE_COLUMNS = ("item_id", "label", "label_source", "prediction", "probability",
                   "uncertainty", "shown_class")


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
    feats["shown_class"] = np.where(feats["label"] != "", feats["label"], feats["prediction"])
    return feats


def point_style(features: pd.DataFrame, classes: list[str]) -> dict:
    """Border colour by class, opacity by confidence, symbol by label source."""
    prob = features["probability"].to_numpy(dtype=float)
    human = features["label_source"].to_numpy() == "human"
    alpha = np.where(np.isnan(prob) | human, 1.0, 0.35 + 0.65 * np.nan_to_num(prob))
    border = class_colors(classes, features["shown_class"], alpha)
    return {
        "border_color": border,
        "face_color": np.zeros((len(features), 4)),
        "symbol": np.where(human, HUMAN_SYMBOL, MODEL_SYMBOL),
        "border_width": np.where(human, 0.16, 0.08),
    }


def labels_colormap_dict(features: pd.DataFrame, label_ids: np.ndarray,
                         classes: list[str]) -> dict:
    """{label id: RGBA} for a Labels layer: class colour, faint when unsure, solid when human."""
    style = point_style(features, classes)
    colors = {None: np.zeros(4), 0: np.zeros(4)}
    for lid, rgba, human in zip(label_ids, style["border_color"],
                                features["label_source"].to_numpy() == "human", strict=True):
        c = rgba.copy()
        c[3] = 1.0 if human else min(0.8, c[3])
        colors[int(lid)] = c
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
