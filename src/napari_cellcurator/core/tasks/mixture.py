"""The mixture task: proportion of two cell types in short time-lapse snippets (dCNN paper).

Items are ℓ-frame × S×S snippets (``frames`` input, (N, ℓ, S, S), normalised per snippet);
the label is the fraction of the second cell type (``classes[1]``) in [0, 1]. Training data
are a manifest CSV (see :mod:`napari_cellcurator.core.io.manifest`); prediction data may also
be a single movie, tiled over its whole field of view.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class MapGrid:
    """Where the cells of a :func:`proportion_map` lie in the movie.

    Attributes
    ----------
    origin_y, origin_x
        Top-left (y0, x0) of the tile in map cell (0, 0), movie pixels.
    step
        Movie pixels between neighbouring map cells (the tile stride when the tiles lie on
        one regular grid). Cell (i, j) holds the tile whose top-left is
        ``(origin_y + i·step, origin_x + j·step)``; its centre is drawn at
        ``origin + index·step + tile / 2 − 0.5`` (napari pixel centres).
    """

    origin_y: int
    origin_x: int
    step: int


def _tile_origins(pred_table: pd.DataFrame, tile: int) -> tuple[pd.DataFrame, np.ndarray,
                                                                  np.ndarray]:
    t = pred_table
    if "kind" in t.columns:
        t = t[t["kind"].astype(str) != "composite"]
    if "y0" in t.columns:
        y0, x0 = t["y0"].to_numpy(float), t["x0"].to_numpy(float)
    else:
        y0, x0 = t["y"].to_numpy(float) - tile / 2, t["x"].to_numpy(float) - tile / 2
    return t, np.rint(y0).astype(np.int64), np.rint(x0).astype(np.int64)


def map_grid(pred_table: pd.DataFrame, tile: int, stride: int) -> MapGrid:
    """The grid :func:`proportion_map` lays the tiles on.

    Parameters
    ----------
    pred_table
        Prediction table (as for :func:`proportion_map`).
    tile, stride
        Tile side and spatial stride in movie pixels.

    Returns
    -------
    MapGrid
        Step = the largest spacing every tile sits on (the greatest common divisor of their
        offsets from the top-left-most tile: several rows with their own strides or regions
        share one grid; the stride when all tiles lie in one row or column); origin = the
        grid point nearest the movie's corner (0 for a movie tiled whole, a manifest row's
        region start otherwise).
    """
    _, y0, x0 = _tile_origins(pred_table, tile)
    if len(y0) == 0:
        return MapGrid(0, 0, max(1, int(stride)))
    oy, ox = int(y0.min()), int(x0.min())
    offsets = np.concatenate([y0 - oy, x0 - ox])
    step = max(1, int(np.gcd.reduce(offsets[offsets > 0])) if (offsets > 0).any()
               else int(stride))
    # the origin nearest the movie's corner: a movie tiled whole keeps origin 0 even when
    # the table holds only some of its tiles
    return MapGrid(oy % step, ox % step, step)


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
        order); cell (i, j) is the tile at ``(origin_y + i·step, origin_x + j·step)`` of
        :func:`map_grid` (the origin is 0 and the step the stride for a movie tiled whole),
        Y' = (Y − origin_y − tile) // step + 1 (same for X'); NaN where no tile was
        predicted. When the step is finer than ``stride`` (rows of other strides), each
        tile also fills the cells within half a stride of its own, so the map has no holes.
    """
    grid = map_grid(pred_table, tile, stride)
    t, y0, x0 = _tile_origins(pred_table, tile)
    h, w = int(movie_shape[-2]), int(movie_shape[-1])
    ny = max(0, (h - grid.origin_y - tile) // grid.step + 1)
    nx = max(0, (w - grid.origin_x - tile) // grid.step + 1)
    t0 = t["t0"].to_numpy() if "t0" in t.columns else np.zeros(len(t), dtype=int)
    frames = np.unique(t0)
    out = np.full((max(1, len(frames)), ny, nx), np.nan, dtype=np.float32)
    iy = (y0 - grid.origin_y) // grid.step
    ix = (x0 - grid.origin_x) // grid.step
    it = np.searchsorted(frames, t0)
    values = t["proportion"].to_numpy(np.float32)
    span = max(1, int(stride) // grid.step)
    for dy in range(-(span // 2), span - span // 2):  # a tile's cell first, then around it
        for dx in range(-(span // 2), span - span // 2):
            _paint(out, it, iy + dy, ix + dx, values, keep=(dy, dx) != (0, 0))
    return out


def _paint(out: np.ndarray, it, iy, ix, values, keep: bool) -> None:
    """Write ``values`` at cells (it, iy, ix) inside ``out`` (``keep``: only empty cells)."""
    _, ny, nx = out.shape
    ok = (iy >= 0) & (iy < ny) & (ix >= 0) & (ix < nx)
    it, iy, ix, values = it[ok], iy[ok], ix[ok], values[ok]
    if keep:
        empty = np.isnan(out[it, iy, ix])
        it, iy, ix, values = it[empty], iy[empty], ix[empty], values[empty]
    out[it, iy, ix] = values


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
