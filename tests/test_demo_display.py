"""Where the demo's viewer can be shown: macOS/Windows desktops set no DISPLAY; a Linux box
without a display or Xvfb is refused before the training, not after it."""

from __future__ import annotations

import pytest

from napari_cellcurator._qt import demo_screens


@pytest.mark.parametrize("platform", ["darwin", "win32"])
def test_desktops_without_display_variables_show_windows(monkeypatch, platform):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(demo_screens.sys, "platform", platform)
    monkeypatch.setattr(demo_screens.shutil, "which", lambda name: None)
    assert demo_screens.has_display()
    demo_screens.check_can_render()  # no Xvfb needed
    with demo_screens.virtual_display():
        pass


def test_a_headless_linux_without_xvfb_is_refused_before_training(monkeypatch, tmp_path):
    from napari_cellcurator import demo

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(demo_screens.sys, "platform", "linux")
    monkeypatch.setattr(demo_screens.shutil, "which", lambda name: None)
    trained = []
    monkeypatch.setattr(demo, "run_case", lambda *a, **k: trained.append(a))
    with pytest.raises(RuntimeError, match="no-viewer"):
        demo.run_demo(tmp_path / "out")
    assert trained == []
