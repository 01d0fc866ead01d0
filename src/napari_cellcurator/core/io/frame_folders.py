"""Movies stored as a folder of images: one image per frame, or TIFF stacks that are blocks
of one recording's frames (ScanImage ``file_00001.tif``…). Both are lazy
:class:`~napari_cellcurator.core.io.movies.FrameArray` arrays: slicing reads only the files of
the frames asked for.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.movies import EXPECTED, FrameArray, _open_tiff

#: a channel token in per-frame file names (Bruker / Prairie View T-series
#: ``TSeries-…_Cycle00001_Ch2_000001.ome.tif``, MetaMorph ``exp_w2GFP_t10.TIF``): files of
#: one time point, one per channel
CHANNEL_TOKEN = re.compile(r"(?i)(?<=[_.\-])(?:ch(\d+)(?=[_.\-])|w(\d)[^_.]*(?=_))")


def _channel(match: re.Match) -> int:
    return int(match.group(1) or match.group(2))


#: tokens naming where on the sample a frame was taken: a plate well (Incucyte
#: ``VID12_B3_1_00d04h00m.tif``) or a stage position (MetaMorph ``_s2_t10``, Nikon ``XY02``,
#: Micro-Manager ``Pos1``) — frames of several are several movies, not one
POSITION_TOKENS = (
    ("wells", re.compile(r"(?:^|(?<=[_\-.]))([A-P]\d{1,2})(?=[_\-.])")),
    ("stage positions", re.compile(r"(?i)(?:^|(?<=[_\-.]))(?:s|xy|pos|p)(\d+)(?=[_\-.])")),
)


def refuse_several_positions(folder: Path, files: list[Path]) -> None:
    """One clear error when the frames of ``folder`` come from several wells or stage
    positions: in name order they would be read as one movie jumping between fields.

    Raises
    ------
    InputError
        Naming the positions found.
    """
    for what, token in POSITION_TOKENS:
        found = [token.search(f.name) for f in files]
        if not all(found):
            continue
        values = sorted({m.group(0) for m in found})
        if len(values) > 1 and len(values) < len(files):  # a position per file is time
            raise InputError(folder, f"holds the frames of {len(values)} {what} "
                             f"({', '.join(values[:6])}{'…' if len(values) > 6 else ''}), "
                             "which would be read as one movie",
                             "the frames of one well or position per folder")


def refuse_mixed_names(folder: Path, files: list[Path]) -> None:
    """One clear error when the frame names follow several patterns (digits aside, channel
    tokens aside): two series that name order would interleave as time, a ``preview.png``
    that is no frame (Micro-Manager's channel names are read by :func:`micro_manager_frames`).

    Raises
    ------
    InputError
        Naming the patterns found.
    """
    patterns: dict[str, str] = {}
    for f in files:
        patterns.setdefault(re.sub(r"\d+", "#", CHANNEL_TOKEN.sub("", f.name.lower())), f.name)
    if len(patterns) > 1:
        examples = ", ".join(list(patterns.values())[:4])
        raise InputError(folder, f"holds images named in {len(patterns)} ways (e.g. "
                         f"{examples}): several channels or series, which name order would "
                         "interleave as one movie", "the frames of one series per folder "
                         "(files of one time point per channel named _Ch1_/_Ch2_ or _w1_/_w2_ "
                         "are stacked as channels)")


class FrameFolder(FrameArray):
    """A folder of same-size frame images as a lazy (T, C, Y, X) array: basic slicing reads
    only the files of the frames asked for (``shape``/``dtype``/``chunks`` for dask). A time
    point is one image, or one image per channel (their channels stacked in channel order).
    """

    def __init__(self, frames: list[tuple[Path, ...]], first: np.ndarray):
        self.frames = frames
        self.shape = (len(frames), first.shape[0] * len(frames[0]), *first.shape[1:])
        self.dtype = first.dtype
        self.ndim = len(self.shape)
        self.chunks = (1, *self.shape[1:])
        self._file_shape = first.shape

    @classmethod
    def open(cls, frames: list[tuple[Path, ...]]) -> FrameFolder:
        """The frame images ``frames`` (per time point, one file per channel), in order."""
        from napari_cellcurator.core.io.images import read_image_chw

        return cls(frames, read_image_chw(frames[0][0]))

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as (C, Y, X); a frame of another size or pixel type is refused."""
        from napari_cellcurator.core.io.images import read_image_chw

        first = self.frames[0][0]
        planes = []
        for file in self.frames[t]:
            arr = read_image_chw(file)
            if arr.shape != self._file_shape:
                raise InputError(file, f"is a frame of shape {arr.shape} (C, Y, X), the first "
                                 f"frame {first.name} is {self._file_shape}",
                                 "frames of one size")
            if arr.dtype != self.dtype:  # casting 16-bit to the first's 8 bits would wrap
                raise InputError(file, f"has {arr.dtype} pixels, the first frame "
                                 f"{first.name} {self.dtype}", "frames of one pixel type")
            planes.append(arr)
        return planes[0] if len(planes) == 1 else np.concatenate(planes)


def frames_by_channel(folder: Path, files: list[Path]) -> list[tuple[Path, ...]]:
    """The files of each time point: one each, or, when every name carries a channel token
    (``_Ch1_``, ``_Ch2_``) of two channels or more, one per channel in channel order.

    Raises
    ------
    InputError
        When the channels do not have the same time points.
    """
    tokens = [CHANNEL_TOKEN.search(f.name) for f in files]
    channels = sorted({_channel(m) for m in tokens if m})
    if not all(tokens) or len(channels) < 2:
        return [(f,) for f in files]
    by_channel = {c: [f for f, m in zip(files, tokens, strict=True) if _channel(m) == c]
                  for c in channels}
    counts = {c: len(v) for c, v in by_channel.items()}
    frames = list(zip(*by_channel.values(), strict=False))
    same_time = all(len({CHANNEL_TOKEN.sub("", f.name) for f in frame}) == 1
                    for frame in frames)
    if len(set(counts.values())) != 1 or not same_time:
        raise InputError(folder, f"holds frames of channels {channels} that are not the "
                         f"same time points ({counts} frames)",
                         "one file per channel for every time point")
    return frames


#: Micro-Manager 1.4's "separate image files": ``img_<time>_<channel name>_<z>.tif``, one
#: folder per stage position (``Pos0/``) with the acquisition's ``metadata.txt``
MICRO_MANAGER = re.compile(r"(?i)^img_(\d{9})_(.+)_(\d{3})\.tiff?$")


def micro_manager_frames(folder: Path, files: list[Path]) -> list[tuple[Path, ...]] | None:
    """The files of each time point of a Micro-Manager 1.4 image sequence, one per channel
    in the acquisition's channel order (``metadata.txt``'s ``ChNames``, else name order);
    None when the files are not named that way.

    Raises
    ------
    InputError
        Several z-slices (a frame is one plane), or a time point missing a channel.
    """
    found = [MICRO_MANAGER.match(f.name) for f in files]
    if not files or not all(found):
        return None
    slices = sorted({m.group(3) for m in found})
    if len(slices) > 1:
        raise InputError(folder, f"holds Micro-Manager images of {len(slices)} z-slices "
                         f"({', '.join(slices[:4])}…): a frame here is one plane",
                         "one z-slice per time point (e.g. a projection of each stack)")
    by_time: dict[int, dict[str, Path]] = {}
    for f, m in zip(files, found, strict=True):
        by_time.setdefault(int(m.group(1)), {})[m.group(2)] = f
    names = _micro_manager_channels(folder, {m.group(2) for m in found})
    for t in sorted(by_time):
        lacking = [c for c in names if c not in by_time[t]]
        if lacking:
            raise InputError(folder, f"time point {t} has no image of channel "
                             f"{', '.join(lacking)} (img_{t:09d}_{lacking[0]}_*.tif)",
                             "one image per channel for every time point")
    return [tuple(by_time[t][c] for c in names) for t in sorted(by_time)]


def _micro_manager_channels(folder: Path, names: set[str]) -> list[str]:
    """Channel names in acquisition order (``metadata.txt``), else in name order (warned)."""
    import json

    try:
        order = json.loads((folder / "metadata.txt").read_text())["Summary"]["ChNames"]
    except (OSError, ValueError, KeyError, TypeError):
        order = []
    order = [str(c) for c in order if str(c) in names] if isinstance(order, list) else []
    if set(order) == names:
        return order
    if len(names) > 1:
        _warn(folder, f"channels {sorted(names)} are stacked in name order: no metadata.txt "
              "names their acquisition order")
    return sorted(names)


def open_frame_folder(folder: Path):
    """``(raw, axes)`` of a folder of images in natural name order: one frame per image
    (``(T, C, Y, X)``), or, when the first is a TIFF stack of more than
    :data:`MAX_FRAME_CHANNELS` planes, one block of frames per file (a long recording split
    into files, as ScanImage writes it and Suite2p reads it)."""
    from napari_cellcurator.core.io.images import image_files
    from napari_cellcurator.core.io.names import natural_key

    files = sorted(image_files(folder), key=lambda f: natural_key(f.name))
    if not files:
        positions = sorted(d.name for d in folder.iterdir()
                           if d.is_dir() and re.fullmatch(r"(?i)pos\d+", d.name))
        if positions:  # a Micro-Manager acquisition: one movie per stage position
            raise InputError(folder, f"holds {len(positions)} stage positions "
                             f"({', '.join(positions[:4])}{'…' if len(positions) > 4 else ''})"
                             ", each a movie", f"one position folder, e.g. {positions[0]}")
        raise InputError(folder, "has no frame images and is not a zarr store", EXPECTED)
    if files[0].suffix.lower() in (".tif", ".tiff"):
        tiffs = [f for f in files if f.suffix.lower() in (".tif", ".tiff")]
        stacks = StackFolder.open(tiffs)
        if stacks is not None:
            if len(tiffs) < len(files):  # a thumbnail or a snapshot beside the blocks
                _warn(folder, f"{len(files) - len(tiffs)} non-TIFF image(s) beside the TIFF "
                      f"stacks are not frames and are not read, e.g. "
                      f"{next(f.name for f in files if f not in tiffs)}")
            return stacks, stacks.axes
    refuse_several_positions(folder, files)
    frames = micro_manager_frames(folder, files)
    if frames is None:
        refuse_mixed_names(folder, files)
        frames = frames_by_channel(folder, files)
    return FrameFolder.open(frames), "tcyx"


def is_stack_folder(folder: Path) -> bool:
    """Whether ``folder``'s first TIFF (in name order) is a stack of frames: a recording
    split into blocks (from the file header only)."""
    from napari_cellcurator.core.io.images import image_files
    from napari_cellcurator.core.io.names import natural_key

    tiffs = [f for f in image_files(folder) if f.suffix.lower() in (".tif", ".tiff")]
    return bool(tiffs) and tiff_planes(min(tiffs, key=lambda f: natural_key(f.name))) > \
        MAX_FRAME_CHANNELS


def tiff_planes(image: Path) -> int:
    """The longest axis of a TIFF other than its rows, columns, samples and channels (frames,
    pages, z), from its header; 1 for a 2-D image or a file that is no readable TIFF (its
    reader then names the problem)."""
    if image.suffix.lower() not in (".tif", ".tiff"):
        return 1
    import tifffile

    try:
        with tifffile.TiffFile(image) as tif:
            series = tif.series[0]
            return max((n for n, axis in zip(series.shape, series.axes, strict=True)
                        if axis not in "YXSC"), default=1)
    except (tifffile.TiffFileError, OSError, ValueError, IndexError):
        return 1


#: an image with more planes than this (and no channel axis in its metadata) is a stack of
#: frames, not one frame's channels
MAX_FRAME_CHANNELS = 4


class StackFolder(FrameArray):
    """TIFF stacks, each a block of frames of one recording, as one lazy movie: frame ``t``
    is read from the file holding it (the last file read stays open)."""

    def __init__(self, files: list[Path], lengths: list[int], axes: str, frame_shape: tuple,
                 dtype):
        self.files, self.axes = files, axes
        self.starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.shape = (int(self.starts[-1]), *frame_shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        self.chunks = (1, *frame_shape)
        self._open: tuple[int, object, int] | None = None  # (file index, raw, its time axis)
        self._lock = threading.Lock()

    @classmethod
    def open(cls, files: list[Path]) -> StackFolder | None:
        """The stacks ``files`` (None when the first is not a stack: a folder of frames)."""
        try:
            raw, axes = _open_tiff(files[0])
        except InputError:  # a single 2-D or RGB image: one frame per file
            return None
        if "t" not in axes or raw.shape[axes.index("t")] <= MAX_FRAME_CHANNELS:
            return None
        frame_axes = axes.replace("t", "")
        frame_shape = tuple(n for a, n in zip(axes, raw.shape, strict=True) if a != "t")
        lengths = [int(raw.shape[axes.index("t")])]
        for file in files[1:]:
            block, time_axis = _open_block(file, frame_shape, files[0], raw.dtype)
            lengths.append(int(block.shape[time_axis]))
        return cls(files, lengths, "t" + frame_axes, frame_shape, raw.dtype)

    def frame(self, t: int) -> np.ndarray:
        k = int(np.searchsorted(self.starts, t, side="right")) - 1
        with self._lock:  # dask reads frames from several threads; one file open at a time
            if self._open is None or self._open[0] != k:
                raw, time_axis = _open_block(self.files[k], self.shape[1:], self.files[0],
                                             self.dtype)
                self._open = (k, raw, time_axis)
            _, raw, time_axis = self._open
            index = [slice(None)] * raw.ndim
            index[time_axis] = int(t - self.starts[k])
            return np.asarray(raw[tuple(index)])

    def __getstate__(self):  # dask may pickle it to worker processes: no open file
        return {**self.__dict__, "_open": None, "_lock": None}

    def __setstate__(self, state):
        self.__dict__.update(state, _lock=threading.Lock())


def _open_block(file: Path, frame_shape: tuple, first: Path, dtype) -> tuple[Any, int]:
    """``(raw, time axis)`` of one block of a :class:`StackFolder`: frames of
    ``frame_shape``. A short block whose planes its metadata does not call time (a last file
    of 3 frames reads as one RGB image) is taken as frames when its shape fits."""
    import tifffile

    try:
        raw, axes = _open_tiff(file)
    except InputError:
        raw, axes = None, ""
    if raw is not None and "t" in axes:
        shape = tuple(n for a, n in zip(axes, raw.shape, strict=True) if a != "t")
        if shape == tuple(frame_shape) and raw.dtype == dtype:
            return raw, axes.index("t")
    try:
        planes = tifffile.imread(file)
    except (tifffile.TiffFileError, ValueError, OSError) as exc:
        raise InputError(file, f"is not a readable TIFF ({exc})", EXPECTED) from None
    if planes.shape[1:] == tuple(frame_shape) and planes.dtype == dtype:
        return planes, 0
    if planes.shape == tuple(frame_shape) and planes.dtype == dtype:  # one frame
        return planes[None], 0
    raise InputError(file, f"is a stack of shape {planes.shape} ({planes.dtype}); the first, "
                     f"{first.name}, holds frames of {tuple(frame_shape)} ({np.dtype(dtype)})",
                     "blocks of frames of one recording")


def _warn(folder: Path, message: str) -> None:
    import warnings

    from napari_cellcurator.core.errors import InputWarning
    from napari_cellcurator.core.io.names import readable

    warnings.warn(f"{readable(folder)}: {message}", InputWarning, stacklevel=4)
