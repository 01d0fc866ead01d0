"""Video files as movies: ``.avi``/``.mp4``/``.mkv``/``.mov``, one file or a folder of
numbered files (a UCLA Miniscope recording: ``0.avi``, ``1.avi``... of 1,000 frames each).

Decoded with PyAV (optional: ``pip install napari-cellcurator[video]``). Frames are decoded
when asked for, never the whole video: reading forward continues the decoder, reading
backward reopens the file (a Miniscope file is short, and lossless FFV1 decodes fast).
Colour frames are read as grey (Miniscope and most microscopy videos are grey already).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.movies import VIDEO_SUFFIXES, FrameArray


def import_av():
    """PyAV, with an install hint when it is missing."""
    try:
        import av
    except ImportError:
        raise InputError(None, "reading video files (.avi, .mp4) needs PyAV",
                         "`pip install napari-cellcurator[video]` or `pip install av`") from None
    return av


class _VideoFile:
    """Sequential grey-frame decoder of one file, reopened to go back."""

    def __init__(self, path: Path):
        self.path = path
        self._container = None
        self._frames = None
        self._next = 0  # index of the frame the decoder gives next
        av = import_av()
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                self.height, self.width = stream.height, stream.width
                self.format = "gray16le" if "16" in (stream.codec_context.pix_fmt or "") \
                    else "gray"
                count = stream.frames or sum(1 for p in container.demux(stream) if p.size)
        except (av.error.FFmpegError, IndexError, OSError) as exc:
            raise InputError(path, f"is not a readable video ({type(exc).__name__}: {exc})"
                             ) from None
        self.n_frames = int(count)

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` (Y, X) as uint8 (uint16 for 16-bit video)."""
        if self._frames is None or index < self._next:
            self._reopen()
        for frame in self._frames:
            self._next += 1
            if self._next - 1 == index:
                return frame.to_ndarray(format=self.format)
        raise InputError(self.path, f"ends before frame {index} (of {self.n_frames} counted)")

    def _reopen(self) -> None:
        self.close()
        av = import_av()
        self._container = av.open(str(self.path))
        self._frames = self._container.decode(video=0)
        self._next = 0

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container, self._frames = None, None


class VideoMovie(FrameArray):
    """Video file(s) as a lazy (T, Y, X) array: basic slicing decodes only the frames asked
    for (``shape``/``dtype``/``chunks`` for dask; safe to read from several threads)."""

    def __init__(self, files: list[Path]):
        self.files = [_VideoFile(f) for f in files]
        first = self.files[0]
        for video in self.files[1:]:
            if (video.height, video.width) != (first.height, first.width):
                raise InputError(video.path, f"has {video.height}×{video.width} frames, "
                                 f"{first.path.name} {first.height}×{first.width}",
                                 "videos of one frame size")
        self.starts = np.cumsum([0] + [v.n_frames for v in self.files])
        self.dtype = np.dtype(np.uint16 if first.format == "gray16le" else np.uint8)
        self.shape = (int(self.starts[-1]), first.height, first.width)
        self.ndim = 3
        self.chunks = (1, first.height, first.width)
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> VideoMovie:
        """One video file, or the video files of a folder in natural name order: a UCLA
        Miniscope V3 folder keeps its behaviour camera (``behavCam*.avi``) beside the calcium
        movie (``msCam*.avi``): only the ``msCam`` files are the recording then."""
        from napari_cellcurator.core.io.names import natural_key

        if path.is_dir():
            files = sorted((f for f in path.iterdir() if f.suffix.lower() in VIDEO_SUFFIXES),
                           key=lambda f: natural_key(f.name))
            scope = [f for f in files if f.name.lower().startswith("mscam")]
            files = scope or files
        else:
            files = [path]
        return cls(files)

    def frame(self, t: int) -> np.ndarray:
        if not -self.shape[0] <= t < self.shape[0]:
            raise IndexError(f"frame {t} of {self.shape[0]}")
        t %= self.shape[0]
        k = int(np.searchsorted(self.starts, t, side="right")) - 1
        with self._lock:  # one decoder per file: not to be driven by two threads at once
            return self.files[k].frame(t - int(self.starts[k]))

    def close(self) -> None:
        for video in self.files:
            video.close()
