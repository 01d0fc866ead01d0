"""Atomic file writes (temp file in the same folder, fsync, rename) and the checks that keep
an output path from destroying the user's data."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: attribute of the zarr outputs of predict and explain: a folder the package may replace
OUTPUT_MARK = "cellcurator_output"


def _current_umask() -> int:
    """The process umask (read without changing it where /proc tells it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore at import, before any worker thread
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _mode_for(path: Path) -> int:
    """Permissions of the replaced file, else what ``open()`` would give a new one (temp
    files are created private, 0600: models and exports are meant to be shared)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_UMASK


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then atomically replace ``path`` with the result.

    A crash at any moment leaves either the old file or the new one, never a partial file.
    The file keeps the permissions of the one it replaces (a new one gets the umask's).
    An ``OSError`` names ``path``, not the hidden temp file (or no file at all).
    """
    path = Path(path)
    if path.is_dir():  # os.replace would say "Is a directory" about the temp file
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    make_parent(path)
    tmp_path = None
    try:
        with errors_named(path):
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                       dir=path.parent)
            os.close(fd)
            tmp_path = Path(tmp)
            write(tmp_path)
            os.chmod(tmp_path, _mode_for(path))
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp_path, path)
            _fsync_dir(path.parent)
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()
    return path


def make_parent(path: Path) -> None:
    """Create the folder ``path`` goes in; a file in the way is reported as such."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # "File exists" would not say that it is in the way
        raise NotADirectoryError(errno.ENOTDIR, "is a file, not a folder",
                                 str(path.parent)) from None


@contextmanager
def errors_named(path: Path) -> Iterator[None]:
    """Re-raise an ``OSError`` about ``path`` where it named no file, or named ``path``'s
    hidden temp sibling (``.<name>.….tmp``: a name the user never gave)."""
    try:
        yield
    except OSError as exc:
        if exc.errno is None or not _hidden(exc.filename, path):
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc  # subclass from errno


def _hidden(filename: object, path: Path) -> bool:
    if filename is None:
        return True
    if not isinstance(filename, str | bytes | os.PathLike):  # a file descriptor
        return False
    name = Path(os.fsdecode(filename)).name
    return name.startswith(f".{path.name}.") and name.endswith(".tmp")


def new_dir_mode() -> int:
    """Permissions of a new folder under the umask (``mkdtemp`` makes them private, 0700)."""
    return 0o777 & ~_UMASK


def replace_dir(src: Path, dst: Path) -> Path:
    """Move the finished folder ``src`` to ``dst``; an existing ``dst`` is swapped out first
    and removed after. A failed move puts it back; a crash in between leaves it beside as
    ``.<name>.old-<random>``, which :func:`recover_swapped` restores. ``src`` gets a shared
    folder's permissions."""
    import shutil
    import uuid

    src, dst = Path(src).absolute(), Path(dst).absolute()
    os.chmod(src, new_dir_mode())
    old = None
    if dst.exists() or dst.is_symlink():
        old = dst.with_name(f".{dst.name}{OLD_TAG}{uuid.uuid4().hex[:8]}")
        os.replace(dst, old)
    try:
        os.replace(src, dst)
    except BaseException:
        if old is not None and not dst.exists():
            os.replace(old, dst)  # the previous folder stays what the user has
        raise
    _fsync_dir(dst.parent)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()
    return dst


#: infix of a folder swapped out by :func:`replace_dir` until its replacement is in place
OLD_TAG = ".old-"


def recover_swapped(path: str | Path) -> bool:
    """Put back a folder :func:`replace_dir` had swapped out when a crash left ``path``
    missing (the newest ``.<name>.old-*`` beside it). Returns whether one was restored."""
    path = Path(path).absolute()
    if path.exists() or not path.parent.is_dir():
        return False
    swapped = sorted(path.parent.glob(f".{path.name}{OLD_TAG}*"), key=os.path.getmtime)
    if not swapped:
        return False
    os.replace(swapped[-1], path)
    return True


def check_not_input(out: str | Path, inputs: Iterable[str | Path],
                    inside_ok: bool = False) -> None:
    """Refuse an output path that is one of ``inputs``, holds one or (unless ``inside_ok``)
    lies inside one.

    Writing there would overwrite (or, for a folder output, delete) the data being read; a
    file written inside an input folder could overwrite one of its files (a label table).
    ``inside_ok`` suits an output that only ever replaces a folder of its own kind.

    Raises
    ------
    InputError
        Naming ``out`` and the input it would destroy.
    """
    from napari_cellcurator.core.errors import InputError

    target = Path(out).resolve()
    for source in inputs:
        src = Path(source).resolve()
        if same_path(target, src):
            relation = "is an input of this command"
        elif not inside_ok and any(same_path(parent, src) for parent in target.parents):
            relation = f"lies inside the input {source}"
        elif any(same_path(parent, target) for parent in src.parents):
            relation = f"holds the input {source}"
        else:
            continue
        raise InputError(out, f"{relation}; writing there could destroy the data",
                         "an output path apart from the input data")


def same_path(a: Path, b: Path) -> bool:
    """One file or folder: equal resolved paths, or another name of it (macOS and Windows
    file systems ignore letter case, which ``resolve()`` keeps on macOS; hard links)."""
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def check_replaceable(folder: str | Path, ours: Callable[[Path], bool], what: str) -> None:
    """Refuse to replace an existing ``folder`` that is neither empty nor ``ours`` (an
    earlier output of the package): :func:`replace_dir` would delete whatever is there.

    Parameters
    ----------
    folder
        The output about to be replaced.
    ours
        Whether an existing folder is an earlier output of this kind.
    what
        What the output is, for the message ("a prediction .zarr").
    """
    from napari_cellcurator.core.errors import InputError

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(folder, "is a file", f"a new path or {what} to replace")
    if not folder.is_dir() or not any(folder.iterdir()) or ours(folder):
        return
    raise InputError(folder, f"exists and is not {what} written by napari-cellcurator; "
                     "replacing it would delete it", "a new output path")


def zarr_attrs(folder: Path) -> dict:
    """Attributes of the zarr group or array at ``folder`` (``{}`` when there is none), read
    from its metadata file without opening the store."""
    for name, key in (("zarr.json", "attributes"), (".zattrs", None)):
        meta = folder / name
        if not meta.is_file():
            continue
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # unreadable: not a store we may replace
            return {}
        data = data.get(key, {}) if key and isinstance(data, dict) else data
        return data if isinstance(data, dict) else {}
    return {}


def marked_output(folder: Path, kind: str) -> bool:
    """Whether ``folder`` is a zarr output of ``kind`` ("predictions", "explanation")."""
    return zarr_attrs(folder).get(OUTPUT_MARK) == kind


def atomic_write_dir(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_folder)`` on a new hidden sibling folder, then swap it in for ``path``
    (:func:`replace_dir`): an earlier ``path`` stays whole until the new one is complete.

    Check first that an existing ``path`` may go (:func:`check_replaceable`).
    """
    import shutil

    path = Path(path).absolute()  # "." has no name to make a sibling of
    recover_swapped(path)
    make_parent(path)
    tmp = None
    try:
        with errors_named(path):  # a failure names the folder, not the hidden temp one
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp",
                                        dir=path.parent))
            write(tmp)
            replace_dir(tmp, path)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Atomically write ``data`` to ``path``."""
    return atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Atomically write UTF-8 ``text`` to ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some filesystems/platforms cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
