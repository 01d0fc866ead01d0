"""The mixture task: proportion of two cell types in short time-lapse snippets (dCNN paper).

Items are ℓ-frame × S×S snippets (``frames`` input, (N, ℓ, S, S), normalised per snippet);
the label is the fraction of the second cell type (``classes[1]``) in [0, 1]. Training data
are a manifest CSV (see :mod:`napari_cellcurator.core.io.manifest`); prediction data may also
be a single movie, tiled over its whole field of view.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from napari_cellcurator.core.data.snippets import augment_snippets
from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.io.mixture_readers import SnippetOptions, read_mixture_path
from napari_cellcurator.core.tasks.base import Hyper, ProportionTask, ReadOptions

#: snippets averaged into the optional training-set mean image
MEAN_IMAGE_SAMPLES = 256


class MixtureTask(ProportionTask):
    """Snippets → proportion of ``classes[1]``. Inputs: ``frames`` (N, ℓ, S, S)."""

    name = "mixture"
    default_arch = "dcnn"
    input_keys = ("frames",)
    hyper = Hyper(epochs=12, batch_size=32, lr=2e-3, weight_decay=0.05, val_fraction=0.2,
                  balance="none")

    def read(self, path: Path, options: ReadOptions) -> ItemSet:
        return read_mixture_path(path, SnippetOptions.from_extra(options.extra, options.channels))

    def fit_preprocessing(self, items: ItemSet, options: ReadOptions) -> dict:
        frames = items.arrays["frames"]
        if len(frames) == 0:
            raise InputError(None, "no training snippets")
        opts = SnippetOptions.from_extra(options.extra, options.channels)
        prep = {
            "read_options": {"channels": options.channels, "crop_size": None,
                             "extra": opts.as_extra()},
            "in_frames": int(frames.shape[1]),
            "input_size": int(frames.shape[-1]),
        }
        if opts.mean_image:  # the paper subtracts the training-set mean snippet
            rng = np.random.default_rng(opts.seed)
            idx = np.sort(rng.choice(len(frames), min(len(frames), MEAN_IMAGE_SAMPLES),
                                     replace=False))
            prep["mean_image"] = items.load(idx, "frames").mean(axis=0).round(5).tolist()
        return prep

    def make_batch(self, items, index, prep, augment, rng):
        x = items.load(index, "frames").astype(np.float32)
        want = (prep["in_frames"], prep["input_size"], prep["input_size"])
        if x.ndim != 4 or x.shape[1:] != want:
            raise InputError(items.meta.get("path"), f"snippets have shape {x.shape[1:]}",
                             f"{want} as the model was trained on")
        if "mean_image" in prep:
            x = x - np.asarray(prep["mean_image"], dtype=np.float32)[None]
        if augment:
            x = augment_snippets(x, rng)
        return {"frames": torch.from_numpy(np.ascontiguousarray(x))}

    def model_spec(self, prep, classes):
        # the head is recorded so a later change of the builders' default cannot silently
        # make saved models unloadable (the *_fc architectures ignore it)
        return {"in_frames": prep["in_frames"], "input_size": prep["input_size"],
                "n_outputs": 1, "head": "map"}


def proportion_map(pred_table: pd.DataFrame, movie_shape: tuple[int, ...], tile: int,
                   stride: int) -> np.ndarray:
    """Predicted proportions laid out on the tile grid of one movie.

    Parameters
    ----------
    pred_table
        Prediction table with ``proportion`` and tile origins ``y0``, ``x0`` (or centres
        ``y``, ``x``) and optionally ``t0``; composite rows (``kind == "composite"``) are
        ignored.
    movie_shape
        (T, Y, X) of the movie (only the last two are used).
    tile, stride
        Tile side and spatial stride in movie pixels.

    Returns
    -------
    np.ndarray
        (T', Y', X') float32, one value per tile: T' = distinct snippet start frames (in
        order), Y' = (Y − tile) // stride + 1 (same for X'); NaN where no tile was predicted.
    """
    t = pred_table
    if "kind" in t.columns:
        t = t[t["kind"].astype(str) != "composite"]
    h, w = int(movie_shape[-2]), int(movie_shape[-1])
    ny, nx = max(0, (h - tile) // stride + 1), max(0, (w - tile) // stride + 1)
    if "y0" in t.columns:
        y0, x0 = t["y0"].to_numpy(float), t["x0"].to_numpy(float)
    else:
        y0, x0 = t["y"].to_numpy(float) - tile / 2, t["x"].to_numpy(float) - tile / 2
    t0 = t["t0"].to_numpy() if "t0" in t.columns else np.zeros(len(t), dtype=int)
    frames = np.unique(t0)
    out = np.full((max(1, len(frames)), ny, nx), np.nan, dtype=np.float32)
    iy = np.rint(y0 / stride).astype(int)
    ix = np.rint(x0 / stride).astype(int)
    it = np.searchsorted(frames, t0)
    ok = (iy >= 0) & (iy < ny) & (ix >= 0) & (ix < nx)
    out[it[ok], iy[ok], ix[ok]] = t["proportion"].to_numpy(np.float32)[ok]
    return out


def summarise(pred_table: pd.DataFrame) -> pd.DataFrame:
    """Mean ± SD of the predicted proportion across snippets, per movie (``source``) and
    manifest row, with the labelled proportion where known."""
    keys = [c for c in ("source", "row") if c in pred_table.columns]
    t = pred_table.copy()
    t["_label"] = pd.to_numeric(t["label"], errors="coerce") if "label" in t else np.nan
    g = t.groupby(keys, sort=False)
    out = g["proportion"].agg(["mean", "std", "count"]).rename(
        columns={"mean": "proportion_mean", "std": "proportion_std", "count": "n_snippets"})
    out["label_mean"] = g["_label"].mean()
    return out.reset_index()
