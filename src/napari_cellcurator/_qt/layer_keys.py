"""Keys one widget binds on one napari layer, removed again without touching other widgets'."""

from __future__ import annotations

from collections.abc import Callable


class LayerKeys:
    """The key bindings one widget put on one layer.

    napari keeps one function per key on a layer; two Curate widgets (the dock's tab and a
    standalone one) bind the same keys, the later overwriting the earlier. Unbinding removes
    only the keys that still call this widget's functions, so closing one widget never
    strips the keys of another. Plain Python (no Qt): safe to call from a ``destroyed`` slot.
    """

    def __init__(self) -> None:
        self.layer = None
        self.funcs: list[Callable] = []

    def bind(self, layer, keys: dict[str, Callable]) -> None:
        """Bind ``keys`` (key → function of the event) on ``layer``, after unbinding."""
        self.unbind()
        for key, func in keys.items():
            layer.bind_key(key, func, overwrite=True)
        self.layer, self.funcs = layer, list(keys.values())

    def unbind(self, *_) -> None:
        """Remove the bindings of this widget that are still on the layer."""
        layer, mine = self.layer, {id(f) for f in self.funcs}
        self.layer, self.funcs = None, []
        if layer is None:
            return
        for key, func in list(layer.keymap.items()):
            if id(func) in mine:
                layer.bind_key(key, None)
