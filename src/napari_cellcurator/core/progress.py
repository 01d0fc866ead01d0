"""Progress of long core jobs (reading a long recording, PCA/ICA) without Qt.

A job takes a plain callback ``progress(fraction, stage)``; the callback may raise
:class:`Cancelled` to stop the job at its next report. :func:`as_steps` turns such a job into
a generator of :class:`Progress` updates (what napari's generator workers and the CLI
consume): the job runs in a helper thread; setting its ``cancel`` event, or closing the
generator, stops it at its next report.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

#: ``progress(fraction of the whole job done, name of the current stage)``
ProgressFn = Callable[[float, str], None]


class Cancelled(Exception):  # noqa: N818 (what the user did, not an error)
    """Raised through a job by its progress callback when the user cancels it."""


@dataclass(frozen=True)
class Progress:
    """One update of a long job: ``fraction`` (0–1) of it done, in ``stage``."""

    fraction: float
    stage: str


class Stages:
    """A job made of weighted stages, reported as fractions of the whole.

    ``Stages(report, [("PCA", 6), ("traces", 1)]).part("PCA")`` is a ``part(within)``
    callback mapping a fraction of the PCA stage to the job's fraction (6/7 of the job is PCA).
    With ``report`` None every part is a no-op.
    """

    def __init__(self, report: ProgressFn | None, weights: Sequence[tuple[str, float]]):
        self.report = report
        total = float(sum(w for _, w in weights)) or 1.0
        self._span: dict[str, tuple[float, float]] = {}
        start = 0.0
        for name, weight in weights:
            self._span[name] = (start / total, weight / total)
            start += weight

    def part(self, stage: str) -> Callable[[float], None]:
        """Callback for ``stage``: ``part(within)`` reports the job's fraction done."""
        begin, width = self._span[stage]
        report = self.report

        def within(fraction: float) -> None:
            if report is not None:
                report(begin + width * min(max(fraction, 0.0), 1.0), stage)
        return within

    def start(self, stage: str) -> None:
        """Report that ``stage`` begins (also a cancellation point)."""
        self.part(stage)(0.0)


def counted(items: Sequence, report: ProgressFn | None, stage: str,
            updates: int = 100) -> Iterator:
    """``items`` one by one, telling ``report`` the fraction done about ``updates`` times."""
    n = len(items)
    every = max(1, n // updates)
    for k, item in enumerate(items):
        if report is not None and k % every == 0:
            report(k / n, stage)
        yield item
    if report is not None and n:
        report(1.0, stage)


def as_steps(job: Callable[..., Any], *args: Any, cancel: threading.Event | None = None,
             poll_s: float = 0.1, **kwargs: Any) -> Generator[Progress, None, Any]:
    """Run ``job(*args, progress=..., **kwargs)`` in a helper thread and yield its updates.

    The generator's return value is the job's; the job's exception (:class:`Cancelled` once
    ``cancel`` is set) is raised from it. Closing the generator early also cancels the job,
    and waits for it to stop.
    """
    updates: queue.Queue[Progress] = queue.Queue()
    cancel = cancel or threading.Event()

    def report(fraction: float, stage: str) -> None:
        if cancel.is_set():
            raise Cancelled(f"cancelled during {stage}")
        updates.put(Progress(float(fraction), stage))

    with ThreadPoolExecutor(1, thread_name_prefix="cellcurator-job") as pool:
        future = pool.submit(job, *args, progress=report, **kwargs)
        try:
            while not (future.done() and updates.empty()):
                try:
                    yield updates.get(timeout=poll_s)
                except queue.Empty:
                    continue
        finally:  # closed early (cancelled) or done: the job stops at its next report
            cancel.set()
    return future.result()

