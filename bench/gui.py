"""Driving the real napari widgets from a benchmark: Xvfb, a viewer, a heartbeat, waiting.

Helper of ``responsiveness.py`` and ``retrain.py`` (run directly it only says so). The widgets
are used exactly as a user would: Load → (project's current model) Predict → Train, each click
being the widget's own method, its work running in the widget's ``thread_worker``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

import numpy as np
from common import JURKAT, make_model_dir

#: label-free channels of the Jurkat crops (bright field, dark field)
CHANNELS = [0, 2]


def ensure_display():
    """Start a virtual X server when there is no display (returns it, or None)."""
    if os.environ.get("DISPLAY") or os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        return None
    from pyvirtualdisplay import Display

    display = Display(visible=False, size=(1280, 1024), color_depth=24)
    display.start()
    return display


@contextlib.contextmanager
def virtual_display():
    """:func:`ensure_display` for the duration of a ``with`` block."""
    display = ensure_display()
    try:
        yield
    finally:
        if display is not None:
            display.stop()


def jurkat_subset(dst: Path, n: int) -> Path:
    """``n`` real Jurkat crops in class folders: every rare-class cell, the rest split evenly."""
    if not JURKAT.is_dir():
        raise SystemExit(f"needs the real Jurkat data at {JURKAT}")
    files = {d.name: sorted(d.glob("*.tif")) for d in sorted(JURKAT.iterdir()) if d.is_dir()}
    quota, left = {}, n
    for name, fs in sorted(files.items(), key=lambda kv: len(kv[1])):
        quota[name] = min(len(fs), left // (len(files) - len(quota)))
        left -= quota[name]
    for name, fs in files.items():
        (dst / name).mkdir(parents=True, exist_ok=True)
        for f in fs[:: max(1, len(fs) // max(quota[name], 1))][: quota[name]]:
            shutil.copy(f, dst / name / f.name)
    return dst


def add_random_model(data: Path, work: Path) -> Path:
    """A random-weight default-arch celltype model (v0001) made current in ``data``'s project."""
    from napari_cellcurator._qt.common import open_project
    from napari_cellcurator.core.tasks import ReadOptions, get_task

    task = get_task("celltype")
    opts = ReadOptions(channels=CHANNELS)
    items = task.read(data, opts)
    prep = task.fit_preprocessing(items, opts)
    classes = task.classes_from(items)
    model_dir, _, _ = make_model_dir(work / "v0001_src", "celltype", prep, classes)
    open_project(data).models.add_folder(model_dir)
    return model_dir


class Heartbeat:
    """A 10 ms QTimer on the GUI thread; gaps between its ticks = how long the GUI froze."""

    def __init__(self, interval_ms: int = 10):
        from qtpy.QtCore import Qt, QTimer

        self.ticks: list[float] = []
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))
        self.timer.start()

    def gaps_ms(self, start: float, stop: float) -> np.ndarray:
        """Gaps between ticks from the last tick before ``start`` to the first after ``stop``
        (a click that blocks the GUI thread right away shows as a gap)."""
        t = np.asarray(self.ticks)
        lo = max(0, int(np.searchsorted(t, start)) - 1)
        hi = int(np.searchsorted(t, stop)) + 1
        t = t[lo:hi]
        return np.diff(t) * 1000 if len(t) > 1 else np.zeros(0)

    def stop(self) -> None:
        self.timer.stop()


class StallSampler:
    """A watchdog thread: when the heartbeat has not ticked for ``after_ms``, it records where
    the GUI thread is (its Python stack), so a long gap names the code that caused it."""

    def __init__(self, beat: Heartbeat, after_ms: float = 60, every_ms: float = 15):
        import threading

        self.beat, self.after, self.every = beat, after_ms / 1000, every_ms / 1000
        self.main = threading.main_thread().ident
        self.stalls: dict[str, float] = {}  # stack text → seconds seen stalled there
        self.phase = ""  # set by the caller: which click is running
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import sys
        import traceback

        while not self._stop.wait(self.every):
            if not self.beat.ticks or time.perf_counter() - self.beat.ticks[-1] < self.after:
                continue
            frame = sys._current_frames().get(self.main)
            if frame is None:
                continue
            stack = traceback.extract_stack(frame)
            # innermost frames say what, frames of this project say from where
            ours = [f for f in stack[:-4] if "napari_cellcurator" in f.filename]
            key = f"[{self.phase}] " + " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}"
                              for f in reversed(ours[-3:] + stack[-4:]))
            self.stalls[key] = self.stalls.get(key, 0.0) + self.every

    def stop(self, top: int = 8) -> list[dict]:
        """Stop; the ``top`` GUI-thread stacks seen most during stalls."""
        self._stop.set()
        self._thread.join()
        ranked = sorted(self.stalls.items(), key=lambda kv: -kv[1])[:top]
        return [{"seconds": round(v, 3), "gui_thread_stack": k} for k, v in ranked]


def gap_stats(gaps: np.ndarray) -> dict:
    """Max, 99th percentile, count of ticks and of gaps over 100 ms."""
    if len(gaps) == 0:
        return {"max_gap_ms": None, "p99_gap_ms": None, "ticks": 0, "gaps_over_100ms": 0}
    return {"max_gap_ms": float(gaps.max()), "p99_gap_ms": float(np.percentile(gaps, 99)),
            "ticks": int(len(gaps) + 1), "gaps_over_100ms": int((gaps > 100).sum())}


def wait_for(signal, timeout_s: float) -> bool:
    """Run the Qt event loop until ``signal`` fires (True) or ``timeout_s`` passes (False)."""
    from qtpy.QtCore import QEventLoop, QTimer

    loop, fired = QEventLoop(), []

    def quit_(*_):
        fired.append(True)
        loop.quit()

    signal.connect(quit_)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    try:
        signal.disconnect(quit_)
    except (TypeError, RuntimeError, ValueError):  # Qt and psygnal disagree on how to say it
        pass
    return bool(fired)


def wait_until(condition, timeout_s: float) -> bool:
    """Run the Qt event loop until ``condition()`` is true (True) or ``timeout_s`` passes."""
    stop = time.perf_counter() + timeout_s
    while not condition():
        if time.perf_counter() > stop:
            return False
        spin(0.05)
    return True


def spin(seconds: float) -> None:
    """Let the event loop run for ``seconds`` (draws, pending signals)."""
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def open_viewer_with(data: Path):
    """A shown napari viewer with ``data`` loaded through the Load widget; returns
    ``(viewer, session)``."""
    import napari

    from napari_cellcurator._qt.common import hub_for
    from napari_cellcurator._qt.load_widget import LoadWidget

    viewer = napari.Viewer(show=True)
    load = LoadWidget(viewer)
    viewer.window.add_dock_widget(load)
    load._channels.value = ",".join(map(str, CHANNELS))
    worker = load.load(data, "celltype")
    if not wait_for(worker.finished, 120):
        raise RuntimeError("loading did not finish in 120 s")
    spin(0.2)
    session = hub_for(viewer).session
    if session is None:
        raise RuntimeError("the Load widget made no session")
    return viewer, session


def add_widgets(viewer):
    """The Predict and Train widgets docked in ``viewer`` (opened before anything is timed)."""
    from napari_cellcurator._qt.predict_widget import PredictWidget
    from napari_cellcurator._qt.train_widget import TrainWidget

    predict, train = PredictWidget(viewer), TrainWidget(viewer)
    viewer.window.add_dock_widget(predict)
    viewer.window.add_dock_widget(train)
    return predict, train


def click_predict(widget, timeout_s: float = 300) -> float:
    """Predict with the project's current model; seconds from click to predictions applied."""
    t0 = time.perf_counter()
    worker = widget.predict()
    if worker is None or not wait_for(worker.finished, timeout_s):
        raise RuntimeError("prediction did not finish")
    return time.perf_counter() - t0


def click_train(widget, epochs: int | None = None, timeout_s: float = 600):
    """Fine-tune with the Train widget (its defaults unless ``epochs``); returns
    ``(seconds from click to re-scored items, outcome)``."""
    if epochs is not None:
        widget._epochs.value = epochs
    outcome: list[str] = []
    widget.done.connect(outcome.append)
    t0 = time.perf_counter()
    if widget.train() is None:
        raise RuntimeError("training did not start")
    wait_for(widget.done, timeout_s)
    seconds = time.perf_counter() - t0
    return seconds, (outcome[0] if outcome else "timeout")


if __name__ == "__main__":
    print("  helper of responsiveness.py and retrain.py; nothing to measure on its own")


def run_isolated(main_fn, doc: str) -> None:
    """``__main__`` of a GUI benchmark: measure in a child process, retried once if Qt crashes
    it (a crash is reported, and recorded in the JSON as ``gui_crashes_before``)."""
    import subprocess
    import sys

    from common import parse_args

    if "--child" in sys.argv:
        crashes = int(sys.argv[sys.argv.index("--child") + 1])
        del sys.argv[sys.argv.index("--child"):sys.argv.index("--child") + 2]
        args = parse_args(doc)
        main_fn(args.quick, args.out, crashes)
        sys.stdout.flush()
        os._exit(0)  # results are written; skip Qt/vispy teardown, which can crash under Xvfb
    parse_args(doc)  # --help and argument errors here, not in the child
    rc = 0
    for crashes in range(2):
        rc = subprocess.call([sys.executable, "-X", "faulthandler", sys.argv[0], *sys.argv[1:],
                              "--child", str(crashes)])
        if rc == 0:
            return
        print(f"  GUI process crashed (exit code {rc}); see the trace above", flush=True)
    sys.exit(rc)
