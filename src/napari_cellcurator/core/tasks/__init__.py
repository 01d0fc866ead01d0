"""Tasks by name. Adding a task: write its module and add it to ``TASK_MODULES``."""

from __future__ import annotations

import importlib

from napari_cellcurator.core.errors import CellCuratorError
from napari_cellcurator.core.tasks.base import ReadOptions, Task

#: name → "module:Class"; the only place a new task must be listed.
TASK_MODULES = {
    "mixture": "napari_cellcurator.core.tasks.mixture:MixtureTask",
    "celltype": "napari_cellcurator.core.tasks.celltype:CellTypeTask",
    "cellness": "napari_cellcurator.core.tasks.cellness:CellnessTask",
}

_INSTANCES: dict[str, Task] = {}


def get_task(name: str) -> Task:
    """The :class:`Task` called ``name``."""
    if name not in TASK_MODULES:
        raise CellCuratorError(f"unknown task {name!r}; known: {sorted(TASK_MODULES)}")
    if name not in _INSTANCES:
        module, cls = TASK_MODULES[name].split(":")
        _INSTANCES[name] = getattr(importlib.import_module(module), cls)()
    return _INSTANCES[name]


__all__ = ["ReadOptions", "Task", "TASK_MODULES", "get_task"]
