"""Argument types and progress output of the ``cellcurator`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def channels_arg(text: str) -> list[int]:
    """``--channels``: channel indices like ``0,2`` (at least one)."""
    try:
        channels = [int(c) for c in text.split(",") if c.strip() != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--channels expects indices like 0,2; got {text!r}") from None
    if not channels:
        raise argparse.ArgumentTypeError(f"--channels names no channel ({text!r}); leave it "
                                         "out to use them all")
    return channels


def positive(convert: type = int):
    """argparse type: a number above 0 (``--epochs``, ``--batch-size``, ``--k``: a whole
    number ≥ 1; ``--lr``: any number > 0). 0 used to mean "the default" silently."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            kind = "a whole number" if convert is int else "a number"
            raise argparse.ArgumentTypeError(f"expects {kind}; got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be above 0; got {value}")
        return value
    return parse


def scheduler_arg(text: str) -> str:
    """``--scheduler``: threads, processes, sync, local:N or a dask.distributed address."""
    if text in ("threads", "processes", "sync", "synchronous"):
        return text
    if text.startswith("local:"):
        n = text.split(":", 1)[1]
        if not (n.isdigit() and int(n) >= 1):
            raise argparse.ArgumentTypeError(f"{text}: local:N needs a number of workers N ≥ 1")
        return text
    if "://" in text or ":" in text:  # tcp://host:8786, host:8786
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r}: one of threads, processes, local:N or a scheduler address like "
        "tcp://host:8786")


SHIPPED = "shipped:"
MODEL_HELP = ("a model folder, or shipped:cellness for the model shipped with the package "
              "(default: the data's project's current model, else the task's shipped model)")


def model_dir_arg(text: str) -> str:
    """``--model``: a folder, or ``shipped:<task>`` (a task's model shipped with the package)."""
    if not text.startswith(SHIPPED):
        return text
    from napari_cellcurator.core.tasks import TASK_MODULES, get_task

    name = text[len(SHIPPED):]
    if name not in TASK_MODULES:
        raise argparse.ArgumentTypeError(f"{text}: unknown task (one of {list(TASK_MODULES)})")
    folder = get_task(name).shipped_model()
    if folder is None:
        raise argparse.ArgumentTypeError(f"{text}: no model is shipped for the {name} task; "
                                         "train one (cellcurator train)")
    return folder


class ReadProgress:
    """Progress of a long read (PCA/ICA candidates of a recording) on stderr: a line when a
    stage starts and every 10 % of the whole."""

    def __init__(self) -> None:
        self.stage, self.tenth = None, -1

    def __call__(self, fraction: float, stage: str) -> None:
        tenth = int(fraction * 10)
        if stage != self.stage or tenth > self.tenth:
            print(f"reading: {stage} ({fraction:.0%})", file=sys.stderr, flush=True)
            self.stage, self.tenth = stage, tenth


def task_name(task: str | None, data: str | list[str]) -> str:
    """``--task``, or the task detected from the (first) ``--data`` path."""
    from napari_cellcurator._reader import detect_task, unknown_format
    from napari_cellcurator.core.errors import CellCuratorError, InputError

    first = data[0] if isinstance(data, list) else data
    name = task or detect_task(first)
    if name is None:
        if Path(first).exists():  # a movie or a folder of frames: say which tasks read it
            raise CellCuratorError(f"{unknown_format(Path(first))} (pass --task)")
        raise InputError(first, "cannot tell which task this data is for", "pass --task")
    return name


def read_option_arg(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` of ``--read-option``; the value read as JSON where it is (``false``,
    ``3``, ``0.5``), else as text."""
    import json

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE (e.g. qc=false)")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value
