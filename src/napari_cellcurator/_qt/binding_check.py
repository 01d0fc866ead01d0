"""A Qt binding bug that kills napari, detected when the first widget opens.

PySide6 6.12.0 drops a reference to ``None`` on every call of a method that returns nothing
(``setText``, ``setData``...). From Python 3.12 ``None`` is immortal and nothing happens; on
Python 3.11 and older its count reaches zero after some 10⁵ Qt calls and the interpreter
aborts ("Fatal Python error: none_dealloc"), taking napari and any unsaved work in other
plugins with it (our labels are journaled as they are made). Measured, not looked up by
version: a few void calls on a QObject, and the reference count of ``None`` before and after.
"""

from __future__ import annotations

import functools
import sys

#: void Qt calls made by the probe
PROBE_CALLS = 64


def none_references_dropped_per_call() -> float:
    """References to ``None`` a void Qt call loses on this binding (0 when it is sound)."""
    from qtpy.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(PROBE_CALLS):
        probe.setObjectName("cellcurator-probe")
    return max(0, before - sys.getrefcount(None)) / PROBE_CALLS


@functools.cache
def warn_if_qt_binding_leaks() -> bool:
    """Warn (once per process) when the Qt binding will crash this Python; True if it will."""
    if sys.version_info >= (3, 12):  # None is immortal: a lost reference is harmless
        return False
    if none_references_dropped_per_call() < 0.5:
        return False
    import qtpy
    from napari.utils.notifications import show_warning

    show_warning(
        f"{qtpy.API_NAME} {qtpy.PYSIDE_VERSION or qtpy.PYQT_VERSION} loses "
        f"a reference to None on every Qt call: on Python {sys.version.split()[0]} napari will "
        "abort ('none_dealloc') after about 10^5 calls. Install another version "
        "(pip install 'PySide6-Essentials<6.12') or use Python 3.12 or newer.")
    return True
