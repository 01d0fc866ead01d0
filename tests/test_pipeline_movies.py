"""Movies as pipelines write them (HDF5, CaImAn .mmap, Suite2p data.bin), from the real
miniscope movie: same frames as the TIFF, same PCA/ICA candidates, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.movies import open_movie
from napari_cellcurator.core.tasks import ReadOptions, get_task

h5py = pytest.importorskip("h5py")


@pytest.fixture(scope="module")
def miniscope(shared_data) -> np.ndarray:
    """The real one-photon movie (T, Y, X) float32; frames cropped non-square (Y ≠ X) so a
    transposed reader cannot pass."""
    movie = tifffile.imread(shared_data / "calcium" / "miniscope_1p" / "miniscope_1p.tif")
    return np.ascontiguousarray(movie[:, :90, :], dtype=np.float32)


def write_caiman_mmap(folder, movie: np.ndarray, order: str):
    """What ``caiman.save_memmap`` writes: pixels (Fortran order of the frame) × frames."""
    t, d1, d2 = movie.shape
    name = folder / f"Yr_d1_{d1}_d2_{d2}_d3_1_order_{order}_frames_{t}_.mmap"
    yr = np.memmap(name, mode="w+", dtype=np.float32, shape=(d1 * d2, t), order=order)
    yr[:] = movie.reshape(t, -1, order="F").T
    yr.flush()
    return name


def write_suite2p_binary(folder, movie: np.ndarray):
    plane = folder / "suite2p" / "plane0"
    plane.mkdir(parents=True)
    np.save(plane / "ops.npy", {"Ly": movie.shape[1], "Lx": movie.shape[2], "fs": 10.0})
    data = np.clip(movie, -32768, 32767).astype(np.int16)
    data.tofile(plane / "data.bin")
    return plane / "data.bin", data


def read_all(path) -> np.ndarray:
    movie = open_movie(path)
    t, y, x = movie.shape
    return movie.read(0, t, 0, y, 0, x)


def test_hdf5_movie_is_its_largest_or_named_dataset(miniscope, tmp_path):
    path = tmp_path / "motion_corrected.h5"
    with h5py.File(path, "w") as fh:
        fh["mov"] = miniscope
        fh["summary/max_projection"] = miniscope.max(axis=0)
        fh["bigger_but_not_named"] = np.zeros((2, *miniscope.shape), np.uint8)
    np.testing.assert_array_equal(read_all(path), miniscope)
    assert open_movie(path).dask.shape == miniscope.shape
    with h5py.File(tmp_path / "plain.h5", "w") as fh:
        fh["recording/frames_of_session"] = miniscope.astype(np.uint16)
    np.testing.assert_array_equal(read_all(tmp_path / "plain.h5"), miniscope.astype(np.uint16))


@pytest.mark.parametrize("order", ["F", "C"])
def test_caiman_mmap_reads_the_frames_saved(miniscope, tmp_path, order):
    path = write_caiman_mmap(tmp_path, miniscope, order)
    movie = open_movie(path)
    assert movie.shape == miniscope.shape
    np.testing.assert_array_equal(read_all(path), miniscope)
    np.testing.assert_array_equal(movie.read(3, 7, 10, 30, 5, 50), miniscope[3:7, 10:30, 5:50])
    np.testing.assert_array_equal(np.asarray(movie.dask[5]), miniscope[5])


def test_suite2p_binary_reads_with_its_ops(miniscope, tmp_path):
    path, data = write_suite2p_binary(tmp_path, miniscope * 100)
    np.testing.assert_array_equal(read_all(path), data.astype(np.float32))


def test_candidates_from_an_hdf5_movie_equal_those_from_the_tiff(miniscope, tmp_path):
    tif = tmp_path / "movie.tif"
    tifffile.imwrite(tif, miniscope)
    h5 = tmp_path / "movie.h5"
    with h5py.File(h5, "w") as fh:
        fh["mov"] = miniscope
    task, opts = get_task("cellness"), ReadOptions()
    from_tif, from_h5 = task.read(tif, opts), task.read(h5, opts)
    assert len(from_tif) > 0 and len(from_h5) == len(from_tif)
    np.testing.assert_allclose(from_h5.arrays["trace"], from_tif.arrays["trace"], rtol=1e-5)


def test_mixture_tiles_an_hdf5_movie(miniscope, tmp_path):
    path = tmp_path / "timelapse.hdf5"
    with h5py.File(path, "w") as fh:
        fh["data"] = miniscope
    items = get_task("mixture").read(path, ReadOptions(extra={"tile": 32}))
    assert len(items) > 0 and set(items.table["source"]) == {str(path)}


@pytest.mark.parametrize("case, words", [
    ("no_3d.h5", ["no numeric dataset of 3"]),
    ("Yr_no_shape_in_name.mmap", ["name does not give its shape"]),
    ("Yr_d1_10_d2_10_d3_1_order_C_frames_7_.mmap", ["700", "holds"]),
    ("data.bin", ["ops.npy"]),
])
def test_broken_pipeline_movies_say_what_is_wrong(tmp_path, case, words):
    path = tmp_path / case
    if case.endswith(".h5"):
        with h5py.File(path, "w") as fh:
            fh["mean_image"] = np.zeros((8, 8))
    else:
        np.zeros(50, np.float32).tofile(path)
    with pytest.raises(InputError) as err:
        open_movie(path)
    message = str(err.value)
    assert case in message and all(w in message for w in words), message


def test_a_tiff_appended_in_blocks_is_one_movie(tmp_path):
    """``tifffile.imwrite(..., append=True)`` (acquisition in blocks) writes a series per
    block: every frame is read, not the first block's (Fiji shows them all too)."""
    import tifffile

    from napari_cellcurator.core.io.movies import open_movie

    rng = np.random.default_rng(2)
    blocks = [rng.random((10, 32, 24), dtype=np.float32) for _ in range(3)]
    path = tmp_path / "blocks.tif"
    for block in blocks:
        tifffile.imwrite(path, block, append=True)
    with tifffile.TiffFile(path) as tf:
        assert len(tf.series) == 3
    movie = open_movie(path)
    assert movie.shape[0] == 30
    whole = np.concatenate(blocks)
    np.testing.assert_array_equal(movie.read(0, 30, 0, 32, 0, 24), whole)
    np.testing.assert_array_equal(movie.read(12, 14, 0, 32, 0, 24), whole[12:14])
