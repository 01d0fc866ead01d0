"""Mixture readers: movies (tiff/zarr/OME-Zarr/npy) read lazily, manifests checked row by row."""

from __future__ import annotations

import re
import tracemalloc

import numpy as np
import pytest
import tifffile
import zarr

from napari_cellcurator.core.data.snippets import SnippetArray, grid_positions, robust_normalise
from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.io.manifest import read_manifest
from napari_cellcurator.core.io.movies import open_movie
from napari_cellcurator.core.tasks import ReadOptions, get_task


def _movie(t=6, h=40, w=48, seed=0):
    return np.random.default_rng(seed).integers(0, 4000, (t, h, w)).astype(np.uint16)


@pytest.fixture
def stack():
    return _movie()


def test_tiff_npy_zarr_read_the_same_regions(tmp_path, stack):
    tifffile.imwrite(tmp_path / "m.tif", stack)
    np.save(tmp_path / "m.npy", stack)
    zarr.save_array(str(tmp_path / "v3.zarr"), stack, zarr_format=3)
    zarr.save_array(str(tmp_path / "v2.zarr"), stack, zarr_format=2)
    for name in ("m.tif", "m.npy", "v3.zarr", "v2.zarr"):
        mv = open_movie(tmp_path / name)
        assert mv.shape == stack.shape, name
        np.testing.assert_array_equal(mv.read(1, 4, 5, 21, 7, 30), stack[1:4, 5:21, 7:30])
        np.testing.assert_array_equal(mv.dask[2].compute(), stack[2])


def test_channels_first_or_mean(tmp_path):
    rng = np.random.default_rng(1)
    tcyx = rng.random((5, 2, 20, 24)).astype(np.float32)
    np.save(tmp_path / "c.npy", tcyx)
    with pytest.warns(InputWarning, match="2 channels; channel 0 is read"):
        first = open_movie(tmp_path / "c.npy")
    np.testing.assert_allclose(first.read(0, 5, 0, 20, 0, 24), tcyx[:, 0])
    np.testing.assert_allclose(open_movie(tmp_path / "c.npy", channel=1).dask.compute(),
                               tcyx[:, 1])
    np.testing.assert_allclose(open_movie(tmp_path / "c.npy", "mean").read(0, 5, 0, 20, 0, 24),
                               tcyx.mean(axis=1), rtol=1e-6)
    with pytest.raises(InputError, match="channel 5"):
        open_movie(tmp_path / "c.npy", channel=5)


def test_an_ome_tiff_z_stack_time_lapse_reads_its_middle_plane_said(tmp_path):
    """A TZCYX OME-TIFF (Micro-Manager 2, ``*_MMStack_Pos0.ome.tif``): the channel asked
    for, the middle z-plane, with a warning naming how many planes there were."""
    rng = np.random.default_rng(2)
    tzcyx = rng.random((6, 3, 2, 20, 24)).astype(np.float32)
    path = tmp_path / "run_MMStack_Pos0.ome.tif"
    tifffile.imwrite(path, tzcyx, metadata={"axes": "TZCYX"}, ome=True)
    with pytest.warns(InputWarning, match=r"3 z-planes per time point; the middle plane \(1,"):
        movie = open_movie(path, channel=1)
    assert movie.shape == (6, 20, 24)
    np.testing.assert_allclose(movie.read(0, 6, 0, 20, 0, 24), tzcyx[:, 1, 1])
    np.testing.assert_allclose(movie.dask.compute(), tzcyx[:, 1, 1])


def test_ome_zarr_level0(tmp_path, stack):
    root = zarr.open_group(str(tmp_path / "img.ome.zarr"), mode="w", zarr_format=2)
    root.create_array("0", data=stack[:, None, None], chunks=(1, 1, 1, 20, 24))
    root.create_array("1", data=stack[:, None, None, ::2, ::2])
    root.attrs["multiscales"] = [{"version": "0.4", "axes": [
        {"name": n} for n in ("t", "c", "z", "y", "x")],
        "datasets": [{"path": "0"}, {"path": "1"}]}]
    mv = open_movie(tmp_path / "img.ome.zarr")
    assert mv.shape == stack.shape
    np.testing.assert_array_equal(mv.read(0, 2, 0, 40, 0, 48), stack[:2])


@pytest.mark.parametrize("data,match", [
    (np.zeros((20, 20), np.uint8), "2-D"),
    (np.zeros((1, 20, 20), np.uint8), "1 frame"),
    (np.zeros((3, 20, 20), np.uint8), "fewer than the snippet length"),
    (np.zeros((6, 20, 20), np.complex64), "non-numeric"),
])
def test_bad_movies(tmp_path, data, match):
    np.save(tmp_path / "bad.npy", data)
    with pytest.raises(InputError, match=match):
        open_movie(tmp_path / "bad.npy", min_frames=5)


def test_corrupt_files(tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"not a tiff at all" * 10)
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    for name in ("bad.tif", "bad.npy"):
        with pytest.raises(InputError, match=name):
            open_movie(tmp_path / name)


def test_pickled_npy_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True)
    with pytest.raises(InputError):
        open_movie(tmp_path / "obj.npy")


def test_snippets_read_lazily_from_a_large_zarr(tmp_path):
    """Reading a few snippets of a 200 MB movie allocates a few MB, not the movie."""
    z = zarr.create_array(str(tmp_path / "big.zarr"), shape=(50, 1024, 1024), dtype="float32",
                          chunks=(1, 256, 256), fill_value=0)
    z[:, :300, :300] = np.random.default_rng(0).random((50, 300, 300), dtype=np.float32)
    mv = open_movie(tmp_path / "big.zarr")
    pos = grid_positions((0, 50), (0, 1024), (0, 1024), 5, 64, 64, 5)
    arr = SnippetArray.from_positions([mv], np.zeros(len(pos), int), pos, 5, 64)
    assert arr.shape == (len(pos), 5, 64, 64)
    tracemalloc.start()
    sub = arr[np.arange(0, 40)]  # lazy subset
    got = sub.compute()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert got.shape == (40, 5, 64, 64)
    assert peak < 30e6, peak  # the movie is 200 MB
    t0, y0, x0 = pos[3]
    direct = np.asarray(z[t0:t0 + 5, y0:y0 + 64, x0:x0 + 64])
    np.testing.assert_allclose(got[3], robust_normalise(direct), rtol=1e-5, atol=1e-5)


def _manifest(tmp_path, text):
    p = tmp_path / "m.csv"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text,match", [
    ("path,prop\na.npy,0\n", "lacks columns"),
    ("path,proportion\n", "no data rows"),
    ("path,proportion\nmissing.npy,0\n", "row 1: movie 'missing.npy' does not exist"),
    ("path,proportion\na.npy,1.5\n", r"row 1: proportion 1.5 is outside \[0, 1\]"),
    ("path,proportion\na.npy,abc\n", "row 1: proportion is 'abc'"),
    ("path,proportion,split\na.npy,0,x\n", "row 1: split is 'x'"),
    ("path,proportion,y0,y1\na.npy,0,10,5\n", "row 1: empty region"),
    ("path,proportion,t0\na.npy,0,-1\n", "row 1: column 't0' is -1"),
    ("path,proportion,composite_of\na.npy,0,\nb.npy,0.5,\n,,1 2\n", "row 3: composite_of rows"),
    ("path,proportion,composite_of\na.npy,0,\n,,1 7\n", "refers to row 7"),
])
def test_manifest_errors_name_csv_and_row(tmp_path, text, match):
    np.save(tmp_path / "a.npy", _movie())
    np.save(tmp_path / "b.npy", _movie(seed=1))
    p = _manifest(tmp_path, text)
    with pytest.raises(InputError, match=match) as info:
        read_manifest(p)
    assert str(p) in str(info.value)


def test_manifest_rows_too_small_for_a_tile(tmp_path):
    np.save(tmp_path / "a.npy", _movie())
    p = _manifest(tmp_path, "path,proportion\na.npy,0\n")
    with pytest.raises(InputError, match="row 1: region"):
        get_task("mixture").read(p, ReadOptions(extra={"tile": 64}))
    p = _manifest(tmp_path, "path,proportion,t0,t1\na.npy,0,0,3\n")
    with pytest.raises(InputError, match="row 1: frames 0:3"):
        get_task("mixture").read(p, ReadOptions(extra={"tile": 16}))


def test_manifest_items_composites_and_groups(tmp_path):
    np.save(tmp_path / "a.npy", _movie(8, 64, 64))
    tifffile.imwrite(tmp_path / "b.tif", _movie(8, 64, 64, seed=3))
    p = _manifest(tmp_path, "path,proportion,class_a,class_b,composite_of,n,grid,split\n"
                  "a.npy,0,A,B,,,,\n"
                  f"{tmp_path / 'b.tif'},1,A,B,,,,\n"
                  ",,A,B,1 2,30,2,val\n")
    items = get_task("mixture").read(p, ReadOptions(extra={"tile": 16, "stride": 16}))
    t = items.table
    assert items.meta["classes"] == ["A", "B"]
    assert set(t["kind"]) == {"tile", "composite"}
    comp = t[t["kind"] == "composite"]
    assert len(comp) == 30 and set(comp["label"]).issubset({0, .25, .5, .75, 1})
    real = t[t["kind"] == "tile"]
    assert set(real["label"]) == {0.0, 1.0}
    assert len(real) == 2 * 16 * 4  # 4×4 tiles × t0 in 0..3 per movie
    assert items.arrays["frames"].shape == (len(t), 5, 16, 16)
    # composites forced to validation: every composite group lands on the validation side
    from napari_cellcurator.core.data.splits import hash_split

    _, val = hash_split(t, 0.2)
    assert set(comp.index) <= set(val)
    # a composite with label 0 reads only movie a: equals a normalised A block layout
    x = items.load(np.flatnonzero(t["kind"] == "composite"), "frames")
    assert np.isfinite(x).all() and x.shape == (30, 5, 16, 16)


@pytest.mark.parametrize(("name", "text"), [
    ("m.tsv", "path\tproportion\na.npy\t0.25\n"),
    ("m.csv", "path;proportion\na.npy;0,25\n"),  # European spreadsheet: decimal comma
])
def test_tab_and_semicolon_manifests(tmp_path, name, text):
    from napari_cellcurator._reader import detect_task

    np.save(tmp_path / "a.npy", _movie(8, 64, 64))
    (tmp_path / name).write_text(text)
    assert detect_task(tmp_path / name) == "mixture"
    items = get_task("mixture").read(tmp_path / name, ReadOptions(extra={"tile": 16}))
    assert set(items.table["label"]) == {0.25}


def test_several_manifests_concatenate_lazily_and_display(tmp_path):
    np.save(tmp_path / "a.npy", _movie(8, 32, 32))
    np.save(tmp_path / "b.npy", _movie(8, 32, 32, seed=2))
    m1 = _manifest(tmp_path, "path,proportion\na.npy,0\nb.npy,1\n")
    m2 = tmp_path / "other.csv"
    m2.write_text("path,proportion\na.npy,0\n")
    task = get_task("mixture")
    opts = ReadOptions(extra={"tile": 16})
    one = task.read(m1, opts)
    both = task.read_many([m1, m2], opts)
    assert len(both) == len(one) + len(task.read(m2, opts))
    np.testing.assert_allclose(both.load(np.array([0, len(one)]), "frames"),
                               one.load(np.array([0, 0]), "frames"), rtol=1e-6)
    first = one.arrays["frames"][:, 0]  # what the widget shows without a single movie
    assert first.shape == (len(one), 16, 16)
    np.testing.assert_allclose(np.asarray(first[2]), one.load(np.array([2]), "frames")[0, 0])


def _frame_folder(tmp_path, stack, suffix=".png"):
    """One file per frame, named so that plain text order is wrong (t10 before t2)."""
    from PIL import Image

    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(stack):
        name = folder / f"t{t}{suffix}"
        if suffix == ".png":
            Image.fromarray(frame).save(name)
        else:
            tifffile.imwrite(name, frame)
    (folder / "notes.txt").write_text("not a frame")
    return folder


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_a_folder_of_frames_is_a_movie_in_natural_order(tmp_path, suffix):
    stack = _movie(t=12)
    mv = open_movie(_frame_folder(tmp_path, stack, suffix), min_frames=5)
    assert mv.shape == stack.shape
    np.testing.assert_array_equal(mv.read(7, 12, 5, 21, 7, 30), stack[7:12, 5:21, 7:30])
    np.testing.assert_array_equal(mv.dask[10].compute(), stack[10])
    # the mixture task tiles it like any other movie to predict
    items = get_task("mixture").read(mv.path, ReadOptions(extra={"tile": 16}))
    assert len(items) > 0
    snippet = items.load(np.array([0]), "frames")
    assert snippet.shape[1:] == (5, 16, 16)


def test_frame_folder_errors_name_the_file(tmp_path):
    stack = _movie(t=6)
    folder = _frame_folder(tmp_path, stack, ".tif")
    tifffile.imwrite(folder / "t3.tif", stack[3][:20])  # a frame of another size
    mv = open_movie(folder)
    with pytest.raises(InputError, match=r"t3\.tif: is a frame of shape \(1, 20, 48\)"):
        mv.read(0, 6, 0, 10, 0, 10)
    tifffile.imwrite(folder / "t3.tif", stack[3].astype(np.float32))  # another pixel type
    with pytest.raises(InputError, match=r"t3\.tif: has float32 pixels"):
        open_movie(folder).read(0, 6, 0, 10, 0, 10)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="has no frame images"):
        open_movie(tmp_path / "empty")


def test_a_folder_of_stacks_is_one_movie_of_their_frames(tmp_path):
    """A long recording split into TIFF stacks (ScanImage's file_00001.tif…, the folder
    Suite2p reads): the frames of every file in name order, not one frame per file with
    the pages taken for channels."""
    import pickle
    import warnings

    stack = _movie(t=23)
    folder = tmp_path / "rec"
    folder.mkdir()
    for k, (t0, t1) in enumerate([(0, 10), (10, 20), (20, 23)]):
        tifffile.imwrite(folder / f"file_{k + 1:05d}.tif", stack[t0:t1])
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)  # no "N channels" warning
        mv = open_movie(folder, min_frames=5)
    assert mv.shape == stack.shape
    np.testing.assert_array_equal(mv.read(8, 22, 5, 21, 7, 30), stack[8:22, 5:21, 7:30])
    np.testing.assert_array_equal(mv.dask[21].compute(), stack[21])
    again = pickle.loads(pickle.dumps(mv.raw))  # as dask ships it to worker processes
    np.testing.assert_array_equal(again[12], stack[12])
    # a block of another frame size is refused, naming it
    tifffile.imwrite(folder / "file_00002.tif", stack[10:20, :20])
    with pytest.raises(InputError, match=r"file_00002\.tif: is a stack of shape"):
        open_movie(folder)


def test_a_folder_of_multichannel_frames_keeps_its_channels(tmp_path):
    """One file per time point with 3 planes: channels of a frame, as before."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(6, 3, 16, 16)).astype(np.uint8)
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(frames):
        tifffile.imwrite(folder / f"t{t}.tif", frame)
    mv = open_movie(folder, channel=1)
    assert mv.shape == (6, 16, 16)
    np.testing.assert_array_equal(mv.read(0, 6, 0, 16, 0, 16), frames[:, 1])


@pytest.mark.parametrize("name", ["{folder}_Cycle00001_Ch{ch}_{t:06d}.ome.tif",  # Bruker
                                  "{folder}_w{ch}{dye}_t{t}.TIF"])  # MetaMorph
def test_a_bruker_t_series_keeps_its_channels_apart(tmp_path, name):
    """Prairie View writes one file per frame per channel (…_Cycle00001_Ch2_000001.ome.tif),
    MetaMorph one per wavelength (…_w2GFP_t1.TIF): the channels of a time point are stacked,
    not read as more frames."""
    rng = np.random.default_rng(1)
    red, green = (rng.integers(0, 4000, size=(6, 16, 16)).astype(np.uint16) for _ in "rg")
    folder = tmp_path / "TSeries-12072026-1200-001"
    folder.mkdir()
    for t in range(6):
        for ch, movie in ((1, red), (2, green)):
            dye = {1: "mCherry", 2: "GFP"}[ch]
            tifffile.imwrite(folder / name.format(folder=folder.name, ch=ch, t=t + 1, dye=dye),
                             movie[t])
    with pytest.warns(InputWarning, match="2 channels; channel 0 is read"):
        assert open_movie(folder).shape == (6, 16, 16)
    np.testing.assert_array_equal(open_movie(folder, channel=1).read(0, 6, 0, 16, 0, 16), green)
    np.testing.assert_array_equal(open_movie(folder, channel=0).read(0, 6, 0, 16, 0, 16), red)
    (folder / name.format(folder=folder.name, ch=2, t=6, dye="GFP")).unlink()  # one missing
    with pytest.raises(InputError, match=r"channels \[1, 2\] that are not the same time"):
        open_movie(folder)


@pytest.mark.parametrize(("names", "what"), [
    ("VID7_{w}_1_00d{t:02d}h00m.tif", "2 wells (A1, B2)"),  # Incucyte export of two wells
    ("exp_w1_s{s}_t{t}.tif", "2 stage positions (s1, s2)"),  # MetaMorph multi-position
])
def test_frames_of_several_wells_are_not_read_as_one_movie(tmp_path, names, what):
    """In name order the frames of well A1 then B2 would make one movie jumping between
    fields half-way: one clear error instead."""
    stack = _movie(t=6)
    folder = tmp_path / "export"
    folder.mkdir()
    for t in range(3):
        for k, (well, pos) in enumerate((("A1", 1), ("B2", 2))):
            tifffile.imwrite(folder / names.format(w=well, s=pos, t=t), stack[t + 3 * k])
    with pytest.raises(InputError, match=rf"export: holds the frames of {re.escape(what)}"):
        open_movie(folder)
    for f in folder.glob("*B2*" if "{w}" in names else "*_s2_*"):  # one field left: a movie
        f.unlink()
    assert open_movie(folder).shape == (3, *stack.shape[1:])


def test_a_micro_manager_image_sequence_keeps_its_channels_apart(tmp_path):
    """Micro-Manager 1.4's image sequence: img_<time>_<channel>_<z>.tif; in name order Cy5
    and DAPI would alternate as time. The channels are stacked in the acquisition's order
    (metadata.txt), else in name order with a warning."""
    import json

    cy5, dapi = _movie(t=3), _movie(t=3)[:, ::-1]
    folder = tmp_path / "Pos0"
    folder.mkdir()
    for t in range(3):
        for channel, movie in (("Cy5", cy5), ("DAPI", dapi)):
            tifffile.imwrite(folder / f"img_{t:09d}_{channel}_000.tif", movie[t])
    with pytest.warns(InputWarning, match=r"\['Cy5', 'DAPI'\] are stacked in name order"):
        np.testing.assert_array_equal(open_movie(folder, channel=1).read(0, 3, 0, 16, 0, 16),
                                      dapi[:, :16, :16])
    summary = {"Summary": {"ChNames": ["DAPI", "Cy5"], "Frames": 3, "Slices": 1}}
    (folder / "metadata.txt").write_text(json.dumps(summary))
    movie = open_movie(folder, channel=0)
    assert movie.shape == cy5.shape
    np.testing.assert_array_equal(movie.read(0, 3, 0, 16, 0, 16), dapi[:, :16, :16])
    (folder / "img_000000002_Cy5_000.tif").unlink()
    with pytest.raises(InputError, match=r"Pos0: time point 2 has no image of channel Cy5"):
        open_movie(folder)
    tifffile.imwrite(folder / "img_000000002_Cy5_000.tif", cy5[2])
    tifffile.imwrite(folder / "img_000000002_Cy5_001.tif", cy5[2])
    with pytest.raises(InputError, match=r"Micro-Manager images of 2 z-slices"):
        open_movie(folder)
    with pytest.raises(InputError, match=r"holds 1 stage positions \(Pos0\), each a movie"):
        open_movie(tmp_path)  # the acquisition folder above its position folders


def test_frames_named_in_several_ways_are_not_interleaved(tmp_path):
    """Frames of two series named differently, or a preview image beside the frames: in
    name order they would be read as one movie."""
    stack = _movie(t=6)
    folder = tmp_path / "export"
    folder.mkdir()
    for t in range(3):
        tifffile.imwrite(folder / f"img_{t:09d}_Cy5_000.tif", stack[t])
        tifffile.imwrite(folder / f"snap{t}.tif", stack[3 + t])
    with pytest.raises(InputError, match=r"export: holds images named in 2 ways"):
        open_movie(folder)
    for f in folder.glob("snap*"):
        f.unlink()
    assert open_movie(folder).shape == (3, *stack.shape[1:])
    tifffile.imwrite(folder / "preview.tif", stack[0])
    with pytest.raises(InputError, match=r"named in 2 ways \(e\.g\. img_000000000_Cy5"):
        open_movie(folder)


def test_grey_saved_as_rgb_reads_silently(tmp_path):
    import warnings

    grey = np.random.default_rng(0).random((4, 16, 16)).astype(np.float32)
    np.save(tmp_path / "g.npy", np.repeat(grey[:, None], 3, axis=1))  # (T, C, Y, X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)
        np.testing.assert_allclose(open_movie(tmp_path / "g.npy").read(0, 4, 0, 16, 0, 16),
                                   grey)


def test_a_movie_from_an_array_tiles_like_the_file(tmp_path):
    """A napari layer's data (here: a dask array) tiles exactly as the same movie saved as a
    file; shapes that are no single-channel time-lapse get one clear error."""
    import dask.array as da

    from napari_cellcurator.core.io.mixture_readers import (
        SnippetOptions,
        movie_items,
        read_movie_items,
    )
    from napari_cellcurator.core.io.movies import movie_from_array

    rng = np.random.default_rng(0)
    movie = rng.integers(0, 4000, size=(10, 96, 128)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "m.tif", movie)
    opts = SnippetOptions.from_extra({})
    from_file = read_movie_items(tmp_path / "m.tif", opts)
    from_layer = movie_items(movie_from_array(da.from_array(movie, chunks=(1, 96, 128)),
                                              "m.tif"), opts)
    assert list(from_layer.table["item_id"]) == list(from_file.table["item_id"])
    np.testing.assert_allclose(np.asarray(from_layer.arrays["frames"][:4]),
                               np.asarray(from_file.arrays["frames"][:4]), rtol=1e-6)
    rgb = np.repeat(movie[..., None], 3, axis=-1)
    grey = movie_items(movie_from_array(rgb, "rgb", rgb=True), opts)
    np.testing.assert_allclose(np.asarray(grey.arrays["frames"][:2]),
                               np.asarray(from_file.arrays["frames"][:2]), rtol=1e-5)
    for bad, rgb_flag, message in ((movie[0], False, "shape"),
                                   (movie[:, None], False, "shape"),
                                   (movie[:3], False, "fewer than the snippet length")):
        with pytest.raises(InputError, match=message):
            movie_from_array(bad, "layer", rgb_flag, min_frames=opts.length)


def test_hash_split_tiles_never_share_pixels_across_the_split(tmp_path):
    """Tiles are grouped by the region of their centre; one reaching into a region on the
    other side of the split shared pixels with its neighbours there (41 % of validation
    tiles on the real movies): those tiles are left out, the rest kept."""
    from napari_cellcurator.core.data.splits import training_split

    np.save(tmp_path / "a.npy", _movie(8, 96, 96))
    p = _manifest(tmp_path, "path,proportion\na.npy,0.5\n")
    items = get_task("mixture").read(p, ReadOptions(extra={"tile": 16, "stride": 8}))
    t = items.table
    assert len(t) == 11 * 11 * 4  # all read (evaluation and prediction use them all)
    train, val = training_split(t, 0.2)
    assert len(val) and len(train)
    a, b = t.iloc[val], t.iloc[train]
    for _, tile in a.iterrows():
        assert not ((abs(b["y0"] - tile["y0"]) < 16) & (abs(b["x0"] - tile["x0"]) < 16)).any()
    assert len(train) + len(val) > 0.6 * len(t)  # most of them train or validate


def test_several_channels_for_mixture_are_refused(tmp_path):
    """--channels 0,2 silently read channel 0 only; one channel is what the networks see."""
    np.save(tmp_path / "a.npy", _movie(8, 64, 64))
    p = _manifest(tmp_path, "path,proportion\na.npy,0.5\n")
    with pytest.raises(InputError, match="read from one channel"):
        get_task("mixture").read(p, ReadOptions(channels=[0, 2], extra={"tile": 16}))
    assert len(get_task("mixture").read(p, ReadOptions(channels=[0], extra={"tile": 16})))
