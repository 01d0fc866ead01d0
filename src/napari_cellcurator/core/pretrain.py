"""Self-supervised pretraining of a task's classifier (the API behind ``cellcurator pretrain``).

The classifier itself is the encoder: it is built with ``n_outputs = LATENT_DIM`` and trained
either as the encoder of an autoencoder (:mod:`napari_cellcurator.core.unsupervised`) or with a
SimCLR-style contrastive loss between two augmentations of each item. The result is saved as an
ordinary model folder of the task's default architecture with ``classes = []``;
``cellcurator train --init DIR`` then copies every weight but the output layer (whose shape
differs) and trains on the labels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import torch
import torch.nn.functional as F

from napari_cellcurator.core.errors import CellCuratorError, InputError
from napari_cellcurator.core.models.registry import build_model
from napari_cellcurator.core.tasks import ReadOptions, Task, get_task
from napari_cellcurator.core.training import TrainConfig, TrainingUpdate
from napari_cellcurator.core.unsupervised import (
    LATENT_DIM,
    autoencoder_spec,
    fit_autoencoder,
    input_shapes,
    run_updates,
)

METHODS = ("autoencoder", "contrastive")
TEMPERATURE = 0.2


def pretrain(task: str, data: list[str] | str, out_model_dir: str | Path,
             channels: list[int] | None = None, epochs: int | None = None,
             method: str = "autoencoder", seed: int = 0, device: str = "auto",
             items=None, on_update: Callable[[TrainingUpdate], None] | None = None) -> dict:
    """Pretrain the classifier of ``task`` on unlabelled ``data`` and save it.

    Parameters
    ----------
    task, data, channels
        What to read; labels, if any, are ignored.
    out_model_dir
        Model folder written (``ModelConfig.task/arch`` = the classifier's).
    epochs
        Default: a schedule of about 200 optimisation steps (3–40 epochs).
    method
        ``"autoencoder"`` (reconstruct the inputs from the classifier's output vector) or
        ``"contrastive"`` (SimCLR: agree on two augmentations of an item, differ from others).

    Returns
    -------
    dict
        JSON-able summary: ``model_dir``, ``method``, ``epochs``, ``final_loss``, ``n_items``.
    """
    from napari_cellcurator.core.clustering import default_config
    from napari_cellcurator.core.device import resolve_device, seed_everything
    from napari_cellcurator.core.store.modelio import ModelConfig, save_model

    if method not in METHODS:
        raise CellCuratorError(f"pretraining method must be one of {METHODS}, not {method!r}")
    t = get_task(task)
    if t.kind != "classification":
        raise InputError(str(data), f"pretraining initialises a classifier; the {t.name} "
                         "networks output one proportion, not features to pretrain",
                         "celltype or cellness data (clustering works for every task)")
    seed_everything(seed)
    dev = str(resolve_device(device))
    options = ReadOptions(channels=list(channels) if channels else None)
    if items is None:
        paths = [str(data)] if isinstance(data, str | Path) else [str(d) for d in data]
        items = t.read_many(paths, options)
    if len(items) < 8:
        raise InputError(str(data), f"only {len(items)} items; pretraining needs at least 8")
    prep = t.fit_preprocessing(items, options)
    config = default_config(len(items), epochs, seed, dev)
    arch = t.default_arch
    spec = {**t.model_spec(prep, ["_"] * 2), "n_outputs": LATENT_DIM}
    model, history = _pretrain_model(t, items, prep, config, arch, spec, method, on_update)
    cfg = ModelConfig(
        task=t.name, arch=arch, model_spec=spec, classes=[], preprocessing=prep,
        channels=options.channels,
        metrics={"pretraining": method, "n_items": len(items),
                 "final_loss": history[-1]["train_loss"] if history else None},
        seed=seed, hyperparameters={**asdict(config), "method": method}, history=history,
        created=datetime.now(UTC).isoformat(timespec="seconds"))
    save_model(out_model_dir, model.cpu(), cfg)
    return {"model_dir": str(out_model_dir), "task": t.name, "arch": arch, "method": method,
            "epochs": config.epochs, "n_items": len(items),
            "final_loss": cfg.metrics["final_loss"]}


def _pretrain_model(task: Task, items, prep: dict, config: TrainConfig, arch: str, spec: dict,
                    method: str, on_update) -> tuple[torch.nn.Module, list[dict]]:
    torch.manual_seed(config.seed)
    classifier = build_model(arch, **spec)
    if method == "contrastive":
        done = run_updates(fit_autoencoder(task, classifier, items, None, prep, config,
                                           contrastive_objective()), on_update)
        return done.model, done.history
    ae_arch, ae_spec = autoencoder_spec(task, prep, input_shapes(task, items, prep), arch=arch)
    if ae_arch != "ae_classifier":
        raise CellCuratorError(f"the {arch!r} classifier of task {task.name!r} cannot serve as "
                               "an encoder (no n_outputs); use method='contrastive'")
    ae = build_model(ae_arch, **ae_spec)
    done = run_updates(fit_autoencoder(task, ae, items, None, prep, config), on_update)
    # the autoencoder adopted the classifier's children: names and shapes match one to one
    own = classifier.state_dict()
    state = {k: v for k, v in done.model.state_dict().items() if k in own}
    classifier.load_state_dict(state, strict=True)
    return classifier.eval(), done.history


# ---- SimCLR-style contrastive objective -------------------------------------------------
def contrastive_objective(temperature: float = TEMPERATURE) -> Callable:
    """``objective(model, batch, rng)``: NT-Xent between two stronger augmentations.

    The batch already carries the task's augmentation (flips, 90° rotations, shifts, noise);
    each view adds a random rotation, zoom and per-channel gain/offset so that agreeing on
    both views needs features of the cell, not of its pixels.
    """

    def objective(model, batch, rng):
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        z1 = model(**strong_view(batch, gen))
        z2 = model(**strong_view(batch, gen))
        return nt_xent(z1, z2, temperature)

    return objective


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = TEMPERATURE
            ) -> torch.Tensor:
    """Normalised-temperature cross-entropy of SimCLR (positives: the two views of an item)."""
    z = F.normalize(torch.cat([z1, z2]).reshape(2 * len(z1), -1).float(), dim=1)
    sim = z @ z.T / temperature
    n = len(z1)
    sim.fill_diagonal_(-math.inf)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def strong_view(batch: dict[str, torch.Tensor], gen: torch.Generator) -> dict[str, torch.Tensor]:
    """One random view: images/snippets get rotation + zoom + gain, traces gain + shift."""
    out = {}
    for k, v in batch.items():
        if v.ndim >= 4 and v.shape[-1] == v.shape[-2]:
            out[k] = _spatial_view(v, gen)
        elif v.ndim in (2, 3):
            out[k] = _trace_view(v, gen)
        else:
            out[k] = v
    return out


def _rand(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _spatial_view(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    b = x.shape[0]
    flat = x.reshape(b, -1, x.shape[-2], x.shape[-1]).float()  # frames share one transform
    angle = _rand(b, 0, 2 * math.pi, gen)
    scale = _rand(b, 0.8, 1.0, gen)  # < 1 zooms in: a random-resized-crop of the cell
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    shift = _rand(2 * b, -0.08, 0.08, gen).reshape(b, 2)
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1).to(x.device)
    grid = F.affine_grid(theta, list(flat.shape), align_corners=False)
    view = F.grid_sample(flat, grid, mode="bilinear", padding_mode="reflection",
                         align_corners=False)
    c = view.shape[1] if x.ndim == 4 else 1
    gain = _rand(b * c, 0.7, 1.3, gen).reshape(b, c, 1, 1).to(x.device)
    offset = _rand(b * c, -0.3, 0.3, gen).reshape(b, c, 1, 1).to(x.device)
    if x.ndim == 4:
        view = view * gain + offset
    else:
        view = view * gain[:, :1] + offset[:, :1]
    view = view + 0.1 * torch.randn(view.shape, generator=gen).to(x.device)
    return view.reshape(x.shape).to(x.dtype)


def _trace_view(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    b, t = x.shape[0], x.shape[-1]
    shape = (b,) + (1,) * (x.ndim - 1)
    gain = _rand(b, 0.7, 1.3, gen).reshape(shape).to(x.device)
    shift = int(torch.randint(-t // 10 - 1, t // 10 + 2, (1,), generator=gen))
    noise = 0.1 * torch.randn(x.shape, generator=gen).to(x.device)
    return torch.roll(x, shift, dims=-1) * gain + noise
