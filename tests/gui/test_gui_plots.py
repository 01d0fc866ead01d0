"""Plots render in their own thread: the GUI thread only paints the finished image."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def test_curves_render_off_the_gui_thread(qtbot):
    from napari_cellcurator._qt.plots import CurvesPlot

    plot = CurvesPlot()
    qtbot.addWidget(plot)
    plot.resize(400, 260)
    plot.show()
    render_threads = []
    original = plot.figure.canvas.draw
    plot.figure.canvas.draw = lambda: (render_threads.append(threading.current_thread()),
                                       original())
    for epoch in range(1, 4):
        plot.add_epoch(epoch, 1.0 / epoch, 1.2 / epoch, 0.3 * epoch)
    plot.wait_idle()
    qtbot.waitUntil(lambda: plot._rgba is not None, timeout=10_000)
    assert render_threads and threading.main_thread() not in render_threads
    # the lines hold every epoch and the image has the widget's size
    assert list(plot.axes[0].lines[0].get_xdata()) == [1, 2, 3]
    assert plot._rgba.shape[:2] == (plot.height(), plot.width())
    # the image is not blank: lines were drawn over the dark background
    assert len(np.unique(plot._rgba.reshape(-1, 4), axis=0)) > 10


def test_hidden_plot_renders_when_shown(qtbot):
    from napari_cellcurator._qt.plots import ConfusionPlot

    plot = ConfusionPlot()
    qtbot.addWidget(plot)
    plot.show_metrics({"classes": ["a", "b"], "confusion": [[3, 1], [0, 4]],
                       "per_class": {"a": {"f1": 0.8}, "b": {"f1": 0.9}}})
    plot.wait_idle()
    assert plot._rgba is None  # never shown: nothing rendered yet
    assert len(plot.axes[0].texts) == 4  # ...but the figure holds the change
    plot.show()
    plot.wait_idle()
    qtbot.waitUntil(lambda: plot._rgba is not None, timeout=10_000)
