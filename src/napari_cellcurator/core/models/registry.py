"""Registry of model architectures by name: ``build_model("dcnn", **spec)``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from napari_cellcurator.core.errors import CellCuratorError

#: Modules that register architectures when imported (one per model family).
_FAMILY_MODULES = (
    "napari_cellcurator.core.models.celltype",
    "napari_cellcurator.core.models.cellness",
    "napari_cellcurator.core.models.mixture",
    "napari_cellcurator.core.models.autoencoder",
)


@dataclass(frozen=True)
class ModelEntry:
    """One registered architecture."""

    name: str
    task: str
    builder: Callable[..., Any]
    description: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, task: str, description: str = "") -> Callable:
    """Decorator registering ``builder(**spec) -> nn.Module`` under ``name`` for ``task``."""

    def decorate(builder: Callable) -> Callable:
        _REGISTRY[name] = ModelEntry(name, task, builder, description or (builder.__doc__ or ""))
        return builder

    return decorate


def _load_families() -> None:
    import importlib

    for module in _FAMILY_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:  # a family not written yet must not break the others
            if exc.name != module:
                raise


def available_models(task: str | None = None) -> list[str]:
    """Names of registered architectures, optionally only those fitting ``task``."""
    _load_families()
    return sorted(n for n, e in _REGISTRY.items() if task is None or e.task == task)


def build_model(name: str, **spec: Any):
    """Build architecture ``name`` with ``spec`` (in_channels, n_outputs, input_size...)."""
    _load_families()
    if name not in _REGISTRY:
        raise CellCuratorError(f"unknown model architecture {name!r}; known: {available_models()}")
    return _REGISTRY[name].builder(**spec)


def model_task(name: str) -> str:
    """The task an architecture belongs to."""
    _load_families()
    return _REGISTRY[name].task
