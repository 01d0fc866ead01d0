"""napari reader: which task a dropped file or folder belongs to (path sniffing only)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from napari_cellcurator._reader import detect_task


def test_split_folders_of_class_folders_are_celltype(jurkat_subset, tmp_path):
    for split in ("train", "test"):
        shutil.copytree(jurkat_subset, tmp_path / "data" / split)
    assert detect_task(tmp_path / "data") == "celltype"


@pytest.mark.parametrize(("header", "task"), [
    ("path,proportion,split", "mixture"),
    ("filename,label", "celltype"),
    ("Image File;Cell Type", "celltype"),
    ("file\tclass\tpatient", "celltype"),
    ("item_id,label,probability", None),  # our own export: left to napari
    ("x,y,z", None),
])
def test_tables_by_header(tmp_path, header, task):
    path = tmp_path / "table.csv"
    path.write_text(header + "\n")
    assert detect_task(path) == task


def test_movies_napari_cannot_open_become_a_lazy_image_layer(tmp_path):
    """An HDF5 movie, a CaImAn .mmap, a video: an image layer (then Load → Use these layers);
    an HDF5 of CaImAn results is still the cellness reader's; a broken one says why."""
    h5py = pytest.importorskip("h5py")
    from napari_cellcurator._reader import get_reader, is_plain_movie
    from napari_cellcurator.core.errors import InputError

    movie = np.random.default_rng(0).random((8, 20, 30), dtype=np.float32)
    h5 = tmp_path / "motion_corrected.h5"
    with h5py.File(h5, "w") as fh:
        fh["mov"] = movie
    results = tmp_path / "results.hdf5"
    with h5py.File(results, "w") as fh:
        fh["estimates/A"] = np.zeros((600, 2))
    mmap = tmp_path / "Yr_d1_20_d2_30_d3_1_order_F_frames_8_.mmap"
    np.memmap(mmap, np.float32, "w+", shape=(600, 8), order="F")[:] = (
        movie.reshape(8, -1, order="F").T)
    assert detect_task(h5) is None and detect_task(results) == "cellness"
    import tifffile

    blocks = tmp_path / "scanimage"  # a recording in blocks of frames: file_00001.tif…
    blocks.mkdir()
    tifffile.imwrite(blocks / "file_00001.tif", movie[:5])
    tifffile.imwrite(blocks / "file_00002.tif", movie[5:])
    assert detect_task(blocks) is None
    for path in (h5, mmap, blocks):
        assert is_plain_movie(path)
        (data, meta, kind), = get_reader(str(path))(str(path))
        assert kind == "image" and data.shape == (8, 20, 30)
        assert not isinstance(data, np.ndarray)  # lazy: frames read when shown
        np.testing.assert_allclose(np.asarray(data[3]), movie[3])
        assert meta["metadata"]["cellcurator_movie"] == str(path)
    assert get_reader(str(tmp_path / "notes.txt")) is None
    broken = tmp_path / "data.bin"
    broken.write_bytes(bytes(100))
    with pytest.raises(InputError, match="ops.npy"):
        get_reader(str(broken))(str(broken))


def test_a_movie_opened_bounds_napari_dask_cache(tmp_path, monkeypatch):
    """napari's dask cache would grow to a quarter of the RAM on a long movie: the reader
    sizes it to the movie (256 MB at least, 2 GB at most)."""
    import napari.utils

    from napari_cellcurator._reader import get_reader

    sizes = []
    monkeypatch.setattr(napari.utils, "resize_dask_cache", sizes.append)
    path = tmp_path / "Yr_d1_64_d2_64_d3_1_order_C_frames_40_.mmap"
    np.memmap(path, np.float32, "w+", shape=(64 * 64, 40))[:] = 1.0
    get_reader(str(path))(str(path))
    assert sizes == [int(256e6)]


def test_files_the_readers_take_are_detected(tmp_path):
    """Any file of a Suite2p plane, a pipeline movie with ROI masks beside it, Allen's
    ``{"rois": [...]}`` form and a table whose columns come after a long header."""
    h5py = pytest.importorskip("h5py")
    plane = tmp_path / "plane0"
    plane.mkdir()
    for name in ("stat.npy", "F.npy", "iscell.npy"):
        np.save(plane / name, np.zeros(2))
    assert detect_task(plane / "F.npy") == detect_task(plane / "iscell.npy") == "cellness"
    with h5py.File(tmp_path / "movie.h5", "w") as fh:
        fh["mov"] = np.zeros((4, 8, 8), np.float32)
    assert detect_task(tmp_path / "movie.h5") is None  # a movie alone: ask which task
    import tifffile

    tifffile.imwrite(tmp_path / "movie_masks.tif", np.ones((8, 8), np.uint16))
    assert detect_task(tmp_path / "movie.h5") == "cellness"
    (tmp_path / "rois.json").write_text('{"rois": []}')
    assert detect_task(tmp_path / "rois.json") == "cellness"
    header = ",".join(f"Measurement_{k}" for k in range(30)) + ",filename,class"
    (tmp_path / "cells.csv").write_text(header + "\n")
    assert len(header) > 256 and detect_task(tmp_path / "cells.csv") == "celltype"


def test_the_napari_reader_names_the_file_it_cannot_decode(tmp_path):
    from napari_cellcurator._reader import read_layers
    from napari_cellcurator.core.errors import InputError

    bad = tmp_path / "bad_allen.json"
    bad.write_text('[{"coo_rows": [1], "coo_cols": [1, "x"], "coo_data": [1], '
                   '"image_shape": [4, 4], "trace": [1, 2], "label": 1}]')
    with pytest.raises(InputError, match="bad_allen.json"):
        read_layers(bad)


def test_other_plugins_keep_their_hdf5_and_bin_files(tmp_path):
    """An HDF5 without any stack (an ilastik project, a table) or a stray .bin is not ours."""
    h5py = pytest.importorskip("h5py")
    from napari_cellcurator._reader import get_reader, is_plain_movie

    with h5py.File(tmp_path / "project.h5", "w") as fh:
        fh["table"] = np.zeros((100, 4))
    (tmp_path / "firmware.bin").write_bytes(bytes(64))
    for name in ("project.h5", "firmware.bin"):
        assert not is_plain_movie(tmp_path / name)
        assert get_reader(str(tmp_path / name)) is None
