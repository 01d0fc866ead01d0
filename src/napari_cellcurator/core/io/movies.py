"""Open time-lapse stacks lazily (T × Y × X) from TIFF, zarr v2/v3, OME-Zarr, ``.npy``,
folders of one image per frame or of TIFF stacks (one block of frames per file), the movies
calcium-imaging pipelines write (HDF5, CaImAn ``.mmap``, Suite2p ``data.bin``:
:mod:`napari_cellcurator.core.io.pipeline_movies`) and videos
(``.avi``/``.mp4``, Miniscope folders: :mod:`napari_cellcurator.core.io.video`).

Nothing here reads a whole movie: TIFF goes through tifffile's zarr view (one chunk per page or
strip), zarr and OME-Zarr are opened in place, ``.npy`` is memory-mapped, a frame folder reads
the files of the frames asked for. :func:`open_movie`
returns a :class:`Movie` whose ``data`` is the raw array-like (cheap basic slicing) and whose
``dask`` property is the same data as a dask array for display.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.io.names import readable

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov")
#: movies as calcium-imaging pipelines leave them (:mod:`.pipeline_movies`)
PIPELINE_SUFFIXES = (".h5", ".hdf5", ".nwb", ".mmap", ".bin")
MOVIE_SUFFIXES = (".tif", ".tiff", ".zarr", ".npy", *PIPELINE_SUFFIXES, *VIDEO_SUFFIXES)
#: frames up to this size (bytes, float32) are cached decoded; the cache holds CACHE_BYTES
FRAME_CACHE_MAX = 2 * 1024 * 1024
CACHE_BYTES = 48 * 1024 * 1024
EXPECTED = ("a T×Y×X (or T×C×Y×X / T×Y×X×C) time-lapse stack: .tif/.tiff, .zarr, OME-Zarr, "
            ".npy, HDF5 .h5/.hdf5, NWB imaging data, CaImAn .mmap, Suite2p data.bin, video "
            ".avi/.mp4 (or a "
            "folder of them: a Miniscope recording), or a folder of one image per frame "
            "(t000.tif, t001.tif...)")


@dataclass
class Movie:
    """A lazily read time-lapse stack.

    Attributes
    ----------
    path
        File or store it came from.
    raw
        Array-like with the file's own axes (zarr array, memmap...), never fully read.
    axes
        Axis letters of ``raw`` (``"tyx"``, ``"tcyx"``, ``"tyxc"``, ``"tczyx"``...).
    channel
        Channel index to keep, or ``"mean"`` to average channels (ignored without a C axis).
    """

    path: Path
    raw: Any
    axes: str
    channel: int | str = 0

    @property
    def shape(self) -> tuple[int, int, int]:
        """(T, Y, X)."""
        s = dict(zip(self.axes, self.raw.shape, strict=True))
        return (s["t"], s["y"], s["x"])

    def __post_init__(self) -> None:
        t, y, x = self.shape
        # compressed/chunked files cost ~ms per call: keep small decoded frames in a bounded
        # cache (never more than CACHE_BYTES); memory maps and large frames are read directly
        frame_bytes = y * x * 4
        self.__dict__.setdefault("_file", None)  # set by open_movie: reopened when unpickled
        self._cache: OrderedDict[int, np.ndarray] | None = None
        self._lock = threading.Lock()  # dask threads share the cache: evictions race
        if not isinstance(self.raw, np.ndarray) and frame_bytes <= FRAME_CACHE_MAX:
            self._cache = OrderedDict()
            self._cache_frames = max(1, CACHE_BYTES // frame_bytes)

    def __getstate__(self) -> dict:
        """State for worker processes (``--scheduler processes``/``local:N``): a movie opened
        from a file keeps its path, not its open handle (an h5py dataset or tifffile's zarr
        view cannot be pickled, a memory map would be copied whole) nor its frame cache."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("_cache", "_lock")}
        if state["_file"] is not None:
            state["raw"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.raw is None:  # opened again from its file, with the axes found the first time
            self.raw = _open_raw(self._file)[0]
        self.__post_init__()

    def read(self, t0: int, t1: int, y0: int, y1: int, x0: int, x1: int,
             cache: bool = True) -> np.ndarray:
        """Frames ``t0:t1`` of the region ``[y0:y1, x0:x1]`` as float32 (T, Y, X); only the
        chunks overlapping the region are read (small frames go through a bounded cache,
        unless ``cache`` is False: a pass over the whole movie gains nothing from it)."""
        if self._cache is None or not cache:
            return self._read_raw(t0, t1, y0, y1, x0, x1)
        t, h, w = self.shape
        wanted = range(t0, min(t1, t))
        if len(wanted) == 0:
            return np.zeros((0, 0, 0), np.float32)
        region = (slice(y0, y1), slice(x0, x1))
        with self._lock:
            frames = {f: self._cache[f][region] for f in wanted if f in self._cache}
            for f in frames:
                self._cache.move_to_end(f)
        missing = [f for f in wanted if f not in frames]
        # frames not cached are read a cache's worth at a time: a chunk of many frames
        # (zarr, HDF5, video) decodes once, and memory stays bounded by the cache
        for start in range(0, len(missing), self._cache_frames):
            part = missing[start:start + self._cache_frames]
            block = self._read_raw(part[0], part[-1] + 1, 0, h, 0, w)
            with self._lock:
                for i, frame in enumerate(block, start=part[0]):
                    if i not in frames:
                        crop = frame[region]
                        frames[i] = crop.copy() if crop.size < frame.size else crop
                    self._cache[i] = frame
                    if len(self._cache) > self._cache_frames:
                        self._cache.popitem(last=False)
        return np.stack([frames[f] for f in wanted])

    def _read_raw(self, t0: int, t1: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        sl = []
        for a in self.axes:
            sl.append({"t": slice(t0, t1), "y": slice(y0, y1), "x": slice(x0, x1)}.get(a))
        ci = self.axes.find("c")
        if ci >= 0 and self.channel != "mean":
            sl[ci] = int(self.channel)
        zi = self.axes.find("z")
        if zi >= 0:
            sl[zi] = self.raw.shape[zi] // 2  # middle plane of a z-stack
        sl = [slice(None) if s is None else s for s in sl]
        arr = np.asarray(self.raw[tuple(sl)], dtype=np.float32)
        kept = [a for a, s in zip(self.axes, sl, strict=True) if isinstance(s, slice)]
        if "c" in kept:  # channel mean
            arr = arr.mean(axis=kept.index("c"))
            kept.remove("c")
        return np.transpose(arr, [kept.index(a) for a in "tyx"])

    @property
    def dask(self):
        """The (T, Y, X) movie as a lazy dask array (for napari display)."""
        import dask.array as da

        if isinstance(self.raw, da.Array):  # a napari layer's lazy data
            arr = self.raw
        else:
            chunks = getattr(self.raw, "chunks", "auto")
            arr = da.from_array(self.raw, chunks=chunks if isinstance(chunks, tuple) else "auto")
        ci = self.axes.find("c")
        axes = self.axes
        if ci >= 0:
            arr = arr.mean(axis=ci) if self.channel == "mean" else arr[(slice(None),) * ci
                                                                       + (int(self.channel),)]
            axes = axes.replace("c", "")
        zi = axes.find("z")
        if zi >= 0:
            arr = arr[(slice(None),) * zi + (arr.shape[zi] // 2,)]
            axes = axes.replace("z", "")
        return arr.transpose([axes.index(a) for a in "tyx"])


def open_movie(path: str | Path, channel: int | str | None = None, min_frames: int = 2) -> Movie:
    """Open a time-lapse stack lazily.

    Parameters
    ----------
    path
        ``.tif``/``.tiff``, ``.npy``, a zarr v2/v3 array or group, an OME-Zarr image, an HDF5
        movie, a CaImAn ``.mmap``, a Suite2p ``data.bin``, a video (``.avi``, ``.mp4``; a
        folder of them: a Miniscope recording), a folder of same-size 2-D
        images, one per frame, in natural order of their names (``t2.png`` before
        ``t10.png``; Cell Tracking Challenge and microscope exports), or a folder of TIFF
        stacks, one block of frames per file (ScanImage ``file_00001.tif``…).
    channel
        Channel to keep for multi-channel stacks (default 0), or ``"mean"``.
    min_frames
        Fewest frames accepted (the snippet length ℓ).

    Raises
    ------
    InputError
        Missing/corrupt file, 2-D data, too few frames, non-numeric data, bad channel.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "does not exist", EXPECTED)
    raw, axes = _open_raw(path)
    movie = Movie(path, raw, axes, 0 if channel is None else channel)
    movie._file = path.resolve()
    _validate(movie, min_frames)
    if channel is None:
        _warn_if_channels_differ(movie)
    _warn_of_z_planes(movie)
    return movie


def _warn_of_z_planes(movie: Movie) -> None:
    """Say which plane of a time-lapse z-stack is read (the middle one), once per opening."""
    zi = movie.axes.find("z")
    n_z = movie.raw.shape[zi] if zi >= 0 else 1
    if n_z > 1:
        warnings.warn(f"{readable(movie.path)}: {n_z} z-planes per time point; the middle "
                      f"plane ({n_z // 2}, counting from 0) is read — the models take one "
                      "focal plane (save a projection or the plane you want as its own "
                      "movie to read another)", InputWarning, stacklevel=3)


def _open_raw(path: Path):
    """``(raw, axes)`` of the movie file ``path`` (by its suffix)."""
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        raw, axes = _open_tiff(path)
    elif suffix == ".npy":
        raw, axes = _open_npy(path)
    elif suffix in PIPELINE_SUFFIXES:
        from napari_cellcurator.core.io.pipeline_movies import open_pipeline_movie

        raw, axes = open_pipeline_movie(path, EXPECTED)
    elif suffix in VIDEO_SUFFIXES or is_video_folder(path):
        from napari_cellcurator.core.io.video import VideoMovie

        raw, axes = VideoMovie.open(path), "tyx"
    elif suffix == ".zarr" or (path.is_dir() and _is_zarr(path)):
        raw, axes = _open_zarr(path)
    elif path.is_dir():
        from napari_cellcurator.core.io.frame_folders import open_frame_folder

        raw, axes = open_frame_folder(path)
    else:
        raise InputError(path, f"has an unsupported movie format {suffix!r}", EXPECTED)
    return raw, axes


def movie_from_array(array, name: str, rgb: bool = False, min_frames: int = 2) -> Movie:
    """A :class:`Movie` of an array already in memory or lazy (a napari layer's data, opened
    by any reader plugin: ND2, CZI, LIF...): ``(T, Y, X)``, or ``(T, Y, X, 3|4)`` colour
    frames (averaged to grey) when ``rgb``. ``name`` stands for the file in ids and errors."""
    shape = tuple(getattr(array, "shape", ()))
    if len(shape) == 3 and not rgb:
        axes = "tyx"
    elif len(shape) == 4 and rgb:
        axes = "tyxc"
    else:
        raise InputError(name, f"layer data of shape {shape}{' (RGB)' if rgb else ''}",
                         "a (T, Y, X) time-lapse layer (a single channel)")
    movie = Movie(Path(name), array, axes, "mean" if rgb else 0)
    _validate(movie, min_frames)
    return movie


def _warn_if_channels_differ(movie: Movie) -> None:
    """Say which channel is read when none was chosen and the channels hold different
    images (phase + fluorescence); grey saved as RGB stays silent."""
    ci = movie.axes.find("c")
    if ci < 0 or movie.raw.shape[ci] < 2:
        return
    index = [0 if a in "tz" else slice(None) for a in movie.axes]  # first frame (middle z)
    zi = movie.axes.find("z")
    if zi >= 0:
        index[zi] = movie.raw.shape[zi] // 2
    first = np.asarray(movie.raw[tuple(index)])
    c_axis = [a for a in movie.axes if a not in "tz"].index("c")
    planes = np.moveaxis(first, c_axis, 0)
    if all(np.array_equal(planes[0], p) for p in planes[1:]):
        return
    warnings.warn(f"{readable(movie.path)}: {planes.shape[0]} channels; channel 0 is read "
                  "(choose another with --channels K, or the Load widget's channels)",
                  InputWarning, stacklevel=3)


class FrameArray:
    """Base of lazy arrays read frame by frame: subclasses set ``shape``/``dtype`` and
    define ``frame(t)``; basic slicing reads only the frames asked for."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def frame(self, t: int) -> np.ndarray:
        raise NotImplementedError

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        t, rest = key[0], key[1:]
        if isinstance(t, int | np.integer):
            return self.frame(int(t))[rest]
        frames = [self.frame(i)[rest] for i in range(self.shape[0])[t]]
        if frames:
            return np.stack(frames)
        return np.zeros((0, *np.empty(self.shape[1:])[rest].shape), self.dtype)


def is_video_folder(path: Path) -> bool:
    """Whether ``path`` is a folder of video files (a Miniscope recording: 0.avi, 1.avi...)."""
    return path.is_dir() and any(f.suffix.lower() in VIDEO_SUFFIXES for f in path.iterdir())


def _is_zarr(path: Path) -> bool:
    return any((path / n).exists() for n in (".zarray", ".zgroup", "zarr.json"))


def guess_axes(shape: tuple[int, ...], path: Path) -> str:
    if len(shape) < 3:
        raise InputError(path, f"is {len(shape)}-D (shape {shape}), not a time-lapse", EXPECTED)
    if len(shape) == 3:
        return "tyx"
    if len(shape) == 4:
        return "tyxc" if shape[-1] <= 4 < shape[1] else "tcyx"
    if len(shape) == 5:
        return "tczyx"
    raise InputError(path, f"has {len(shape)} dimensions (shape {shape})", EXPECTED)


def _open_tiff(path: Path):
    import tifffile
    import zarr

    try:
        with tifffile.TiffFile(path) as tf:
            series_axes = tf.series[0].axes.lower()
            n_pages = len(tf.pages)
            contiguous = tf.series[0].dataoffset is not None
            appended = _appended_series(tf, path)
        if appended is not None:  # tifffile append=True: a series per block of frames
            return appended
        if contiguous:  # uncompressed, contiguous: a memory map is far faster than zarr
            raw = tifffile.memmap(path, mode="r")
        else:
            raw = zarr.open(tifffile.imread(path, aszarr=True), mode="r")
    except (tifffile.TiffFileError, ValueError, OSError, KeyError, IndexError) as exc:
        raise InputError(path, f"is not a readable TIFF ({type(exc).__name__}: {exc})",
                         EXPECTED) from exc
    if hasattr(raw, "keys"):  # pyramidal TIFF opens as a group: level 0
        raw = raw[sorted(raw.keys())[0]]
    axes = series_axes.replace("q", "t").replace("i", "t").replace("s", "c")
    if len(axes) != raw.ndim or len(set(axes)) != len(axes) or not {"y", "x"} <= set(axes):
        axes = guess_axes(raw.shape, path)
    if "t" not in axes:  # ImageJ/generic stacks call time "z" or "i"; one non-yx axis = time
        others = [a for a in axes if a not in "yxc"]
        if len(others) == 1:
            axes = axes.replace(others[0], "t")
        elif raw.ndim == 2:
            raise InputError(path, f"is a single 2-D image ({n_pages} page)", EXPECTED)
        elif not others and "c" in axes:  # YXS: one colour image, not 3 frames
            raise InputError(path, f"is a single (RGB) image (shape {raw.shape}), not a "
                             "time-lapse", EXPECTED)
        else:
            axes = guess_axes(raw.shape, path)
    return raw, axes


def _appended_series(tf, path: Path):
    """``(frames, axes)`` of a TIFF whose frames were appended as several series of one page
    shape (``tifffile.imwrite(..., append=True)``, acquisition in blocks): one movie, every
    page a frame. An OME-TIFF's series are positions or images, not time: the first is read,
    with a warning. None for a single series."""
    import warnings

    from napari_cellcurator.core.errors import InputWarning

    series = tf.series
    if len(series) < 2:
        return None
    shapes = {tuple(p.shape) for p in tf.pages}
    dtypes = {s.dtype for s in series}
    if tf.is_ome or len(shapes) != 1 or len(dtypes) != 1:
        warnings.warn(f"{path.name}: {len(series)} image series; reading the first "
                      f"({series[0].shape})", InputWarning, stacklevel=3)
        return None
    page_shape = next(iter(shapes))
    if len(page_shape) not in (2, 3):
        return None
    return TiffPages(path, len(tf.pages), page_shape, series[0].dtype), \
        "tyx" if len(page_shape) == 2 else "tyxc"


class TiffPages(FrameArray):
    """Every page of a TIFF as a lazy ``(T, Y, X[, S])`` array (one parsed file kept open)."""

    def __init__(self, path: Path, n_pages: int, page_shape: tuple, dtype):
        import threading

        self.path = Path(path)
        self.shape = (n_pages, *page_shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        self.chunks = (1, *page_shape)
        self._lock = threading.Lock()
        self._tf = None

    def frame(self, t: int) -> np.ndarray:
        import tifffile

        with self._lock:  # one file handle; tifffile parses the page chain once
            if self._tf is None:
                self._tf = tifffile.TiffFile(self.path)
            return self._tf.pages[t].asarray()

    def __getstate__(self):  # dask may pickle it to worker processes: no open file
        return {**self.__dict__, "_tf": None, "_lock": None}

    def __setstate__(self, state):
        import threading

        self.__dict__.update(state, _lock=threading.Lock())


def _open_npy(path: Path):
    try:
        raw = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(path, f"is not a readable .npy array ({exc})", EXPECTED) from exc
    return raw, guess_axes(raw.shape, path)


def _open_zarr(path: Path):
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except (ValueError, OSError, KeyError, json.JSONDecodeError) as exc:
        raise InputError(path, f"is not a readable zarr store ({type(exc).__name__}: {exc})",
                         EXPECTED) from exc
    if not hasattr(node, "keys"):
        return node, guess_axes(node.shape, path)
    attrs = dict(node.attrs)
    ms = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    if ms:  # OME-Zarr: level 0 = the first dataset of the first multiscale
        first = ms[0]
        try:
            arr = node[first["datasets"][0]["path"]]
        except (KeyError, IndexError) as exc:
            raise InputError(path, f"OME-Zarr multiscales points at a missing level ({exc})",
                             EXPECTED) from exc
        names = [a["name"] if isinstance(a, dict) else a for a in first.get("axes", [])]
        axes = "".join(n[0].lower() for n in names)
        if len(axes) != arr.ndim or not {"t", "y", "x"} <= set(axes):
            axes = guess_axes(arr.shape, path)
        return arr, axes
    arrays = sorted(k for k in node.keys() if not hasattr(node[k], "keys"))
    if not arrays:
        raise InputError(path, "is a zarr group without arrays or OME-Zarr multiscales", EXPECTED)
    arr = node[arrays[0]]
    return arr, guess_axes(arr.shape, path)


def _validate(movie: Movie, min_frames: int) -> None:
    raw, path = movie.raw, movie.path
    dtype = np.dtype(raw.dtype)
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)
            or dtype == np.bool_):
        raise InputError(path, f"has non-numeric data (dtype {dtype})", "integer or float pixels")
    t, y, x = movie.shape
    if t < 2:
        raise InputError(path, f"has {t} frame(s); a time-lapse needs several", EXPECTED)
    if t < min_frames:
        raise InputError(path, f"has {t} frames, fewer than the snippet length {min_frames}",
                         f"at least {min_frames} frames")
    if y < 4 or x < 4:
        raise InputError(path, f"frames are only {y}×{x} pixels", EXPECTED)
    ci = movie.axes.find("c")
    if ci >= 0 and movie.channel != "mean":
        n_c = raw.shape[ci]
        if not isinstance(movie.channel, int | np.integer) or not -n_c <= movie.channel < n_c:
            raise InputError(path, f"has {n_c} channels; channel {movie.channel!r} does not exist")
