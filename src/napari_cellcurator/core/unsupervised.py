"""Cold start without labels: autoencoder training on unlabelled items and latent features.

The autoencoder is trained by :func:`fit_autoencoder`, a generator yielding the same typed
updates as :func:`napari_cellcurator.core.training.fit` (EpochStarted, StepDone, EpochDone,
TrainingDone / TrainingFailed), so the CLI's progress printing and the widgets' workers handle
both. Its encoder is, by default, the task's own classifier built with ``n_outputs =
latent_dim``: the features it learns are the ones a later classifier starts from.

Clustering lives in :mod:`napari_cellcurator.core.clustering`, self-supervised pretraining of a
classifier in :mod:`napari_cellcurator.core.pretrain`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch

from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.models.autoencoder import AUTOENCODER_FOR_TASK, reconstruction_loss
from napari_cellcurator.core.models.registry import build_model
from napari_cellcurator.core.tasks.base import Task
from napari_cellcurator.core.training import (
    EpochDone,
    EpochStarted,
    StepDone,
    TrainConfig,
    TrainingDone,
    TrainingFailed,
    TrainingUpdate,
    iterate_batches,
    optimisation_step,
)

#: latent size of the autoencoders (also the projection size of contrastive pretraining)
LATENT_DIM = 32

#: (model, batch, rng) -> loss
Objective = Callable[[torch.nn.Module, dict, np.random.Generator], torch.Tensor]


def input_shapes(task: Task, items: ItemSet, prep: dict) -> dict[str, tuple[int, ...]]:
    """Per-item shape of every model input, as the task's ``make_batch`` produces it."""
    batch = task.make_batch(items, np.arange(min(2, len(items))), prep, augment=False,
                            rng=np.random.default_rng(0))
    return {k: tuple(int(s) for s in v.shape[1:]) for k, v in batch.items()}


def autoencoder_spec(task: Task, prep: dict, shapes: dict, latent_dim: int = LATENT_DIM,
                     arch: str | None = None) -> tuple[str, dict]:
    """Architecture name and spec of the autoencoder for ``task``.

    The task's classifier (``arch`` or its default) becomes the encoder when it is a
    classifier with an ``n_outputs`` (a mixture CNN has one output whatever it is given);
    otherwise the task's own-encoder autoencoder is used.
    """
    arch = arch or task.default_arch
    base_spec = task.model_spec(prep, ["_"] * 2)
    shapes = {k: list(v) for k, v in shapes.items()}
    if task.kind == "classification" and "n_outputs" in base_spec:
        return "ae_classifier", {"shapes": shapes, "base_arch": arch, "base_spec": base_spec,
                                 "latent_dim": latent_dim}
    return AUTOENCODER_FOR_TASK[task.name], {"shapes": shapes, "latent_dim": latent_dim}


def reconstruction_objective(task: Task, items: ItemSet, prep: dict) -> Callable:
    """Objective: rebuild the (augmented) inputs from the latent vector."""

    def objective(model, batch, rng):
        return reconstruction_loss(model(**batch), batch)

    return objective


def fit_autoencoder(task: Task, model: torch.nn.Module, train: ItemSet, val: ItemSet | None,
                    prep: dict, config: TrainConfig, objective: Objective | None = None
                    ) -> Iterator[TrainingUpdate]:
    """Train ``model`` without labels; keep the epoch with the lowest validation loss.

    Parameters
    ----------
    task, train, val, prep
        Items are turned into batches by ``task.make_batch`` (with the task's augmentation).
        Labels are never read.
    model
        An autoencoder (``model(**batch)`` → reconstructions) or any module ``objective`` can
        score.
    config
        Epochs, batch size, learning rate... (``balance`` is ignored: there are no classes).
    objective
        ``objective(model, batch, rng) -> loss``; default: reconstruction MSE.

    Yields
    ------
    EpochStarted, StepDone, EpochDone (``val_metrics = {"loss": ...}``), then TrainingDone or
    TrainingFailed, like :func:`napari_cellcurator.core.training.fit`.
    """
    objective = objective or reconstruction_objective(task, train, prep)
    device = torch.device(config.device)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    model.to(device)
    n = len(train)
    steps = max(1, n // config.batch_size) if n >= config.batch_size else 1
    if config.max_steps_per_epoch:
        steps = min(steps, config.max_steps_per_epoch)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=config.lr, total_steps=max(2, steps * config.epochs), pct_start=0.15)
    best = (math.inf, None, 0)
    history: list[dict] = []
    for epoch in range(1, config.epochs + 1):
        yield EpochStarted(epoch, config.epochs)
        t0 = time.perf_counter()
        model.train()
        order = rng.permutation(n)
        losses = []
        for step in range(steps):
            # full batches only (BatchNorm and contrastive losses dislike a batch of 1)
            idx = order[step * config.batch_size:(step + 1) * config.batch_size]
            batch = _to(task.make_batch(train, idx, prep, augment=True, rng=rng), device)
            loss = objective(model, batch, rng)
            failure = optimisation_step(loss, opt, sched, epoch, step)
            if failure is not None:
                yield failure
                return
            losses.append(float(loss.detach()))
            yield StepDone(epoch, step + 1, steps, losses[-1])
        train_loss = float(np.mean(losses))
        val_loss = evaluate_objective(task, model, val, prep, objective, config) \
            if val is not None and len(val) else None
        score = val_loss if val_loss is not None else train_loss
        is_best = score <= best[0]
        if is_best:
            best = (score, copy.deepcopy({k: v.detach().cpu()
                                          for k, v in model.state_dict().items()}), epoch)
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
        yield EpochDone(epoch, config.epochs, train_loss, val_loss,
                        {} if val_loss is None else {"loss": val_loss},
                        time.perf_counter() - t0, is_best)
    if best[1] is not None:
        model.load_state_dict(best[1])
    model.eval()
    yield TrainingDone(model, best[2], {} if best[0] is math.inf else {"loss": best[0]}, history)


def evaluate_objective(task: Task, model: torch.nn.Module, items: ItemSet, prep: dict,
                       objective: Objective, config: TrainConfig) -> float:
    """Mean objective over ``items`` in eval mode, without augmentation (fixed rng)."""
    rng = np.random.default_rng(12345)
    device = torch.device(config.device)
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for idx in iterate_batches(len(items), config.batch_size):
            batch = _to(task.make_batch(items, idx, prep, augment=False, rng=rng), device)
            total += float(objective(model, batch, rng)) * len(idx)
            count += len(idx)
    return total / max(count, 1)


def run_updates(updates: Iterator[TrainingUpdate],
                on_update: Callable[[TrainingUpdate], None] | None = None) -> TrainingDone:
    """Drive a training generator to its end; raise on failure."""
    from napari_cellcurator.core.errors import CellCuratorError

    done = None
    for update in updates:
        if on_update is not None:
            on_update(update)
        if isinstance(update, TrainingFailed):
            raise CellCuratorError(f"training failed: {update.message}")
        if isinstance(update, TrainingDone):
            done = update
    assert done is not None
    return done


def train_autoencoder(task: Task, items: ItemSet, prep: dict, config: TrainConfig,
                      latent_dim: int = LATENT_DIM, arch: str | None = None,
                      on_update: Callable[[TrainingUpdate], None] | None = None):
    """Build and train the task's autoencoder on all ``items`` (labels ignored).

    Returns
    -------
    model, ae_arch, ae_spec, done
        The trained autoencoder (eval mode), its registry name and spec, and the final update.
    """
    ae_arch, ae_spec = autoencoder_spec(task, prep, input_shapes(task, items, prep),
                                        latent_dim, arch)
    torch.manual_seed(config.seed)
    model = build_model(ae_arch, **ae_spec)
    done = run_updates(fit_autoencoder(task, model, items, None, prep, config), on_update)
    return done.model, ae_arch, ae_spec, done


def encode_items(task: Task, model: torch.nn.Module, items: ItemSet, prep: dict,
                 batch_size: int = 128, tta: bool = True, device: str = "cpu") -> np.ndarray:
    """Latent features (N, D) of every item.

    With ``tta``, features are averaged over the four 90° rotations of the spatial inputs:
    cells have no preferred orientation, and raw latent vectors do, which would make clusters
    of orientations rather than of cell states.
    """
    encode = getattr(model, "encode", None) or model
    rng = np.random.default_rng(0)
    model.eval().to(device)
    out = []
    with torch.inference_mode():
        for idx in iterate_batches(len(items), batch_size):
            batch = _to(task.make_batch(items, idx, prep, augment=False, rng=rng), device)
            views = range(4) if tta else range(1)
            feats = [encode(**_rot90(batch, k)).float() for k in views]
            out.append(torch.stack(feats).mean(0).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 1), dtype=np.float32)


def _rot90(batch: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    if k == 0:
        return batch
    # rotate square spatial inputs (images, snippets); leave traces alone
    return {n: torch.rot90(v, k, dims=(-2, -1)) if v.ndim >= 4 and v.shape[-1] == v.shape[-2]
            else v for n, v in batch.items()}


def _to(batch: dict[str, torch.Tensor], device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}
