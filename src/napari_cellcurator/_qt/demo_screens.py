"""Screenshots of the demo results in a real napari window (a virtual X server when headless)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np


def has_display() -> bool:
    """Whether windows can be shown: always on Windows and macOS (their desktops set no
    DISPLAY), on Linux when an X or Wayland display is set."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def check_can_render() -> None:
    """Refuse, before any work, a viewer that could not be shown (Linux, no display, no Xvfb).

    Raises
    ------
    RuntimeError
        Saying to install Xvfb or to run without the viewer.
    """
    if not has_display() and shutil.which("Xvfb") is None:
        raise RuntimeError("no display and no Xvfb: install xvfb (make demo does it) to render "
                           "the viewer, or run `cellcurator demo --no-viewer`")


@contextlib.contextmanager
def virtual_display(size: tuple[int, int] = (1600, 1000)) -> Iterator[None]:
    """Start Xvfb for the block when there is no display (CI, SSH); no-op otherwise."""
    if has_display():
        yield
        return
    check_can_render()
    xvfb = shutil.which("Xvfb")
    number = next(n for n in range(99, 199)  # first free display number
                  if not Path(f"/tmp/.X11-unix/X{n}").exists()
                  and not Path(f"/tmp/.X{n}-lock").exists())
    proc = subprocess.Popen([xvfb, f":{number}", "-screen", "0", f"{size[0]}x{size[1]}x24",
                             "-nolisten", "tcp"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.environ["DISPLAY"] = f":{number}"
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    try:
        for _ in range(50):  # wait until the server accepts connections
            if Path(f"/tmp/.X11-unix/X{number}").exists():
                break
            time.sleep(0.1)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        os.environ.pop("DISPLAY", None)


def _settle(viewer, seconds: float = 1.0) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def screenshot_results(results, out: Path) -> list[Path]:
    """One screenshot per demo result: data, predictions, heatmap overlay and the docks."""
    with virtual_display():
        import napari
        import pandas as pd

        from napari_cellcurator._qt.show import show_task_results
        from napari_cellcurator.core.pipeline import read_for_model
        from napari_cellcurator.core.store.modelio import read_config

        paths = []
        for result in results:
            viewer = napari.Viewer(show=True, title=f"cell curator — {result.case.task}")
            try:
                napari.utils.resize_dask_cache(mem_fraction=0.05)
                viewer.window.resize(1600, 1000)
                config = read_config(result.model_dir)
                items = read_for_model(config, str(result.display_path))
                predictions = pd.read_csv(result.predictions_csv, dtype={"item_id": str})
                heatmap = np.load(result.heatmap_path)
                show_task_results(viewer, result.case.task, items, predictions,
                                  heatmap=heatmap, heatmap_item=result.explained_item,
                                  classes=config.classes)
                _add_docks(viewer, result.explained_item)
                _frame(viewer, result.case.task, len(items))
                _settle(viewer, 1.5)
                path = out / f"{result.case.task}.png"
                viewer.screenshot(str(path), canvas_only=False, flash=False)
                paths.append(path)
            finally:
                viewer.close()
        return paths


def _frame(viewer, task: str, n_items: int) -> None:
    """Frame the view: the whole field for ROIs and movies; for crop mosaics a readable
    neighbourhood of the explained cell (show_task_results centred the camera on it)."""
    centre = viewer.camera.center
    viewer.reset_view()
    if task == "celltype":
        viewer.camera.zoom *= max(1.0, float(np.sqrt(n_items)) / 9)
        viewer.camera.center = centre


def _add_docks(viewer, explained_item: str | None = None) -> None:
    """The plugin's dock widgets, as a user would open them from the Plugins menu; the
    Curate dock shows the explained item (its details, its trace for an ROI)."""
    for name in ("Predict", "Curate"):
        with contextlib.suppress(KeyError, ValueError, LookupError):
            _dock, widget = viewer.window.add_plugin_dock_widget("napari-cellcurator", name)
            session = getattr(widget, "session", None)
            if name == "Curate" and session is not None and explained_item is not None:
                rows = session.rows_of([explained_item])
                if len(rows):
                    widget.go_to(int(rows[0]))
