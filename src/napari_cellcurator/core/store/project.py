"""A project folder: the label journal, the model versions and a small ``project.json``.

By default the folder sits next to the data (``<parent>/<name>.cellcurator/``) so labels travel
with the data; where that folder cannot be written it goes to the user's data directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import tempfile
import warnings
from datetime import UTC, datetime
from pathlib import Path

from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.store.atomic import atomic_write_text
from napari_cellcurator.core.store.journal import LabelJournal, read_current_labels
from napari_cellcurator.core.store.registry import ModelRegistry

JOURNAL_NAME = "labels.sqlite"
MODELS_NAME = "models"
PROJECT_NAME = "project.json"
SUFFIX = ".cellcurator"
APP_NAME = "napari-cellcurator"


class Project:
    """A project folder with a label journal and a model registry.

    Parameters
    ----------
    folder
        The project folder (created if missing).
    user
        Recorded with every label; defaults to the login name.

    Attributes
    ----------
    folder : Path
    journal : LabelJournal
        ``folder / "labels.sqlite"``.
    models : ModelRegistry
        ``folder / "models"``.
    """

    def __init__(self, folder: str | Path, user: str | None = None):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise InputError(self.folder, "is a file", "a project folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.models = ModelRegistry(self.folder / MODELS_NAME)
        self.journal = LabelJournal(self.folder / JOURNAL_NAME, user=user)

    @classmethod
    def for_data(cls, data_path: str | Path, user: str | None = None) -> Project:
        """The default project of a data file or folder, created if needed.

        ``<parent>/<name>.cellcurator/`` of the data set (see :func:`project_folder`); if
        that cannot be written (read-only share), a folder under the user's data directory
        named after the data and a hash of its location.
        """
        folder = project_folder(data_path)
        data_path = _root(data_path)
        beside = beside_folder(data_path)
        if folder != fallback_folder(data_path):
            pass  # beside the data (or where an earlier version kept it)
        elif beside.is_dir() and not folder.exists():
            _continue_read_only(beside, folder)
        elif _writable(beside if beside.is_dir() else data_path.parent):
            warnings.warn(f"the labels and models of {data_path} are in {folder} (made "
                          f"while its folder could not be written); move that folder to "
                          f"{beside} to keep them with the data", InputWarning, stacklevel=2)
        project = cls(folder, user=user)
        try:
            project._record_data(data_path)
            project._merge_earlier(data_path)
        except BaseException:
            project.close()  # no journal connection left open behind the error
            raise
        return project

    @classmethod
    def for_array(cls, name: str, array, user: str | None = None) -> Project:
        """The project of in-memory data that has no file (a napari layer made in the
        session): under the user's data directory, named after ``name`` and a digest of
        the array's content, so the same image finds its labels again."""
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:60] or "data"
        folder = user_data_dir() / "layers" / f"{safe}-{array_digest(array)}{SUFFIX}"
        return cls(folder, user=user)

    def _record_data(self, data_path: Path) -> None:
        """Remember which data the project belongs to (useful for fallback folders)."""
        def add(info: dict) -> bool:
            data = [str(d) for d in info.get("data", []) if isinstance(d, str)]
            if str(data_path) in data:
                return False
            info.setdefault("format_version", 1)
            info.setdefault("created", datetime.now(UTC).isoformat(timespec="seconds"))
            info["data"] = [*data, str(data_path)]
            return True
        self._update_info(add)

    def _update_info(self, change) -> None:
        """Read ``project.json`` (an unreadable one counts as empty: it is only informative),
        let ``change(info)`` edit it, write it back when that returns True — under the
        journal's write lock, so a napari window and a CLI command opening the project at
        the same moment do not lose each other's entry."""
        with self.journal.exclusive():
            info = self.info()
            if change(info):
                atomic_write_text(self.folder / PROJECT_NAME, json.dumps(info, indent=2) + "\n")

    def _merge_earlier(self, data_path: Path) -> None:
        """Once, copy the labels of projects earlier versions kept for parts of this data set
        (``suite2p/plane0.cellcurator``, ``rec.cellcurator`` of a Suite2p recording) into this
        one, with a warning; they stay on disk with their full history."""
        info = self.info()
        done = set(info.get("merged", []))
        todo = [f for f in _earlier_projects(data_path)
                if f != self.folder and str(f) not in done]
        if not todo:
            return
        merged = set()
        for folder in todo:
            try:
                n = self.journal.merge_from(read_current_labels(folder / JOURNAL_NAME))
            except sqlite3.Error as exc:  # never a reason to open no project at all
                warnings.warn(f"labels of the earlier project {folder} could not be read "
                              f"({exc}); they were not copied (tried again next time)",
                              InputWarning, stacklevel=3)
                continue
            merged.add(str(folder))
            if n:
                warnings.warn(f"{n} label(s) made by an earlier version in {folder} were "
                              f"copied into {self.folder}", InputWarning, stacklevel=3)
        if not merged:
            return

        def mark(info: dict) -> bool:
            info["merged"] = sorted(set(info.get("merged", [])) | merged)
            return True
        self._update_info(mark)

    def info(self) -> dict:
        """Contents of ``project.json`` (``{}`` if absent or unreadable)."""
        try:
            info = json.loads((self.folder / PROJECT_NAME).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return {}
        return info if isinstance(info, dict) else {}

    def close(self) -> None:
        """Close the journal (every label is already on disk)."""
        self.journal.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Project({str(self.folder)!r})"


def _root(data_path: str | Path) -> Path:
    from napari_cellcurator.core.io.roots import dataset_root

    return dataset_root(data_path)


def project_folder(data_path: str | Path) -> Path:
    """The project folder of ``data_path`` (not created): every documented form of one data
    set (a Suite2p plane, its ``suite2p/`` folder, the recording folder...) gives the same
    one, :func:`default_folder` of its :func:`~napari_cellcurator.core.io.roots.dataset_root`
    (projects earlier versions kept for a plane are merged into it: :meth:`Project.for_data`).
    """
    return default_folder(_root(data_path))


def default_folder(data_path: str | Path) -> Path:
    """Where :meth:`Project.for_data` keeps the project of ``data_path``.

    ``<name>.cellcurator`` beside the data (the full name: ``sess.tif`` and ``sess.hdf5``
    are different data sets); a project made by earlier versions as ``<stem>.cellcurator``
    is used while its ``project.json`` names this data. Where the data's folder cannot be
    written: a folder under the user's data directory (see :func:`fallback_folder`).
    """
    data_path = Path(data_path).expanduser().resolve()
    beside, fallback = beside_folder(data_path), fallback_folder(data_path)
    if fallback.is_dir():  # labels made while the data's folder was read-only stay found
        return fallback
    if beside.is_dir() and _writable(beside):
        return beside
    if not beside.exists() and _writable(data_path.parent):
        return beside
    return fallback


def _earlier_projects(root: Path) -> list[Path]:
    """Project folders with a journal that versions before December 2026 made for parts of
    the data set ``root``: one per Suite2p plane folder typed, and one beside the recording
    folder (``rec.cellcurator``) when ``root`` is its ``suite2p/`` folder."""
    found = sorted(root.glob(f"plane*{SUFFIX}")) if root.is_dir() else []
    if root.name.lower() == "suite2p":
        found.append(root.parent.parent / f"{root.parent.name}{SUFFIX}")
    return [f for f in found if (f / JOURNAL_NAME).is_file()]


def _continue_read_only(beside: Path, fallback: Path) -> None:
    """A project beside the data that cannot be written (a read-only share) is copied to
    ``fallback`` and continued there, with a warning: its labels and models must not give
    way to an empty project."""
    import shutil

    fallback.parent.mkdir(parents=True, exist_ok=True)
    partial = fallback.with_name(fallback.name + ".copying")
    shutil.rmtree(partial, ignore_errors=True)
    # contents only: the copy must be writable, unlike the read-only original
    shutil.copytree(beside, partial, copy_function=shutil.copyfile)
    for folder, _, _ in os.walk(partial):
        os.chmod(folder, 0o700 | os.stat(folder).st_mode)
    os.replace(partial, fallback)
    warnings.warn(f"{beside} cannot be written: its labels and models were copied to "
                  f"{fallback}, where new labels are saved", InputWarning, stacklevel=3)


def beside_folder(data_path: Path) -> Path:
    """``<name>.cellcurator`` next to ``data_path`` (or an earlier version's
    ``<stem>.cellcurator`` whose ``project.json`` names this data)."""
    beside = data_path.parent / f"{data_path.name}{SUFFIX}"
    legacy = data_path.parent / f"{data_path.stem}{SUFFIX}"
    if legacy != beside and not beside.exists() and _names_data(legacy, data_path):
        return legacy
    return beside


def fallback_folder(data_path: Path) -> Path:
    """The project folder of ``data_path`` under the user's data directory: named after the
    data and a digest of its location."""
    digest = hashlib.sha1(str(data_path).encode("utf-8")).hexdigest()[:10]
    return user_data_dir() / "projects" / f"{data_path.stem}-{digest}{SUFFIX}"


def _names_data(folder: Path, data_path: Path) -> bool:
    """Whether project ``folder`` exists and its ``project.json`` lists ``data_path``."""
    try:
        info = json.loads((folder / PROJECT_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(info, dict) and str(data_path) in info.get("data", [])


def array_digest(array, samples_per_axis: int = 64) -> str:
    """A short content digest of an image: shape, dtype and a strided sample of its pixels
    (cheap on a long movie or a lazy dask array; edits that miss the sample go unnoticed)."""
    import numpy as np

    shape = tuple(int(s) for s in array.shape)
    sample = array[tuple(slice(None, None, max(1, s // samples_per_axis)) for s in shape)]
    sample = np.ascontiguousarray(np.asarray(sample))
    h = hashlib.sha1(f"{shape}{sample.dtype}".encode())
    h.update(sample.tobytes())
    return h.hexdigest()[:12]


def user_data_dir() -> Path:
    """The per-user data folder (``$CELLCURATOR_DATA_DIR`` overrides it)."""
    override = os.environ.get("CELLCURATOR_DATA_DIR")
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = str(Path.home() / "Library" / "Application Support")
    else:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / APP_NAME


def _writable(folder: Path) -> bool:
    """Try to create a file: ``os.access`` is wrong for root and for read-only mounts."""
    if not folder.is_dir():
        return False
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False
