"""Batch scoring of large data on dask: threads by default, a dask.distributed cluster on demand.

Each batch of items is one task; a worker process loads the model once and keeps it. Inputs
that are dask arrays (zarr stores, movies) are read by the workers themselves, so the client
never holds the data and memory stays bounded by the batch size, not by the number of items.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from napari_cellcurator.core.errors import CellCuratorError, InputError
from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.io.roots import dataset_root
from napari_cellcurator.core.store.atomic import (
    OUTPUT_MARK,
    atomic_write,
    atomic_write_dir,
    check_not_input,
    check_replaceable,
    marked_output,
)

#: the :data:`OUTPUT_MARK` of prediction zarr outputs
PREDICTIONS_MARK = "predictions"
#: column of a prediction table naming the data set (its absolute root) it was made for
DATA_ROOT = "data_root"
#: column of a prediction table: the model folder that made it (``review`` / ``export`` read
#: the data as that model does when its items are not the default read's)
MODEL_DIR = "model_dir"

_MODEL_CACHE: dict[tuple[str, str], tuple] = {}
_CACHE_LOCK = threading.Lock()
# One forward at a time per process: torch already spreads a forward over every core, so two
# concurrent forwards oversubscribe the CPU (measured: end to end fell to 0.68 of forward-only
# on the mixture model); the second dask thread reads and preprocesses the next batch instead.
_FORWARD_LOCK = threading.Lock()


def _cached_model(model_dir: str, device: str):
    """The model of ``model_dir``, loaded once per process (workers reuse it across batches)
    and again when its files change (a model saved over the folder in the same session)."""
    from napari_cellcurator.core.device import use_channels_last
    from napari_cellcurator.core.store.modelio import load_model

    folder = Path(model_dir).resolve()
    stamp = tuple(sorted((f.name, f.stat().st_mtime_ns, f.stat().st_size)
                         for f in folder.iterdir() if f.is_file()))
    key = (str(folder), device)
    with _CACHE_LOCK:
        if key not in _MODEL_CACHE or _MODEL_CACHE[key][0] != stamp:
            model, config = load_model(model_dir, device)
            _MODEL_CACHE[key] = (stamp, use_channels_last(model), config)
        return _MODEL_CACHE[key][1:]


def score_batch(model_dir: str, arrays: dict[str, np.ndarray], device: str = "cpu",
                amp: bool = False) -> np.ndarray:
    """Scores (probabilities or proportions) of one batch of raw input arrays (mixed
    precision on CUDA when ``amp`` is True)."""
    import torch

    from napari_cellcurator.core.device import autocast
    from napari_cellcurator.core.tasks import get_task
    from napari_cellcurator.core.training import forward_views

    model, config = _cached_model(model_dir, device)
    task = get_task(config.task)
    n = len(next(iter(arrays.values())))
    table = pd.DataFrame({"item_id": [str(i) for i in range(n)], "source": "", "label": None})
    items = ItemSet(table, {k: np.asarray(v) for k, v in arrays.items()})
    batch = task.make_batch(items, np.arange(n), config.preprocessing, False,
                            np.random.default_rng(0))
    with _FORWARD_LOCK, torch.inference_mode(), autocast(device, amp):
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = forward_views(task, model, batch, config.preprocessing)
    return task.outputs_to_scores(logits)


def _batch_tasks(model_dir: str, items: ItemSet, batch_size: int, device: str, amp: bool):
    import dask

    tasks = []
    for start in range(0, len(items), batch_size):
        stop = min(len(items), start + batch_size)
        arrays = {k: v[start:stop] for k, v in items.arrays.items()}
        tasks.append(dask.delayed(score_batch, pure=True)(model_dir, arrays, device, amp))
    return tasks


def _client_for(scheduler: str):
    """A dask.distributed client for ``local:N`` or an address (caller closes it)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise CellCuratorError("--scheduler with a cluster needs the 'distributed' package: "
                               "pip install 'napari-cellcurator[distributed]'") from None
    if scheduler.startswith("local:"):
        n = int(scheduler.split(":", 1)[1] or 2)
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
        return Client(cluster), cluster
    try:
        return Client(scheduler, timeout=30), None
    except (OSError, ValueError, TimeoutError) as exc:  # unreachable or not an address
        raise CellCuratorError(f"--scheduler {scheduler}: cannot reach a dask scheduler "
                               f"({type(exc).__name__}: {exc})") from None


def check_serialisable(items: ItemSet, scheduler: str) -> None:
    """Refuse, before any work, items that cannot be sent to worker processes.

    Raises
    ------
    InputError
        Naming the data and the pickling failure, suggesting ``--scheduler threads``.
    """
    import pickle

    import cloudpickle

    sample = {k: v[:1] for k, v in items.arrays.items()}  # the movies/arrays a batch holds
    try:
        cloudpickle.dumps(sample)
    except (TypeError, AttributeError, ValueError, pickle.PicklingError) as exc:
        raise InputError(items.meta.get("path"), f"cannot be sent to the worker processes "
                         f"of --scheduler {scheduler} ({type(exc).__name__}: {exc})",
                         "--scheduler threads (reads the data in this process)") from None


def score_items(model_dir: str, items: ItemSet, device: str = "cpu", batch_size: int = 256,
                scheduler: str = "threads", amp: bool = False) -> np.ndarray:
    """Scores of every item, computed batch-wise on the chosen dask scheduler (mixed
    precision on CUDA when ``amp`` is True)."""
    import dask

    if len(items) == 0:  # a plane without ROIs, a frame without points
        from napari_cellcurator.core.store.modelio import read_config
        from napari_cellcurator.core.tasks import get_task

        config = read_config(model_dir)
        return get_task(config.task).no_scores(config.classes)
    if scheduler not in ("threads", "sync", "synchronous"):
        check_serialisable(items, scheduler)
    tasks = _batch_tasks(model_dir, items, batch_size, device, amp)
    if scheduler in ("threads", "sync", "synchronous", "processes"):
        kw = {"scheduler": scheduler}
        if scheduler == "threads":
            # two batches in flight: one reads and preprocesses while the other runs its
            # forward (forwards are serialised by _FORWARD_LOCK, each using every core)
            kw["num_workers"] = min(2, os.cpu_count() or 1)
        parts = dask.compute(*tasks, **kw)
    else:
        client, cluster = _client_for(scheduler)
        try:
            parts = client.gather(client.compute(tasks))
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    return np.concatenate(parts)


def default_batch_size(items: ItemSet, budget_values: float = 1.5e6) -> int:
    """A batch size that keeps activations bounded: large items (5-frame 64 px snippets) get
    small batches, small crops large ones (a power of two in [16, 256])."""
    per_item = sum(int(np.prod(a.shape[1:])) for a in items.arrays.values()) or 1
    size = 2 ** int(np.floor(np.log2(max(1.0, budget_values / per_item))))
    return int(min(256, max(16, size)))


def predict_to_file(model_dir: str, data: str, out: str, device: str = "auto",
                    scheduler: str = "threads", batch_size: int | None = None,
                    amp: bool = False, progress=None) -> Path:
    """Predict every item of ``data`` and write ``out`` (.csv, .parquet or .zarr) atomically
    (``progress(fraction, stage)``: of reading, for long recordings).

    ``batch_size`` None picks one from the item size (:func:`default_batch_size`), so memory
    stays bounded for big snippets as well as small crops.

    Raises
    ------
    InputError
        ``out`` has an unknown suffix, is (inside, or holds) the input data, or is an existing
        folder that is not an earlier prediction ``.zarr``: nothing is read or written then.
    """
    from napari_cellcurator.core.device import resolve_device
    from napari_cellcurator.core.pipeline import read_for_model, warn_input_drift
    from napari_cellcurator.core.store.modelio import check_predictor, read_config
    from napari_cellcurator.core.tasks import get_task

    config = read_config(model_dir)
    check_predictor(config, model_dir)
    task = get_task(config.task)
    out_path = Path(out)
    suffix = _check_out(out_path, data)
    items = read_for_model(config, data, task, progress, every_item=True)
    check_not_a_source(out_path, items.table)
    warn_input_drift(task, items, config.preprocessing, str(data))
    dev = str(resolve_device(device))
    scores = score_items(model_dir, items, dev, batch_size or default_batch_size(items),
                         scheduler, amp)
    table = task.prediction_table(items.table, scores, config.classes)
    extra = [c for c in items.table.columns if c not in table.columns]
    table = pd.concat([items.table[extra].reset_index(drop=True), table], axis=1)
    # which data set these are of (however --data was typed): export/review check it
    table[DATA_ROOT] = str(dataset_root(data))
    table[MODEL_DIR] = str(Path(model_dir).resolve())
    if suffix == ".zarr":
        _write_zarr(out_path, scores, table)
    elif suffix == ".parquet":
        atomic_write(out_path, lambda p: table.to_parquet(p, index=False))
    else:
        atomic_write(out_path, lambda p: table.to_csv(p, index=False))
    return out_path


def _check_out(out: Path, data: str) -> str:
    """The output's suffix, once ``out`` is known safe to write (before any work)."""
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet", ".zarr"):
        raise InputError(out, "has an unknown output format", ".csv, .parquet or .zarr")
    if suffix == ".zarr":
        # a new folder inside a data folder is fine (``--data plane0 --out plane0/p.zarr``)
        check_not_input(out, data_paths(data), inside_ok=True)
        check_replaceable(out, _is_prediction_zarr, "a prediction .zarr")
    else:
        check_table_out(out, data)
    return suffix


def check_table_out(out: Path, data: str | Path | list) -> None:
    """Refuse a table output (``.csv``/``.parquet``) that is a folder, or an existing file
    inside an input folder that is not one of the package's item tables (a label table of
    the data): writing would replace it. Outputs elsewhere overwrite as usual."""
    check_not_input(out, data_paths(data), inside_ok=True)
    if out.is_dir():
        raise InputError(out, "is a folder", f"a {out.suffix or '.csv'} file name")
    if out.is_file() and inside_data(out, data) and not _is_item_table(out):
        raise InputError(out, "is a file of the input data (not an earlier table of "
                         "cellcurator's); writing would replace it", "a new file name")


def inside_data(path: Path, data: str | Path | list) -> bool:
    """Whether ``path`` lies inside one of the folders ``data`` names."""
    from napari_cellcurator.core.store.atomic import same_path

    parents = path.resolve().parents
    return any(same_path(parent, p.resolve()) for p in data_paths(data) for parent in parents)


def _is_item_table(path: Path) -> bool:
    """Whether ``path`` is an earlier output of predict/export/review (an ``item_id``
    column says so)."""
    try:
        if path.suffix.lower() == ".parquet":  # the schema alone, not the whole table
            import pyarrow.parquet as pq

            columns = pq.read_schema(path).names
        else:
            columns = pd.read_csv(path, nrows=0).columns
    except (OSError, ValueError):
        return False
    return "item_id" in set(columns)


def data_paths(data: str | Path | list) -> list[Path]:
    """The files/folders named by ``data`` (a ``file.h5#split`` fragment stripped)."""
    from napari_cellcurator.core.io.arrays import split_fragment

    paths = data if isinstance(data, list | tuple) else [data]
    return [split_fragment(p)[0] for p in paths]


def check_not_a_source(out: str | Path, table: pd.DataFrame) -> None:
    """Refuse an output that is, or holds, a file the items were read from (a manifest's
    movies, a crop table's images). Compared as text: a stat per crop would cost seconds for
    100,000 of them.

    Raises
    ------
    InputError
        Naming ``out`` and the source it would destroy.
    """
    if "source" not in table.columns:
        return
    target = os.path.normpath(os.path.abspath(out))
    for source in {str(s) for s in table["source"].dropna().unique()} - {"", "."}:
        path = os.path.normpath(os.path.abspath(source))
        if path == target or path.startswith(target + os.sep):
            raise InputError(out, f"is (or holds) {source}, read as input; writing there "
                             "could destroy the data", "an output path apart from the data")


def _is_prediction_zarr(folder: Path) -> bool:
    """An earlier ``predict --out X.zarr`` (marked; unmarked ones from before the mark by
    their layout)."""
    return (marked_output(folder, PREDICTIONS_MARK)
            or ((folder / "predictions.parquet").is_file() and (folder / "scores").is_dir()))


def _write_zarr(path: Path, scores: np.ndarray, table: pd.DataFrame) -> None:
    """Scores as a zarr array plus the table as Parquet beside it (written, then swapped in)."""
    import zarr

    def write(tmp: Path) -> None:
        root = zarr.open_group(str(tmp), mode="w")
        root.create_array("scores", data=np.asarray(scores, dtype=np.float32))
        root.attrs["item_ids"] = table["item_id"].astype(str).tolist()
        root.attrs[OUTPUT_MARK] = PREDICTIONS_MARK
        table.to_parquet(tmp / "predictions.parquet", index=False)

    check_replaceable(path, _is_prediction_zarr, "a prediction .zarr")
    atomic_write_dir(path, write)
