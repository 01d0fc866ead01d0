"""The Python API behind the CLI and the widgets: train, predict, evaluate.

Every function takes plain paths/arrays and returns plain data, so a notebook, the CLI and a
napari worker all call the same code.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from napari_cellcurator.core.data.quality import QC_KEEP, passes_qc
from napari_cellcurator.core.data.splits import data_hash, training_split
from napari_cellcurator.core.device import (
    amp_dtype,
    default_training_amp,
    resolve_device,
    seed_everything,
)
from napari_cellcurator.core.errors import CellCuratorError, InputError, InputWarning
from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.io.names import readable
from napari_cellcurator.core.metrics import jsonable as _jsonable
from napari_cellcurator.core.models.registry import available_models, build_model
from napari_cellcurator.core.progress import ProgressFn
from napari_cellcurator.core.store.modelio import (
    ModelConfig,
    check_predictor,
    load_model,
    save_model,
)
from napari_cellcurator.core.tasks import ReadOptions, Task, get_task
from napari_cellcurator.core.training import (
    TrainConfig,
    TrainingDone,
    TrainingFailed,
    TrainingUpdate,
    fit,
    predict_logits,
)


@dataclass
class TrainRequest:
    """What to train: the CLI's ``train`` flags as one object."""

    task: str
    data: list[str]
    out: str | None = None
    arch: str | None = None
    channels: list[int] | None = None
    epochs: int | None = None
    seed: int = 0
    device: str = "auto"
    init: str | None = None
    batch_size: int | None = None
    lr: float | None = None
    read_extra: dict | None = None
    #: mixed precision where the device has it; None: where measured faster (TrainConfig.amp)
    amp: bool | None = None


@dataclass
class ModelSaved(TrainingUpdate):
    """Last update of :func:`train_iter`: the trained model, its folder and config."""

    model: torch.nn.Module
    config: ModelConfig
    model_dir: Path | None


def prepare_training(req: TrainRequest, items: ItemSet | None = None):
    """Read data, split, fit preprocessing and build the model (shared by CLI and widgets)."""
    task = get_task(req.task)
    arch = req.arch or task.default_arch
    if arch not in available_models(task.name):
        raise CellCuratorError(f"architecture {arch!r} does not fit task {task.name!r}; "
                               f"choose one of {available_models(task.name)}")
    # keeping every cell is how napari reads data to show them, not how a model reads data:
    # the model records the quality filter, so `evaluate` and re-training read as training did
    extra = {k: v for k, v in (req.read_extra or {}).items() if k != QC_KEEP}
    options = ReadOptions(channels=req.channels, extra=extra)
    if items is None:
        items = task.read_many(req.data, options)
    labelled = _trainable(items, req.data)
    if len(labelled) < 2:
        raise InputError(", ".join(map(str, req.data)), f"only {len(labelled)} labelled items "
                         "that pass the quality filter; training needs at least 2")
    init_cfg = None
    if req.init is None:
        req.init = task.default_init(arch)
    elif req.init in ("", "none"):
        req.init = None
    if req.init:
        _, init_cfg = load_model(req.init)
        if init_cfg.task != task.name:
            raise CellCuratorError(f"--init model is for task {init_cfg.task!r}, not {task.name!r}")
    classes = task.classes_from(labelled)
    if init_cfg is not None and init_cfg.classes and task.kind == "classification":
        classes = list(init_cfg.classes) + [c for c in classes if c not in init_cfg.classes]
    if task.kind == "classification":
        _check_classes(labelled, classes, req.data, fine_tuning=init_cfg is not None)
    train_idx, val_idx = training_split(labelled.table, task.hyper.val_fraction)
    train, val = labelled.subset(train_idx), labelled.subset(val_idx)
    prep = task.fit_preprocessing(train, options)
    spec = task.model_spec(prep, classes)
    model = build_model(arch, **spec)
    if init_cfg is not None:
        _load_compatible(model, req.init)
    return task, arch, classes, prep, spec, model, train, val, labelled


def _trainable(items: ItemSet, data) -> ItemSet:
    """The labelled items training uses: items the quality filter marked (``qc_flag``: read
    with every cell kept, as napari and the curation commands read) are left out, said."""
    labelled = items.labelled
    good = passes_qc(items.table)
    skipped = int((labelled & ~good).sum())
    if skipped:
        warnings.warn(f"{', '.join(map(str, data))}: {skipped} labelled items fail the quality "
                      "filter (column qc_flag: cut by the border, defocused or empty) and are "
                      "not trained on", InputWarning, stacklevel=3)
    return items.subset(np.flatnonzero(labelled & good))


def _check_classes(labelled: ItemSet, classes: list[str], data, fine_tuning: bool) -> None:
    """A classifier needs examples of two classes (fine-tuning may bring one class only); a
    class with a single example trains, with a warning."""
    counts = labelled.table["label"].astype(str).value_counts()
    if len(classes) < 2 or (len(counts) < 2 and not fine_tuning):
        raise InputError(", ".join(map(str, data)), f"all labelled items are of one class "
                         f"{list(counts.index)}", "at least two classes to tell apart")
    rare = {c: int(n) for c, n in counts.items() if n < 2}
    if rare:
        warnings.warn(f"classes with a single labelled example: {sorted(rare)}; the model "
                      "will rarely predict them and their validation scores mean little",
                      InputWarning, stacklevel=3)


def _load_compatible(model: torch.nn.Module, init_dir: str) -> None:
    """Copy weights whose names and shapes match (a new head for new classes is fine)."""
    from napari_cellcurator.core.store.modelio import load_state_dict

    state = load_state_dict(init_dir)
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not fitting:
        raise CellCuratorError(f"{init_dir}: no weights fit architecture of the new model")
    # a new head for new classes is expected; anything else (a stem made for other
    # channels) starting from random weights should not go unnoticed
    misfit = [k for k, v in state.items() if k in own and own[k].shape != v.shape
              and not _is_head(k, model)]
    if misfit:
        k = misfit[0]
        warnings.warn(f"{init_dir}: {len(misfit)} weight tensor(s) do not fit the new model "
                      f"and start from random values, e.g. {k} {tuple(state[k].shape)} vs "
                      f"{tuple(own[k].shape)} (other channels than the init model's?)",
                      InputWarning, stacklevel=3)
    model.load_state_dict(fitting, strict=False)


def _is_head(name: str, model: torch.nn.Module) -> bool:
    """Whether weight ``name`` belongs to the last layer (the one sized by the classes)."""
    last = [n for n, _ in model.named_parameters()][-2:]
    return name in last


def train_iter(req: TrainRequest, items: ItemSet | None = None,
               parent: str | None = None) -> Iterator[TrainingUpdate]:
    """Train and save a model, yielding progress; the last update is :class:`ModelSaved`."""
    seed_everything(req.seed)
    device = resolve_device(req.device)
    task, arch, classes, prep, spec, model, train, val, labelled = prepare_training(req, items)
    hyper = task.hyper
    cfg = TrainConfig(
        epochs=req.epochs or hyper.epochs_for(len(train)),
        batch_size=req.batch_size or hyper.batch_size,
        lr=req.lr or hyper.lr, weight_decay=hyper.weight_decay, balance=hyper.balance,
        seed=req.seed, device=str(device), ema_epochs=hyper.ema_epochs,
        lr_floor=hyper.lr_floor,
        amp=default_training_amp(device) if req.amp is None else req.amp,
    )
    done = None
    for update in fit(task, model, train, val, prep, classes, cfg, arch):
        if isinstance(update, TrainingFailed):
            yield update
            return
        if isinstance(update, TrainingDone):
            done = update
        yield update
    config = ModelConfig(
        task=task.name, arch=arch, model_spec=spec, classes=classes, preprocessing=prep,
        channels=req.channels, data_hash=data_hash(labelled.table),
        metrics={"validation": _jsonable(done.val_metrics), "n_train": len(train),
                 "n_val": len(val), "best_epoch": done.best_epoch},
        seed=req.seed, hyperparameters={**asdict(cfg), "data": [str(d) for d in req.data],
                                        "amp_dtype": _amp_dtype_name(device, cfg.amp)},
        history=done.history, parent=parent or req.init,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    out = Path(req.out) if req.out else None
    if out is not None:
        save_model(out, done.model.cpu(), config)
    yield ModelSaved(done.model.cpu().eval(), config, out)


def _amp_dtype_name(device: torch.device, amp: bool | None) -> str | None:
    """The dtype training ran its forward passes in under autocast ("bfloat16"...), or None."""
    dtype = amp_dtype(device) if amp else None
    return None if dtype is None else str(dtype).removeprefix("torch.")


def train(req: TrainRequest, on_update: Callable[[TrainingUpdate], None] | None = None
          ) -> ModelSaved:
    """Run :func:`train_iter` to the end; raise on failure."""
    last = None
    for update in train_iter(req):
        if on_update is not None:
            on_update(update)
        if isinstance(update, TrainingFailed):
            raise CellCuratorError(f"training failed: {update.message}")
        last = update
    assert isinstance(last, ModelSaved)
    return last


def read_for_model(config: ModelConfig, data: list[str] | str, task: Task | None = None,
                   progress: ProgressFn | None = None, every_item: bool = False) -> ItemSet:
    """Read data the way the model's training data were read (``progress`` for readers
    with long passes over a recording, see :class:`~.tasks.base.ReadOptions`).
    ``every_item`` (prediction, curation): no item is filtered out — crops the quality
    filter would drop are kept and marked in a ``qc_flag`` column; evaluation keeps the
    filter."""
    task = task or get_task(config.task)
    paths = [data] if isinstance(data, str | Path) else list(data)
    options = task.read_options_from(config.preprocessing)
    if every_item:
        options.extra = {**dict(options.extra or {}), **ReadOptions.every_item().extra}
    options.progress = progress
    items = task.read_many(paths, options)
    items.meta["read_options"] = options_record(options)
    return items


def options_record(options: ReadOptions) -> dict:
    """How items were read, as recorded in their ``meta["read_options"]`` (JSON-able)."""
    return {"channels": None if options.channels is None else list(options.channels),
            "crop_size": options.crop_size, "extra": dict(options.extra or {})}


#: read options the model's preprocessing applies to any items, and ones that only name
#: labels: they do not change what the model is given
_NOT_READING = frozenset({"norm", "tta", "symmetry", "class_names", "suite2p_labels",
                          QC_KEEP})


def _read_defaults(task: str, extra: dict) -> dict:
    """The readers' defaults of options a read may leave unset."""
    if task == "celltype":
        from napari_cellcurator.core.io.points import POINT_CROP, POINT_INPUT

        # frames with points drop low-quality cells by default, pre-cut crops do not
        return {"point_crop": POINT_CROP, "input_size": POINT_INPUT, "frame_norm": True,
                "qc": "point_crop" in extra}
    if task == "cellness":
        from napari_cellcurator.core.data.roi_images import DEFAULT_PATCH
        from napari_cellcurator.core.data.traces import NEUROPIL_COEF

        return {"patch_size": DEFAULT_PATCH, "neuropil_coef": NEUROPIL_COEF, "context": None,
                "trace_length": None, "n_pcs": 40, "mu": 0.3, "z_thresh": 3.0, "min_area": 12}
    return {}


def _effective_read(task: str, options: ReadOptions, items: ItemSet | None) -> dict:
    """What a read with ``options`` gives, defaults filled in (celltype: the settings the
    reader recorded on ``items``; the crop side they have where no size was asked for)."""
    extra = dict(options.extra or {})
    if task == "mixture":
        from napari_cellcurator.core.io.mixture_readers import SnippetOptions

        return {"channels": options.channels,
                **SnippetOptions.from_extra(extra, options.channels).as_extra()}
    if items is not None:
        extra = {**(items.meta.get("read_settings") or {}), **extra}
    if task == "cellness" and options.crop_size:
        extra.setdefault("patch_size", options.crop_size)
    out = {**_read_defaults(task, extra), **extra, "channels": options.channels}
    side = options.crop_size
    if side is None and items is not None and "image" in items.arrays:
        side = int(items.arrays["image"].shape[-1])
    if task == "celltype" and side is not None:
        out["crop_size"] = int(side)
    return {k: v for k, v in out.items() if k not in _NOT_READING}


def _same_value(a, b) -> bool:
    """Option values equal as the readers take them (``"24"`` and 24, ``"true"`` and True)."""
    def norm(v):
        if isinstance(v, str) and v.strip().lower() in ("true", "false"):
            return v.strip().lower() == "true"
        if isinstance(v, bool) or v is None:
            return v
        try:
            return float(v)
        except (TypeError, ValueError):
            return v if not isinstance(v, tuple) else list(v)
    return norm(a) == norm(b)


def read_mismatch(config: ModelConfig, options_used: ReadOptions | dict | None = None,
                  items: ItemSet | None = None, ignore: tuple[str, ...] = ()) -> str | None:
    """Which read options of items (read with ``options_used``; default: as recorded in
    ``items.meta["read_options"]``) differ from how the model's training data were read,
    in words; None when they agree or when it is not known how the items were read.

    Compared: what changes the model's input (channels, crop size, point crop, quality
    filter, frame normalisation, ROI patch size, context, trace length, neuropil, snippet
    tiling...), each with the reader's default where a read left it unset; not the options
    named in ``ignore`` (e.g. ``qc`` for cells a person placed, all of them items)."""
    if options_used is None and items is not None:
        options_used = items.meta.get("read_options")
    if options_used is None:
        return None
    if isinstance(options_used, dict):
        options_used = ReadOptions(**{k: v for k, v in options_used.items()
                                      if k in ("channels", "crop_size", "extra")})
    task = get_task(config.task)
    want = _effective_read(task.name, task.read_options_from(config.preprocessing), None)
    have = _effective_read(task.name, options_used, items)
    if "crop_size" not in want and task.name == "celltype":
        want["crop_size"] = config.preprocessing.get("input_size")
    differ = [f"{k}={have.get(k)} (model: {want.get(k)})" for k in sorted(set(want) | set(have))
              if k not in ignore and not _same_value(have.get(k), want.get(k))
              and not (k == "crop_size" and (have.get(k) is None or want.get(k) is None))]
    if not differ:
        return None
    return "items were read with " + ", ".join(differ) + ", not as the model's training " \
        "data were"


def model_snippet_options(config: ModelConfig):
    """The :class:`SnippetOptions` a mixture model's data were cut with."""
    from napari_cellcurator.core.io.mixture_readers import SnippetOptions

    options = get_task(config.task).read_options_from(config.preprocessing)
    return SnippetOptions.from_extra(options.extra, options.channels)


def tiling_mismatch(config: ModelConfig, items: ItemSet) -> str | None:
    """Which snippet option (tile, scale, length, stride, t_stride, channel) of mixture
    ``items`` differs from how the model's data were cut, in words; None when they agree
    (or for other tasks, or items whose meta does not say how they were cut)."""
    if config.task != "mixture" or "tile" not in items.meta or "frames" not in items.arrays:
        return None
    opts = model_snippet_options(config)
    frames = items.arrays["frames"]
    side, length = int(frames.shape[-1]), int(frames.shape[1])
    have = {"tile": side, "scale": int(items.meta["tile"]) // max(side, 1), "length": length}
    want = {"tile": opts.tile, "scale": opts.scale, "length": opts.length}
    if "t_stride" in items.meta:  # a movie tiled whole: stride and t_stride set the tiles
        have.update(stride=int(items.meta["stride"]) // max(have["scale"], 1),
                    t_stride=int(items.meta["t_stride"]))
        want.update(stride=opts.stride or opts.tile, t_stride=opts.t_stride or opts.length)
    if "channel" in items.meta:  # recorded where the reader chose a channel of a file
        have["channel"], want["channel"] = items.meta["channel"], opts.channel
    differ = [f"{k}={have[k]} (model: {want[k]})" for k in want if have[k] != want[k]]
    if not differ:
        return None
    return ("snippets were cut with " + ", ".join(differ) + ", not as the model's training "
            "data were")


def warn_input_drift(task: Task, items: ItemSet, prep: dict, where: str | None = None
                     ) -> None:
    """Warn (once, before scoring) when ``items`` look unlike the model's training data
    (:meth:`Task.input_drift`); ``where`` names the data (default: the items' path)."""
    drift = task.input_drift(items, prep)
    if drift is not None:
        where = where or readable(items.meta.get("path") or "data")
        warnings.warn(f"{where}: {drift}", InputWarning, stacklevel=3)


def predict_items(model: torch.nn.Module, config: ModelConfig, items: ItemSet,
                  device: str = "auto", batch_size: int = 256, amp: bool = False,
                  check_drift: bool = True) -> tuple[pd.DataFrame, np.ndarray]:
    """Prediction table (one row per item) and raw scores for an :class:`ItemSet`
    (mixed precision on CUDA when ``amp`` is True). ``check_drift``: warn when the items
    look unlike the training data (:meth:`Task.input_drift`; a caller scoring in chunks
    checks once itself)."""
    task = get_task(config.task)
    problem = tiling_mismatch(config, items)
    if problem is not None:
        raise InputError(items.meta.get("path"), problem,
                         "items read the way the model's data were (read_for_model)")
    if check_drift:
        warn_input_drift(task, items, config.preprocessing)
    dev = resolve_device(device)
    model = model.to(dev).eval()
    if len(items) == 0:  # a plane without ROIs, a frame without points
        scores = task.no_scores(config.classes)
    else:
        logits = predict_logits(task, model, items, config.preprocessing, batch_size, dev,
                                amp=amp)
        scores = task.outputs_to_scores(logits)
    table = task.prediction_table(items.table, scores, config.classes)
    extra = table.drop(columns=["item_id"])
    keep = [c for c in items.table.columns if c not in extra.columns]
    # rows are in item order: join by position, never by a lookup that could reorder them
    return pd.concat([items.table[keep].reset_index(drop=True), extra], axis=1), scores


def predict(model_dir: str, data: list[str] | str, device: str = "auto",
            amp: bool = False, progress: ProgressFn | None = None) -> pd.DataFrame:
    """Predict every item of ``data`` with the model in ``model_dir`` (``progress``: of
    reading, as :func:`read_for_model`)."""
    model, config = load_model(model_dir)
    check_predictor(config, model_dir)
    items = read_for_model(config, data, progress=progress, every_item=True)
    table, _ = predict_items(model, config, items, device, amp=amp)
    return table


def evaluate(model_dir: str, data: list[str] | str, device: str = "auto",
             amp: bool = False, progress: ProgressFn | None = None) -> dict:
    """Metrics of the model in ``model_dir`` on the labelled items of ``data``
    (``progress``: of reading, as :func:`read_for_model`)."""
    model, config = load_model(model_dir)
    check_predictor(config, model_dir)
    task = get_task(config.task)
    items = read_for_model(config, data, task, progress)
    if not items.labelled.any():
        raise InputError(str(data), "has no labelled items to evaluate against")
    labelled = items.subset(np.flatnonzero(items.labelled))
    _, scores = predict_items(model, config, labelled, device, amp=amp)
    metrics = task.metrics(labelled.table, scores, config.classes)
    metrics.update({"task": config.task, "arch": config.arch, "model": str(model_dir)})
    return _jsonable(metrics)
