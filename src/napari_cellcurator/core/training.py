"""One training loop for every task: ``fit`` is a generator of typed progress updates.

The CLI prints the updates with tqdm, widgets run the generator in a ``thread_worker`` and
plot them, tests iterate it. Closing the generator (``worker.quit()``) cancels training.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.tasks.base import Task


@dataclass
class TrainConfig:
    """Hyper-parameters of one run (defaults come from the task's :class:`Hyper`)."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    balance: str = "sampler"
    seed: int = 0
    device: str = "cpu"
    max_steps_per_epoch: int | None = None
    #: exponential moving average of the weights (and BN statistics) over about this many
    #: epochs, 0 = off; validation, best-epoch choice and the returned model use the average.
    #: Counted in epochs, not steps, so a fine-tune on a few labels (1 step per epoch)
    #: averages its last few steps instead of freezing on its first ones
    ema_epochs: float = 0.0
    #: mixed precision (bf16, or fp16 with loss scaling on older GPUs) where the device has
    #: it (:func:`napari_cellcurator.core.device.amp_dtype`); None: where measured faster
    #: (:func:`~napari_cellcurator.core.device.default_training_amp`: CPUs with native bf16).
    #: Validation and the returned model's scores are computed in float32 either way
    amp: bool | None = None
    #: which weights ``fit`` returns: "best" (the epoch scoring best on ``val``) or "last".
    #: Use "last" when ``val`` is also the set whose scores are reported (``compare``):
    #: picking the epoch on it would report an optimistic, selected score
    keep: str = "best"
    #: the one-cycle schedule anneals the learning rate to this fraction of ``lr`` (0: to
    #: ``lr`` / 250,000, PyTorch's default): with the weight average, an SWA-like end
    lr_floor: float = 0.0

    def __post_init__(self):
        if self.keep not in ("best", "last"):
            raise ValueError(f"keep must be 'best' or 'last', not {self.keep!r}")
        if not 0.0 <= self.lr_floor <= 1.0:
            raise ValueError(f"lr_floor must be within [0, 1], not {self.lr_floor!r}")


#: OneCycleLR's start: ``lr`` / this
_DIV_FACTOR = 25.0


def one_cycle(opt: torch.optim.Optimizer, config: TrainConfig, total_steps: int):
    """The run's schedule: warm up over 15 % of the steps to ``config.lr``, then cosine
    annealing to ``config.lr_floor`` × ``lr`` (PyTorch's default end when 0)."""
    end = {} if config.lr_floor <= 0 else {
        "final_div_factor": 1.0 / (_DIV_FACTOR * config.lr_floor)}
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=total_steps,
                                               pct_start=0.15, div_factor=_DIV_FACTOR, **end)


# ---- typed progress updates (careamics-napari style) -----------------------------------------
@dataclass
class TrainingUpdate:
    """Base of everything ``fit`` yields."""


@dataclass
class EpochStarted(TrainingUpdate):
    epoch: int
    epochs: int


@dataclass
class StepDone(TrainingUpdate):
    epoch: int
    step: int
    steps: int
    loss: float


@dataclass
class EpochDone(TrainingUpdate):
    epoch: int
    epochs: int
    train_loss: float
    val_loss: float | None
    val_metrics: dict
    seconds: float
    is_best: bool


@dataclass
class TrainingDone(TrainingUpdate):
    model: torch.nn.Module
    best_epoch: int
    val_metrics: dict
    history: list[dict] = field(default_factory=list)


@dataclass
class TrainingFailed(TrainingUpdate):
    message: str


def class_weights_for(targets: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse-frequency weights (mean 1 over present classes)."""
    counts = np.bincount(targets, minlength=n_classes).astype(float)
    w = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
    return w * (counts > 0).sum() / w.sum()


def _epoch_order(targets: np.ndarray | None, n: int, balance: str, rng: np.random.Generator,
                 kind: str) -> np.ndarray:
    if kind == "classification" and balance == "sampler" and targets is not None and n:
        # balanced sampling with replacement, softened (sqrt) so rare classes are not
        # repeated hundreds of times per epoch
        counts = np.bincount(targets)
        p = 1.0 / np.sqrt(counts[targets])
        return rng.choice(n, size=n, replace=True, p=p / p.sum())
    return rng.permutation(n)


#: the weight average never spans more than this fraction of all steps: a short run (few
#: epochs) must not carry its early, barely trained weights into the saved model
EMA_MAX_FRACTION = 0.15


def _ema_of(model: torch.nn.Module, epochs: float, steps_per_epoch: int, total_steps: int):
    """An :class:`AveragedModel` keeping an EMA of ``model``'s weights and buffers over about
    ``epochs`` epochs (at most ``EMA_MAX_FRACTION`` of ``total_steps``; decay 1 - 1/horizon),
    or None when ``epochs`` is 0."""
    if not epochs:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    horizon = min(epochs * steps_per_epoch, EMA_MAX_FRACTION * total_steps)
    decay = 1.0 - 1.0 / max(1.0, horizon)
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def iterate_batches(n: int, batch_size: int):
    """Slices of ``range(n)`` in order."""
    for start in range(0, n, batch_size):
        yield np.arange(start, min(n, start + batch_size))


def forward_views(task: Task, model: torch.nn.Module, batch: dict[str, torch.Tensor],
                  prep: dict, tta: bool = True) -> torch.Tensor:
    """float32 logits of one preprocessed batch, averaged over the task's test-time views
    (:meth:`Task.test_time_views`, as the model config asks) unless ``tta`` is False.

    Every prediction path (in-memory and dask batch scoring) calls this, so a model predicts
    the same way wherever it runs."""
    views = task.test_time_views(batch, prep) if tta else [batch]
    if len(views) == 1:
        return model(**views[0]).float()
    return torch.stack([model(**v).float() for v in views]).mean(dim=0)


def predict_logits(task: Task, model: torch.nn.Module, items: ItemSet, prep: dict,
                   batch_size: int = 128, device: str | torch.device = "cpu",
                   tta: bool = True, amp: bool = False) -> torch.Tensor:
    """Logits of every item, batched, under ``inference_mode`` (no random augmentation).

    With ``tta`` the logits are averaged over the task's :meth:`Task.test_time_views`
    (e.g. flips of a crop, as the model config asks); ``tta=False`` uses the batch alone.
    ``amp`` runs the forward in mixed precision where the device supports it (CUDA).
    """
    from napari_cellcurator.core.device import autocast, use_channels_last

    rng = np.random.default_rng(0)
    outs = []
    use_channels_last(model).eval()
    with torch.inference_mode():
        for idx in iterate_batches(len(items), batch_size):
            batch = task.make_batch(items, idx, prep, augment=False, rng=rng)
            batch = {k: v.to(device) for k, v in batch.items()}
            with autocast(device, amp):
                outs.append(forward_views(task, model, batch, prep, tta).cpu())
    if not outs:
        return torch.zeros((0, 1))
    return torch.cat(outs)


def optimisation_step(loss: torch.Tensor, opt: torch.optim.Optimizer, sched, epoch: int,
                      step: int, scaler: torch.amp.GradScaler | None = None
                      ) -> TrainingFailed | None:
    """Back-propagate ``loss`` and step optimiser and schedule; a non-finite loss stops
    training with a :class:`TrainingFailed` instead of silently corrupting the weights.
    With a float16 ``scaler`` the loss is scaled (steps with overflowing gradients are
    skipped by the scaler, as usual)."""
    if not torch.isfinite(loss):
        return TrainingFailed(f"loss became {loss.item()} at epoch {epoch}, step {step}; "
                              "try a lower learning rate")
    opt.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        opt.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    sched.step()
    return None


def fit(task: Task, model: torch.nn.Module, train: ItemSet, val: ItemSet | None, prep: dict,
        classes: list[str], config: TrainConfig, arch: str = "") -> Iterator[TrainingUpdate]:
    """Train ``model`` on labelled ``train`` items; keep the best epoch on ``val``
    (``config.keep == "best"``) or the last one.

    Yields
    ------
    EpochStarted, StepDone, EpochDone, then TrainingDone (best weights loaded) or
    TrainingFailed. Closing the generator stops training between two steps; the caller's
    previous model is untouched because training works on ``model`` only.
    """
    device = torch.device(config.device)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    from napari_cellcurator.core.device import (
        amp_dtype,
        autocast,
        default_training_amp,
        use_channels_last,
    )

    wanted = default_training_amp(device) if config.amp is None else config.amp
    mixed_dtype = amp_dtype(device) if wanted else None
    use_amp = mixed_dtype is not None
    # bf16 keeps float32's exponent range; only float16 needs the loss scaled
    scaler = torch.amp.GradScaler(device.type) if mixed_dtype == torch.float16 else None

    use_channels_last(model.to(device))  # NHWC conv weights: faster steps, same numbers
    y_train = task.targets(train.table, classes)
    weights = None
    if task.kind == "classification" and config.balance == "weights":
        weights = torch.tensor(class_weights_for(y_train, len(classes)), dtype=torch.float32,
                               device=device)
    steps = max(1, math.ceil(len(train) / config.batch_size))
    if config.max_steps_per_epoch:
        steps = min(steps, config.max_steps_per_epoch)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = one_cycle(opt, config, max(2, steps * config.epochs))
    ema = _ema_of(model, config.ema_epochs, steps, steps * config.epochs)
    primary = task.primary_metric()
    best_score, best_state, best_epoch = -math.inf, None, 0
    history: list[dict] = []
    for epoch in range(1, config.epochs + 1):
        yield EpochStarted(epoch, config.epochs)
        t0 = time.perf_counter()
        model.train()
        order = _epoch_order(y_train, len(train), config.balance, rng, task.kind)
        losses = []
        for step in range(steps):
            idx = order[step * config.batch_size:(step + 1) * config.batch_size]
            if len(idx) == 0 or (len(idx) == 1 and step > 0):
                break  # a last batch of one item: batch norm cannot train on it
            batch = task.make_batch(train, idx, prep, augment=True, rng=rng)
            batch = {k: v.to(device) for k, v in batch.items()}
            target = torch.as_tensor(np.array(y_train[idx]), device=device)
            with autocast(device, use_amp):
                outputs = model(**batch)
            loss = task.loss(outputs.float(), target, weights, arch)
            failure = optimisation_step(loss, opt, sched, epoch, step, scaler)
            if failure is not None:
                yield failure
                return
            if ema is not None:
                ema.update_parameters(model)
            losses.append(float(loss.detach()))
            yield StepDone(epoch, step + 1, steps, losses[-1])
        val_loss, val_metrics = None, {}
        scored = model if ema is None else ema.module
        if val is not None and len(val):
            # per-epoch validation without test-time views (cheaper); the final score uses them
            logits = predict_logits(task, scored, val, prep, config.batch_size * 2, device,
                                    tta=False)
            y_val = torch.as_tensor(np.array(task.targets(val.table, classes)))
            val_loss = float(task.loss(logits, y_val, None if weights is None else weights.cpu(),
                                       arch))
            val_metrics = task.metrics(val.table, task.outputs_to_scores(logits), classes)
        score = val_metrics.get(primary, -float(np.mean(losses)) if losses else -math.inf)
        score = -math.inf if score is None or np.isnan(score) else score
        is_best = score >= best_score or config.keep == "last"
        if is_best:
            best_score, best_epoch = score, epoch
            best_state = {k: v.detach().cpu().clone() for k, v in scored.state_dict().items()}
        record = {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else None,
                  "val_loss": val_loss, **{f"val_{k}": v for k, v in val_metrics.items()
                                           if isinstance(v, int | float)}}
        history.append(record)
        yield EpochDone(epoch, config.epochs, record["train_loss"], val_loss, val_metrics,
                        time.perf_counter() - t0, is_best)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    best_metrics = {}
    if val is not None and len(val):
        logits = predict_logits(task, model, val, prep, config.batch_size * 2, device)
        best_metrics = task.metrics(val.table, task.outputs_to_scores(logits), classes)
    yield TrainingDone(model, best_epoch, best_metrics, history)
