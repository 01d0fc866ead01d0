"""Video movies (PyAV): a Miniscope-style recording folder of lossless AVIs made from the real
one-photon movie reads back frame-exact, in any order, from several threads; PCA/ICA finds the
same candidates as in the TIFF; a lossy MP4 reads close; a broken file says so."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tifffile

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.movies import open_movie
from napari_cellcurator.core.tasks import ReadOptions, get_task

av = pytest.importorskip("av")


@pytest.fixture(scope="module")
def miniscope8(shared_data) -> np.ndarray:
    """The real one-photon movie as 8-bit (T, Y, X) frames, Y ≠ X (what a Miniscope writes)."""
    movie = tifffile.imread(shared_data / "calcium" / "miniscope_1p" / "miniscope_1p.tif")
    movie = movie[:, :90, :].astype(np.float64)
    scaled = (movie - movie.min()) / (movie.max() - movie.min()) * 255
    return np.round(scaled).astype(np.uint8)


def write_video(path, frames: np.ndarray, codec: str = "ffv1", pix_fmt: str = "gray"):
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=20)
        stream.height, stream.width = frames.shape[1:]
        stream.pix_fmt = pix_fmt
        stream.bit_rate = 20_000_000  # a lossy codec at a microscopy-grade rate
        for frame in frames:
            image = av.VideoFrame.from_ndarray(frame, format="gray")
            for packet in stream.encode(image):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def recording(miniscope8, tmp_path_factory):
    """A Miniscope V4-style folder: 0.avi, 1.avi, ... 10.avi (natural order) + metadata."""
    folder = tmp_path_factory.mktemp("My_V4_Miniscope")
    for k, start in enumerate(range(0, len(miniscope8), 10)):
        write_video(folder / f"{k}.avi", miniscope8[start:start + 10])
    (folder / "metaData.json").write_text('{"frameRate": "20FPS"}')
    (folder / "timeStamps.csv").write_text("Frame Number,Time Stamp (ms)\n0,0\n")
    return folder


def test_recording_folder_reads_frame_exact_in_any_order(miniscope8, recording):
    movie = open_movie(recording)
    assert movie.shape == miniscope8.shape
    t, y, x = movie.shape
    np.testing.assert_array_equal(movie.read(0, t, 0, y, 0, x), miniscope8)
    for t0 in (57, 3, 99, 12, 12, 0):  # backward jumps reopen the file, forward ones decode on
        np.testing.assert_array_equal(movie.read(t0, t0 + 5, 7, 40, 3, 60),
                                      miniscope8[t0:t0 + 5, 7:40, 3:60])
    frames = np.random.default_rng(0).permutation(t)[:40]
    with ThreadPoolExecutor(4) as pool:  # dask reads chunks from several threads
        got = list(pool.map(lambda f: np.asarray(movie.dask[f]), frames))
    np.testing.assert_array_equal(np.stack(got), miniscope8[frames])


def test_candidates_from_the_video_equal_those_from_the_tiff(miniscope8, recording, tmp_path):
    tif = tmp_path / "movie.tif"
    tifffile.imwrite(tif, miniscope8)
    task, opts = get_task("cellness"), ReadOptions()
    from_tif, from_video = task.read(tif, opts), task.read(recording, opts)
    assert len(from_tif) > 0 and len(from_video) == len(from_tif)
    np.testing.assert_allclose(from_video.arrays["trace"], from_tif.arrays["trace"], rtol=1e-5)
    tiles = get_task("mixture").read(recording / "3.avi", ReadOptions(extra={"tile": 32}))
    assert len(tiles) > 0


def test_lossy_mp4_reads_close(miniscope8, tmp_path):
    path = write_video(tmp_path / "session.mp4", miniscope8[:30, :, :96], codec="mpeg4",
                       pix_fmt="yuv420p")
    movie = open_movie(path)
    assert movie.shape == (30, 90, 96)
    error = np.abs(movie.read(0, 30, 0, 90, 0, 96) - miniscope8[:30, :, :96].astype(np.float32))
    assert error.mean() < 4  # lossy codec: close, not equal


def test_broken_video_says_what_is_wrong(tmp_path):
    path = tmp_path / "broken.avi"
    path.write_bytes(b"RIFF\x00\x00\x00\x00AVI LIST" + bytes(64))
    with pytest.raises(InputError) as err:
        open_movie(path)
    assert "broken.avi" in str(err.value) and "not a readable video" in str(err.value)


def test_sixteen_bit_mkv_reads_exact(tmp_path):
    """16-bit lossless video (FFV1 gray16le in Matroska, whose header may not count frames)."""
    frames = (np.random.default_rng(0).random((12, 40, 48)) * 60000).astype(np.uint16)
    path = tmp_path / "scope.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=10)
        stream.height, stream.width = frames.shape[1:]
        stream.pix_fmt = "gray16le"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="gray16le")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    movie = open_movie(path)
    assert movie.shape == frames.shape and movie.raw.dtype == np.uint16
    np.testing.assert_array_equal(movie.read(0, 12, 0, 40, 0, 48), frames)


def test_miniscope_v3_folder_reads_the_scope_not_the_behaviour_camera(miniscope8, tmp_path):
    """V3 software writes msCam1.avi, msCam2.avi... and behavCam1.avi... into one folder:
    the behaviour camera (same size here) must not be spliced into the calcium movie."""
    for k in (1, 2):
        write_video(tmp_path / f"msCam{k}.avi", miniscope8[(k - 1) * 20:k * 20])
        write_video(tmp_path / f"behavCam{k}.avi", 255 - miniscope8[:20])
    movie = open_movie(tmp_path)
    t, y, x = movie.shape
    assert t == 40
    np.testing.assert_array_equal(movie.read(0, t, 0, y, 0, x), miniscope8[:40])
