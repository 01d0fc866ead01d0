"""The Qt binding under test must not lose references to None (PySide6 6.12.0 does: on
Python < 3.12 napari then aborts with "none_dealloc" after ~10^5 Qt calls)."""

from __future__ import annotations

import sys

import pytest

pytestmark = pytest.mark.gui


def test_void_qt_calls_keep_none_alive(qapp):
    from napari_cellcurator._qt.binding_check import none_references_dropped_per_call

    assert none_references_dropped_per_call() < 0.5


def test_a_leaking_binding_is_reported_once(monkeypatch, qapp):
    from napari_cellcurator._qt import binding_check

    shown = []
    monkeypatch.setattr(binding_check, "none_references_dropped_per_call", lambda: 1.0)
    monkeypatch.setattr("napari.utils.notifications.show_warning", shown.append)
    binding_check.warn_if_qt_binding_leaks.cache_clear()
    try:
        expected = sys.version_info < (3, 12)
        assert binding_check.warn_if_qt_binding_leaks() is expected
        assert binding_check.warn_if_qt_binding_leaks() is expected  # cached: once
        assert len(shown) == int(expected)
        if expected:
            assert "none_dealloc" in shown[0] and "PySide6-Essentials<6.12" in shown[0]
    finally:
        binding_check.warn_if_qt_binding_leaks.cache_clear()
