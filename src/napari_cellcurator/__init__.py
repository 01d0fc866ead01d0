"""napari-cellcurator: curate cells with convolutional networks.

The Qt-free core lives in :mod:`napari_cellcurator.core`; napari widgets in ``_qt``.
Importing this package imports neither torch nor napari.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
