"""Weight averaging (EMA) in the one training loop: what validation and the saved model use."""

import copy
import dataclasses

import torch

from napari_cellcurator.core.pipeline import TrainRequest, prepare_training
from napari_cellcurator.core.training import StepDone, TrainConfig, TrainingDone, fit


def _fit(jurkat_subset, **config) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(returned model, a copy of the weights being trained right after step 1)."""
    req = TrainRequest(task="celltype", data=[str(jurkat_subset)], arch="resnet",
                       channels=[0, 2], seed=0)
    task, arch, classes, prep, _, model, train, val, _ = prepare_training(req)
    cfg = TrainConfig(epochs=1, batch_size=8, lr=1e-2, seed=0, max_steps_per_epoch=3, **config)
    first_step, done = None, None
    for update in fit(task, model, train, val, prep, classes, cfg, arch):
        if isinstance(update, StepDone) and update.step == 1:
            first_step = copy.deepcopy(model)
        if isinstance(update, TrainingDone):
            done = update
    return done.model, first_step


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.allclose(sa[k].float(), sb[k].float())
                                          for k in sa)


def test_ema_decay_one_keeps_the_first_step_weights(jurkat_subset):
    # decay 1.0: the average is the copy taken after step 1 and never moves, so 3 steps with
    # EMA must return exactly the weights (and BN statistics) seen after step 1
    averaged, one_step = _fit(jurkat_subset, ema_decay=1.0)
    raw, _ = _fit(jurkat_subset)
    assert _same(averaged, one_step)
    assert not _same(raw, one_step)


def test_ema_is_the_celltype_default():
    from napari_cellcurator.core.tasks import get_task

    hyper = get_task("celltype").hyper
    assert 0.9 < hyper.ema_decay < 1.0
    assert dataclasses.replace(hyper).ema_decay == hyper.ema_decay
