"""Small builders shared by the reliability tests (synthetic, a few KB each)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_cellcurator.cli import main
from napari_cellcurator.core.errors import CellCuratorError, InputError

#: a name that is not UTF-8: Linux allows any bytes, Python shows them as surrogates
NON_UTF8 = os.fsdecode(b"\xff\xfe")


def write_tree(root: Path, files: dict[str, object]) -> Path:
    """Create ``root/<rel>`` for each entry: arrays as TIFF, bytes verbatim, None = empty dir."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        p = root / rel
        if content is None:
            p.mkdir(parents=True, exist_ok=True)
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, np.ndarray):
            tifffile.imwrite(p, content, photometric="minisblack")
        else:
            p.write_bytes(content)
    return root


def cell_image(seed: int, size: int = 16, channels: int = 3, cls: int = 0) -> np.ndarray:
    """A (C, size, size) uint8 image; class 1 has a bright centre so classes differ."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 60, (channels, size, size)).astype(np.uint8)
    if cls:
        c = size // 2
        img[:, c - 3:c + 3, c - 3:c + 3] = 200
    return img


def class_folders(root: Path, per_class: int = 6, classes=("A", "B"), size: int = 16,
                  channels: int = 3, extra: dict | None = None) -> Path:
    """A valid class-folder dataset plus ``extra`` files."""
    files: dict[str, object] = {
        f"{c}/{i}.tif": cell_image(100 * k + i, size, channels, cls=k)
        for k, c in enumerate(classes) for i in range(per_class)
    }
    files.update(extra or {})
    return write_tree(root, files)


def assert_input_error(exc: BaseException, path: Path | str | None, *words: str) -> None:
    """The package's error, naming ``path`` and containing each of ``words``."""
    assert isinstance(exc, InputError), f"{type(exc).__name__}: {exc}"
    text = str(exc)
    if path is not None:
        assert str(path) in text, f"{path} not named in: {text}"
    for w in words:
        assert w.lower() in text.lower(), f"{w!r} not in: {text}"


def cli_fails(args: list[str], capsys, *words: str) -> str:
    """Run the CLI in-process: exit status 2, one line naming the problem, no traceback."""
    capsys.readouterr()
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, f"exit status {code}; stderr: {err}"
    assert "Traceback" not in err
    assert "error:" in err
    for w in words:
        assert w.lower() in err.lower(), f"{w!r} not in: {err}"
    return err


def read_or_error(task_name: str, paths: list, options=None):
    """``read_many`` → ItemSet, or the package's error returned (anything else propagates)."""
    from napari_cellcurator.core.tasks import ReadOptions, get_task

    try:
        return get_task(task_name).read_many(paths, options or ReadOptions())
    except CellCuratorError as exc:
        return exc


def skip_unless_task(name: str):
    """Skip when the task's module is not written yet (readers land in other issues)."""
    from napari_cellcurator.core.tasks import get_task

    try:
        get_task(name)
    except ImportError as exc:
        pytest.skip(f"task {name!r} not available yet ({exc})")


def suite2p_plane(root: Path, n: int = 6, t: int = 60, fov: int = 64, **replace) -> Path:
    """A small valid Suite2p plane folder ``root/plane0``; ``replace`` swaps files (None drops
    one, bytes are written verbatim, arrays are np.save'd)."""
    rng = np.random.default_rng(n * 1000 + t)
    stat = np.empty(n, dtype=object)
    for i in range(n):
        y0, x0 = 4 + (i * 7) % (fov - 10), 4 + (i * 11) % (fov - 10)
        yy, xx = np.meshgrid(np.arange(4) + y0, np.arange(4) + x0, indexing="ij")
        stat[i] = {"ypix": yy.ravel(), "xpix": xx.ravel(), "lam": rng.random(16) + 0.1}
    f = rng.normal(100, 5, (n, t)).astype(np.float32)
    f[::2, t // 3:t // 3 + 5] += 60  # "cells" have transients
    files = {
        "stat.npy": stat, "F.npy": f, "Fneu.npy": (0.3 * f).astype(np.float32),
        "iscell.npy": np.c_[np.arange(n) % 2 == 0, np.linspace(0, 1, n)].astype(np.float64),
        "ops.npy": np.array({"Ly": fov, "Lx": fov, "meanImg": rng.random((fov, fov))},
                            dtype=object),
    }
    files.update(replace)
    plane = root / "plane0"
    plane.mkdir(parents=True, exist_ok=True)
    for name, arr in files.items():
        if arr is None:
            continue
        if isinstance(arr, bytes):
            (plane / name).write_bytes(arr)
        else:
            arr = np.asarray(arr)
            np.save(plane / name, arr, allow_pickle=arr.dtype.hasobject)
    return plane


def roi_stat(footprints: list[tuple]) -> np.ndarray:
    """A stat.npy object array from ``(ypix, xpix)`` pairs."""
    stat = np.empty(len(footprints), dtype=object)
    for i, (y, x) in enumerate(footprints):
        stat[i] = {"ypix": np.asarray(y, np.int64), "xpix": np.asarray(x, np.int64),
                   "lam": np.ones(len(y), np.float32)}
    return stat
