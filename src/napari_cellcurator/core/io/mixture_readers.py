"""Readers of the mixture task: a manifest CSV (labelled) or one movie (tiles to predict)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from napari_cellcurator.core.data.composites import (
    DEFAULT_REGIONS,
    Source,
    make_composites,
    region_id,
)
from napari_cellcurator.core.data.snippets import (
    DEFAULT_LENGTH,
    DEFAULT_TILE,
    SnippetArray,
    grid_positions,
)
from napari_cellcurator.core.data.splits import stable_fraction
from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.io.manifest import ManifestRow, read_manifest
from napari_cellcurator.core.io.mixture_splits import (
    composite_side,
    mark_crossing_composites,
    warn_split_conflicts,
)
from napari_cellcurator.core.io.movies import MOVIE_SUFFIXES, Movie, open_movie
from napari_cellcurator.core.io.names import readable

VAL_FRACTION = 0.2  # the task's Hyper.val_fraction; forced splits pick groups on this side


@dataclass
class SnippetOptions:
    """How snippets are cut (``ReadOptions.extra`` keys of the same names).

    ``stride``/``t_stride`` default to tile/2 and 1 for manifests, tile and ℓ for a movie to
    predict; ``max_snippets`` caps each labelled manifest row (seeded subsample) so one large
    movie does not swamp a small one; ``scale`` = 2 reads at half resolution.
    """

    length: int = DEFAULT_LENGTH
    tile: int = DEFAULT_TILE
    stride: int | None = None
    t_stride: int | None = None
    scale: int = 1
    channel: int | str | None = None  # None: channel 0, with a warning if channels differ
    max_snippets: int | None = 600
    n_regions: int = DEFAULT_REGIONS
    seed: int = 0
    mean_image: bool = False

    @classmethod
    def from_extra(cls, extra: dict, channels: list[int] | None = None) -> SnippetOptions:
        known = {k: v for k, v in extra.items() if k in cls.__dataclass_fields__}
        if "half" in extra and "scale" not in extra:
            known["scale"] = 2 if extra["half"] else 1
        if channels and len(channels) > 1:  # the mixture networks see one channel
            raise InputError(None, f"channels {list(channels)}: mixture snippets are read "
                             "from one channel", "one channel index, e.g. --channels 1")
        if channels and "channel" not in known:
            known["channel"] = int(channels[0])
        opts = cls(**known)
        if opts.length < 2 or opts.tile < 4 or opts.scale < 1:
            raise InputError(None, f"invalid snippet options length={opts.length}, "
                             f"tile={opts.tile}, scale={opts.scale}")
        return opts

    def as_extra(self) -> dict:
        return asdict(self)


def read_mixture_path(path: Path, opts: SnippetOptions) -> ItemSet:
    """A ``.csv`` / ``.tsv`` manifest, or a movie to tile for prediction."""
    path = Path(path)
    if path.suffix.lower() in (".csv", ".tsv"):
        return read_manifest_items(path, opts)
    if path.suffix.lower() in MOVIE_SUFFIXES or path.is_dir():
        return read_movie_items(path, opts)
    raise InputError(path, "is not a mixture manifest or movie",
                     "a .csv manifest or a .tif/.tiff/.zarr/.npy/.h5/.mmap/data.bin movie")


def _footprint(opts: SnippetOptions) -> int:
    return opts.tile * opts.scale


def tile_id(prefix: str, t: int, y: int, x: int, footprint: int) -> str:
    """Id of the tile at frame ``t``, top-left ``(y, x)``, ``footprint`` source pixels wide.

    A tile of another footprint than the default gets it in its id (``…:x64:s128``): a
    proportion labelled on a 64 px tile is not the proportion of the 128 px tile at the same
    corner, so a label must not pass from one tiling to another by sharing an id (labels of
    another tiling stay in the journal and apply when the movie is tiled that way again).
    """
    size = "" if footprint == DEFAULT_TILE else f":s{footprint}"
    return f"{prefix}t{t}:y{y}:x{x}{size}"


def _table(movie: Movie, positions: np.ndarray, opts: SnippetOptions, prefix: str,
           source: str, row: int, label: float | None, group: list[str] | None):
    fp = _footprint(opts)
    cy = positions[:, 1] + fp / 2.0
    cx = positions[:, 2] + fp / 2.0
    reg = region_id(cy, cx, movie.shape, opts.n_regions)
    return pd.DataFrame({
        "item_id": [tile_id(prefix, t, y, x, fp) for t, y, x in positions],
        "source": source, "label": label, "row": row, "kind": "tile",
        "t0": positions[:, 0], "y0": positions[:, 1], "x0": positions[:, 2],
        "y": cy, "x": cx, "size": fp,
        "group": [f"region{r}" for r in reg] if group is None else group,
    })


def read_movie_items(path: Path, opts: SnippetOptions) -> ItemSet:
    """Tiles over the whole movie (unlabelled), for prediction and the proportion map."""
    return movie_items(open_movie(path, opts.channel, min_frames=opts.length), opts)


def movie_items(movie: Movie, opts: SnippetOptions) -> ItemSet:
    """Tiles over the whole of an opened movie (a file's, or a napari layer's data)."""
    path = movie.path
    fp = _footprint(opts)
    stride = opts.stride or opts.tile
    stride_px = stride * opts.scale
    t, h, w = movie.shape
    if h < fp or w < fp:
        raise InputError(path, f"frames are {h}×{w}, smaller than one tile ({fp} px)",
                         "a smaller tile size")
    pos = grid_positions((0, t), (0, h), (0, w), opts.length, fp, stride_px,
                         opts.t_stride or opts.length)
    table = _table(movie, pos, opts, f"{readable(path.name)}:", readable(path), 0, None, None)
    table["label"] = None
    arr = SnippetArray.from_positions([movie], np.zeros(len(pos), dtype=np.int64), pos,
                                      opts.length, opts.tile, opts.scale)
    meta = {"path": str(path), "movie": movie.dask, "tile": fp, "stride": stride_px,
            "t_stride": opts.t_stride or opts.length, "classes": ["type_a", "type_b"]}
    return ItemSet(table, {"frames": arr}, meta)


def near_training_side(pos: np.ndarray, fp: int, shape: tuple[int, ...], n_regions: int,
                       val_fraction: float = VAL_FRACTION) -> np.ndarray:
    """Mask of validation-side tiles (``pos`` rows t0, y0, x0; ``fp`` px) that share pixels
    with tiles of the training side.

    A tile's group is the region of its centre and the split hashes region names, so a
    training tile near a border reaches up to ``fp / 2`` into a validation region: 41 % of
    validation tiles shared pixels with training tiles. A validation tile is kept only when
    its footprint grown by ``fp / 2`` stays in validation regions; training keeps every tile
    (small movies cannot spare them). The masked tiles are marked ``crosses_split`` and
    left out of training and validation (:func:`~napari_cellcurator.core.data.splits.
    training_split`); evaluation and prediction read them all.
    """
    # the mask depends on (y0, x0) only: once per place, not per start frame
    places, back = np.unique(pos[:, 1:3], axis=0, return_inverse=True)
    n = n_regions
    val = np.array([stable_fraction(f"region{r}") < val_fraction for r in range(n * n)])
    h, w = shape[-2:]
    reach = fp // 2 + fp % 2

    def cells(start, extent):  # region rows / columns the grown footprint touches
        lo = np.clip(((start - reach) / extent * n).astype(int), 0, n - 1)
        hi = np.clip(((start + fp - 1 + reach) / extent * n).astype(int), 0, n - 1)
        return lo, hi

    y_lo, y_hi = cells(places[:, 0], h)
    x_lo, x_hi = cells(places[:, 1], w)
    own = val[region_id(places[:, 0] + fp / 2, places[:, 1] + fp / 2, shape, n)]
    near = np.zeros(len(places), dtype=bool)
    for k in np.flatnonzero(own):
        touched = val[[ry * n + rx for ry in range(y_lo[k], y_hi[k] + 1)
                       for rx in range(x_lo[k], x_hi[k] + 1)]]
        near[k] = not touched.all()
    return near[back.ravel()]


def forced_group(split: str, key: str, val_fraction: float = VAL_FRACTION) -> str:
    """A group name whose hash puts it on the ``split`` side of :func:`hash_split`."""
    for n in range(10_000):
        g = f"{split}:{key}:{n}"
        if (stable_fraction(g) < val_fraction) == (split == "val"):
            return g
    raise RuntimeError("no group found for a forced split")  # pragma: no cover


def _row_region(row: ManifestRow, movie: Movie, opts: SnippetOptions, csv: Path):
    t, h, w = movie.shape
    y0, x0, y1, x1 = row.box
    box = (y0 or 0, x0 or 0, min(h, y1 or h), min(w, x1 or w))
    t0, t1 = row.trange[0] or 0, min(t, row.trange[1] or t)
    fp = _footprint(opts)
    if box[2] - box[0] < fp or box[3] - box[1] < fp:
        raise InputError(csv, f"row {row.number}: region {box} of {movie.path.name} "
                         f"({h}×{w}) is smaller than one tile ({fp} px)")
    if t1 - t0 < opts.length:
        raise InputError(csv, f"row {row.number}: frames {t0}:{t1} of {movie.path.name} "
                         f"({t} frames) hold fewer than ℓ = {opts.length} frames")
    return box, (t0, t1)


def read_manifest_items(csv: Path, opts: SnippetOptions) -> ItemSet:
    """Snippets of every manifest row, plus the composites it asks for."""
    rows, classes = read_manifest(csv)
    stem = readable(csv.stem)  # item ids stay unique when several manifests are read together
    movies: list[Movie] = []
    index: dict[tuple[str, str], int] = {}
    parts, blocks, grids = [], [], []
    sources: dict[int, Source] = {}
    kmax = max([r.grid or 1 for r in rows] + [1])
    for row in rows:
        if row.path is None:
            continue
        key = (str(row.path.resolve()), str(opts.channel))
        if key not in index:
            try:
                movies.append(open_movie(row.path, opts.channel, min_frames=opts.length))
            except InputError as exc:
                raise InputError(csv, f"row {row.number}: {exc}") from exc
            index[key] = len(movies) - 1
        m = index[key]
        movie = movies[m]
        box, trange = _row_region(row, movie, opts, csv)
        sources[row.number] = Source(m, trange, box, movie.shape)
        stride = (row.stride or opts.stride or max(1, opts.tile // 2)) * opts.scale
        pos = grid_positions(trange, (box[0], box[2]), (box[1], box[3]), opts.length,
                             _footprint(opts), stride, row.t_stride or opts.t_stride or 1)
        cap = row.max_snippets or (opts.max_snippets if row.proportion is not None else None)
        if cap and len(pos) > cap:
            rng = np.random.default_rng([opts.seed, row.number])
            pos = pos[np.sort(rng.choice(len(pos), cap, replace=False))]
        group = None
        if row.split:
            fp = _footprint(opts)
            reg = region_id(pos[:, 1] + fp / 2, pos[:, 2] + fp / 2, movie.shape, opts.n_regions)
            group = [forced_group(row.split, f"region{r}") for r in reg]
        part = _table(movie, pos, opts, f"{stem}:r{row.number}:", readable(row.path),
                      row.number, row.proportion, group)
        # the hash split by region: validation tiles next to the training side stay out
        part["crosses_split"] = False if row.split else near_training_side(
            pos, _footprint(opts), movie.shape, opts.n_regions)
        parts.append(part)
        b = np.full((len(pos), kmax * kmax, 4), -1, dtype=np.int64)
        b[:, 0, 0], b[:, 0, 1:] = m, pos
        blocks.append(b)
        grids.append(np.ones(len(pos), dtype=np.int64))
    splits = {row.number: row.split for row in rows}
    conflicts = []
    for row in rows:
        if row.composite_of is None:
            continue
        a, b_src = sources[row.composite_of[0]], sources[row.composite_of[1]]
        # a composite inherits its sources' forced side: a held-out movie is never trained on
        side, conflict = composite_side(row.split, *(splits[n] for n in row.composite_of))
        if conflict:
            conflicts.append(row.number)
        cb, labels, reg = make_composites(a, b_src, row.n, row.grid, opts.length, opts.tile,
                                          opts.scale, seed=opts.seed * 1000 + row.number,
                                          n_regions=opts.n_regions)
        full = np.full((row.n, kmax * kmax, 4), -1, dtype=np.int64)
        full[:, :row.grid ** 2] = cb
        blocks.append(full)
        grids.append(np.full(row.n, row.grid, dtype=np.int64))
        fp = _footprint(opts)
        groups = [forced_group(side, f"region{r}") if side else f"region{r}" for r in reg]
        parts.append(pd.DataFrame({
            "item_id": [f"{stem}:r{row.number}:c{i}" for i in range(row.n)],
            "source": f"composite of rows {row.composite_of[0]}+{row.composite_of[1]}",
            "label": labels, "row": row.number, "kind": "composite",
            "t0": cb[:, 0, 1], "y0": cb[:, 0, 2], "x0": cb[:, 0, 3],
            "y": cb[:, 0, 2] + fp / 2.0, "x": cb[:, 0, 3] + fp / 2.0, "size": fp,
            "group": groups,
        }))
    warn_split_conflicts(readable(csv), conflicts)
    table = pd.concat(parts, ignore_index=True)
    table["label"] = table["label"].astype(object).where(table["label"].notna(), None)
    blocks, grids = np.concatenate(blocks), np.concatenate(grids)
    # validation composites sharing pixels with training snippets stay out, as tiles do
    table["crosses_split"] = mark_crossing_composites(
        table, blocks, grids, [mv.shape for mv in movies], _footprint(opts), VAL_FRACTION)
    arr = SnippetArray(movies, blocks, grids, opts.length, opts.tile, opts.scale)
    meta = {"path": str(csv), "tile": _footprint(opts),
            "stride": (opts.stride or max(1, opts.tile // 2)) * opts.scale,
            "classes": list(classes), "movies": [str(mv.path) for mv in movies]}
    if len(movies) == 1:
        meta["movie"] = movies[0].dask
    return ItemSet(table, {"frames": arr}, meta)
