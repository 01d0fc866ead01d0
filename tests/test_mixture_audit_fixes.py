"""Regression tests of the mixture audit fixes: movies sent to worker processes, forced
splits inherited by composites, validation composites sharing pixels with training, the
proportion map of a region offset, a single RGB image given as a movie."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_cellcurator.core.batch import score_items
from napari_cellcurator.core.data.splits import training_split
from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.io.mixture_readers import (
    SnippetOptions,
    movie_items,
    read_manifest_items,
)
from napari_cellcurator.core.io.movies import movie_from_array, open_movie
from napari_cellcurator.core.tasks.mixture import map_grid, proportion_map

OPTS = SnippetOptions(length=3, tile=16)


def _movie(seed: int, shape=(6, 48, 48)) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) * 1000).astype(np.uint16)


def _read_in_workers(items: ItemSet) -> np.ndarray:
    """The first snippets, read in a worker process of dask's processes scheduler."""
    import dask

    part = items.arrays["frames"][:2]
    return dask.compute(dask.delayed(np.asarray)(part), scheduler="processes",
                        num_workers=1)[0]


# --- 1: movies go to worker processes --------------------------------------------------

def _write_zlib_tiff(path, movie) -> None:
    tifffile.imwrite(path, movie, compression="zlib")


def _write_hdf5(path, movie) -> None:
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as f:
        f["mov"] = movie


@pytest.mark.parametrize("name,write", [("z.tif", _write_zlib_tiff), ("m.h5", _write_hdf5)])
def test_compressed_movies_are_read_by_worker_processes(tmp_path, name, write):
    path = tmp_path / name
    write(path, _movie(0))
    items = movie_items(open_movie(path, min_frames=3), OPTS)
    expected = np.asarray(items.arrays["frames"][:2])
    np.testing.assert_allclose(_read_in_workers(items), expected)


def test_unpicklable_data_is_one_clear_error_naming_threads(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        f["mov"] = _movie(2)
    with h5py.File(path, "r") as f:  # a layer's data opened by another reader: no file
        items = movie_items(movie_from_array(f["mov"], "layer", min_frames=3), OPTS)
        with pytest.raises(InputError, match="--scheduler threads"):
            score_items(str(tmp_path / "no_model"), items, scheduler="processes")


# --- 2 and 3: splits of composites -------------------------------------------------------

def _manifest(tmp_path, rows: list[str], header: str) -> list:
    for i in range(3):
        tifffile.imwrite(tmp_path / f"m{i}.tif", _movie(10 + i, (6, 96, 96)))
    csv = tmp_path / "man.csv"
    csv.write_text(header + "\n" + "\n".join(rows) + "\n")
    return csv


def test_composite_of_a_val_row_is_never_trained_on(tmp_path):
    csv = _manifest(tmp_path, ["m0.tif,0,train,,", "m1.tif,1,train,,", "m2.tif,1,val,,",
                               ",,,1 3,60"], "path,proportion,split,composite_of,n")
    with pytest.warns(UserWarning, match=r"composite row\(s\) \[4\]"):
        items = read_manifest_items(csv, OPTS)
    table = items.table
    train, _ = training_split(table)
    comp = table.index[table["kind"] == "composite"]
    assert not set(comp) & set(train)


def test_composite_inherits_its_sources_train_side(tmp_path):
    csv = _manifest(tmp_path, ["m0.tif,0,train,,", "m1.tif,1,train,,", "m2.tif,1,val,,",
                               ",,,1 2,60"],
                    "path,proportion,split,composite_of,n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        items = read_manifest_items(csv, OPTS)
    table = items.table
    train, _ = training_split(table)
    comp = set(table.index[table["kind"] == "composite"])
    assert comp and comp <= set(train)


def _pixels(items: ItemSet, rows: np.ndarray) -> list[set]:
    """Per movie, the (y, x) pixels the snippets ``rows`` read."""
    arr = items.arrays["frames"]
    fp = items.meta["tile"]
    out = [set() for _ in arr.movies]
    for i in rows:
        side = fp // int(arr.grid[i])
        for m, _, y0, x0 in arr.blocks[i]:
            if m >= 0:
                out[m] |= {(y, x) for y in range(y0, y0 + side) for x in range(x0, x0 + side)}
    return out


def test_validation_composites_share_no_pixels_with_training(tmp_path):
    csv = _manifest(tmp_path, ["m0.tif,0,", "m1.tif,1,", ",,1 2,300"],
                    "path,proportion,composite_of,n")
    items = read_manifest_items(csv, OPTS)
    table = items.table
    train, val = training_split(table)
    val_comp = val[(table["kind"].to_numpy() == "composite")[val]]
    assert len(val_comp) > 0
    seen = _pixels(items, train)
    for m, pixels in enumerate(_pixels(items, val_comp)):
        assert not pixels & seen[m]


def test_validation_tiles_share_no_pixels_with_training_composites(tmp_path):
    """A composite of a forced 'train' row and an unsplit row is trained on, blocks of the
    unsplit movie's validation regions included: those validation tiles stay out."""
    csv = _manifest(tmp_path, ["m0.tif,0,train,,", "m1.tif,1,,,", ",,,1 2,5"],
                    "path,proportion,split,composite_of,n")
    items = read_manifest_items(csv, OPTS)
    train, val = training_split(items.table)
    assert len(val) > 0
    seen = _pixels(items, train)
    for m, pixels in enumerate(_pixels(items, val)):
        assert not pixels & seen[m]

# --- 4: proportion map of a region offset ------------------------------------------------

def test_proportion_map_places_tiles_of_a_region_offset(tmp_path):
    tifffile.imwrite(tmp_path / "m.tif", _movie(3, (6, 96, 96)))
    csv = tmp_path / "box.csv"
    csv.write_text("path,proportion,y0,x0\nm.tif,0,20,12\n")
    items = read_manifest_items(csv, OPTS)
    table = items.table.copy()
    table["proportion"] = np.linspace(0, 1, len(table))
    tile, stride = items.meta["tile"], items.meta["stride"]
    grid = map_grid(table, tile, stride)
    pmap = proportion_map(table, (6, 96, 96), tile, stride)
    frames = np.unique(table["t0"])
    for row in table.itertuples():
        i, j = (row.y0 - grid.origin_y) / grid.step, (row.x0 - grid.origin_x) / grid.step
        assert i == int(i) and j == int(j)
        assert pmap[np.searchsorted(frames, row.t0), int(i), int(j)] == pytest.approx(
            row.proportion)
        # drawn where the tile really is: cell centre = tile centre (napari pixel centres)
        assert grid.origin_y + i * grid.step + tile / 2 - 0.5 == row.y - 0.5
        assert grid.origin_x + j * grid.step + tile / 2 - 0.5 == row.x - 0.5


def test_proportion_map_of_rows_with_their_own_strides():
    rows = [(y, x, 0.25) for y in range(0, 49, 16) for x in range(0, 49, 16)]
    rows += [(y, x, 0.75) for y in range(66, 97, 24) for x in range(66, 97, 24)]
    table = pd.DataFrame(rows, columns=["y0", "x0", "proportion"])
    grid = map_grid(table, 32, 16)
    pmap = proportion_map(table, (1, 130, 130), 32, 16)
    for y0, x0, p in rows:
        cell = pmap[0, (y0 - grid.origin_y) // grid.step, (x0 - grid.origin_x) // grid.step]
        assert cell == p
        assert (y0 - grid.origin_y) % grid.step == 0 and (x0 - grid.origin_x) % grid.step == 0


def test_proportion_map_of_a_whole_movie_keeps_its_grid():
    table = pd.DataFrame([(y, x, 0.5) for y in (32, 64) for x in (0, 32, 64)],
                         columns=["y0", "x0", "proportion"])
    grid = map_grid(table, 64, 32)
    assert (grid.origin_y, grid.origin_x, grid.step) == (0, 0, 32)
    assert proportion_map(table, (1, 128, 128), 64, 32).shape == (1, 3, 3)


# --- 5: a single RGB image --------------------------------------------------------------

def test_single_rgb_image_is_not_a_time_lapse(tmp_path):
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, np.zeros((192, 192, 3), np.uint8), photometric="rgb")
    with pytest.raises(InputError, match=r"rgb\.tif.*single \(RGB\) image.*not a time-lapse"):
        open_movie(path)
