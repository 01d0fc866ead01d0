"""CNN architectures, one module per family, registered by name."""

from napari_cellcurator.core.models.registry import (
    available_models,
    build_model,
    register_model,
)

__all__ = ["available_models", "build_model", "register_model"]
