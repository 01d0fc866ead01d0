"""Qt-free core of napari-cellcurator: io, data, models, training, inference, explain, store.

Nothing under this package imports Qt, napari or magicgui (a test enforces it).
"""

from napari_cellcurator.core.errors import CellCuratorError, InputError

__all__ = ["CellCuratorError", "InputError"]
