"""What kind of napari layer a layer is, from napari's public layer classes."""

from __future__ import annotations


def layer_kind(layer) -> str:
    """``"points"``, ``"labels"``, ``"shapes"``, ``"image"`` (else the class name, lower
    case)."""
    from napari import layers

    for kind in ("Points", "Labels", "Shapes", "Image"):
        if isinstance(layer, getattr(layers, kind)):
            return kind.lower()
    return type(layer).__name__.lower()
