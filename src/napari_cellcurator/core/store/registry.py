"""Versions of a project's models: ``models/v0001``, ``models/v0002``... plus ``current.json``.

A version is written into a hidden temp folder and renamed into place when complete, so a killed
save never leaves a half version; ``current.json`` is replaced atomically and only ever names a
complete version.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from napari_cellcurator.core.errors import InputError, InputWarning, ModelFileError
from napari_cellcurator.core.store.atomic import _fsync_dir, atomic_write_text, new_dir_mode
from napari_cellcurator.core.store.modelio import CONFIG_NAME, read_config

if TYPE_CHECKING:
    import torch

    from napari_cellcurator.core.store.modelio import ModelConfig

CURRENT_NAME = "current.json"
_VERSION_RE = re.compile(r"^v(\d{4,})$")
_TMP_PREFIX = ".tmp-"
#: temp folders older than this are leftovers of killed saves and are removed
_STALE_TMP_S = 3600.0


class ModelRegistry:
    """The model versions of a project, in ``folder`` (usually ``<project>/models``).

    Parameters
    ----------
    folder
        Where versions live; created if missing.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise InputError(self.folder, "is a file", "a models folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temps()

    # -------------------------------------------------------------- versions
    def names(self) -> list[str]:
        """Version names, oldest first."""
        found = [p.name for p in self.folder.iterdir() if p.is_dir() and _VERSION_RE.match(p.name)]
        return sorted(found, key=lambda n: int(n[1:]))

    def path(self, version: str) -> Path:
        """Folder of a version (checked to exist)."""
        if not isinstance(version, str) or not _VERSION_RE.match(version):
            raise InputError(self.folder, f"{version!r} is not a model version name",
                             "a name like 'v0003'")
        path = self.folder / version
        if not path.is_dir():
            raise InputError(path, "no such model version", f"one of {self.names()}")
        return path

    def versions(self) -> list[dict]:
        """One dict per version, oldest first.

        Keys: ``name``, ``created``, ``arch``, ``task``, ``metrics``, ``parent``, ``current``
        (bool) and ``error`` (``None``, or why the config could not be read).
        """
        current = self._read_pointer()
        out = []
        for name in self.names():
            entry = {"name": name, "created": None, "arch": None, "task": None, "metrics": {},
                     "parent": None, "current": name == current, "error": None}
            try:
                cfg = read_config(self.folder / name)
            except ModelFileError as exc:
                entry["error"] = str(exc)
            else:
                entry.update(created=cfg.created, arch=cfg.arch, task=cfg.task,
                             metrics=cfg.metrics, parent=cfg.parent)
            out.append(entry)
        return out

    # ---------------------------------------------------------------- adding
    def add(self, model: torch.nn.Module, config: ModelConfig, make_current: bool = True) -> str:
        """Save ``model`` as the next version.

        ``config.parent``, when empty, is set to the current version (if there is one: the
        trainer records the version it actually started from, which another save may have
        replaced as current meanwhile) and ``config.created`` to now if empty; ``config`` is
        updated in place.

        Returns
        -------
        str
            The new version's name.
        """
        from napari_cellcurator.core.store.modelio import save_model

        # the pointer itself: a current version whose folder was deleted by hand is still
        # this one's parent (lineage), and must not block saving a new one
        previous = self._read_pointer()
        if previous is not None and config.parent is None:
            config.parent = previous
        if not config.created:
            config.created = datetime.now(UTC).isoformat(timespec="seconds")
        return self._publish(lambda tmp: save_model(tmp, model, config), make_current)

    def add_folder(self, model_dir: str | Path, make_current: bool = True) -> str:
        """Import (copy) an existing model folder as the next version.

        The folder is checked first (its config must read and its weights must load).
        """
        from napari_cellcurator.core.store.modelio import load_model

        model_dir = Path(model_dir)
        load_model(model_dir)  # refuse a broken folder before it becomes a version

        def copy(tmp: Path) -> None:
            # top-level files only: a model folder holds weights + config (+ small extras)
            for src in sorted(model_dir.iterdir()):
                if src.is_file() and not src.name.startswith("."):
                    shutil.copy2(src, tmp / src.name)
                    _fsync_file(tmp / src.name)

        return self._publish(copy, make_current)

    def _publish(self, write, make_current: bool) -> str:
        """Write a version into a temp folder, then rename it to the next free name."""
        tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=self.folder))
        try:
            os.chmod(tmp, new_dir_mode())  # mkdtemp's 0700 would hide it from co-workers
            write(tmp)
            if not (tmp / CONFIG_NAME).is_file():
                raise ModelFileError(f"{tmp}: model was saved without {CONFIG_NAME}")
            _fsync_dir(tmp)
            name = self._rename_to_next(tmp)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        _fsync_dir(self.folder)
        if make_current:
            self._advance_current(name)
        return name

    def _advance_current(self, name: str) -> None:
        """Make a just-saved version current unless a newer one already is (two saves
        finishing at once: the newest stays current, whichever writes last)."""
        try:
            current = self._read_pointer()
        except InputError:  # an unreadable pointer: replaced
            current = None
        if current is None or _number(current) < _number(name):
            self.set_current(name)

    def _rename_to_next(self, tmp: Path) -> str:
        # another process may take the same number between listing and renaming: try the next
        for _ in range(1000):
            # never a name used before: the pointer may name a version deleted by hand (its
            # name is in journal events and in its children's lineage)
            used = [_number(n) for n in self.names()]
            try:
                pointer = self._read_pointer()
            except InputError:
                pointer = None
            number = max([*used, _number(pointer) if pointer else 0]) + 1
            name = f"v{number:04d}"
            try:
                os.rename(tmp, self.folder / name)
            except OSError:  # target appeared meanwhile (not empty → refused)
                if (self.folder / name).exists():
                    continue
                raise
            return name
        raise ModelFileError(f"{self.folder}: could not find a free version name")

    # --------------------------------------------------------------- current
    def current(self) -> str | None:
        """Name of the current version, ``None`` if there is none yet (or, with a warning,
        when its folder was deleted by hand)."""
        name = self._read_pointer()
        if name is None:
            return None
        if not (self.folder / name).is_dir():  # deleted by hand: as if there were none
            warnings.warn(f"{self.folder / CURRENT_NAME}: names version {name!r}, whose "
                          f"folder is gone; no current model (versions: {self.names()})",
                          InputWarning, stacklevel=2)
            return None
        return name

    def current_dir(self) -> Path | None:
        """Folder of the current version, ``None`` if there is none."""
        name = self.current()
        return None if name is None else self.folder / name

    def set_current(self, version: str) -> None:
        """Make ``version`` current (atomic replacement of ``current.json``)."""
        self.path(version)
        atomic_write_text(self.folder / CURRENT_NAME, json.dumps({"current": version}) + "\n")

    def _read_pointer(self) -> str | None:
        pointer = self.folder / CURRENT_NAME
        if not pointer.is_file():
            return None
        try:
            data = json.loads(pointer.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(pointer, f"not valid JSON ({exc})", '{"current": "v0001"}') from None
        name = data.get("current") if isinstance(data, dict) else None
        if not isinstance(name, str) or not _VERSION_RE.match(name):
            raise InputError(pointer, f"does not name a version: {data!r}",
                             '{"current": "v0001"}')
        return name

    # --------------------------------------------------------------- loading
    def load(self, version: str | None = None, device: str = "cpu"
             ) -> tuple[torch.nn.Module, ModelConfig]:
        """Load a version (the current one by default) in eval mode on ``device``."""
        from napari_cellcurator.core.store.modelio import load_model

        if version is None:
            version = self.current()
            if version is None:
                raise ModelFileError(f"{self.folder}: no model yet (train or import one first)")
        return load_model(self.path(version), device=device)

    # ------------------------------------------------------------- cleaning
    def _remove_stale_temps(self) -> None:
        # young temp folders may belong to a save running in another process right now
        now = time.time()
        for p in self.folder.glob(_TMP_PREFIX + "*"):
            try:
                if p.is_dir() and now - p.stat().st_mtime > _STALE_TMP_S:
                    shutil.rmtree(p, ignore_errors=True)
            except OSError:
                continue

    def __repr__(self) -> str:
        return f"ModelRegistry({str(self.folder)!r}, current={self._read_pointer()!r})"


def _number(version: str) -> int:
    return int(version[1:])


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())
