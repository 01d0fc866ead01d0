"""Weight averaging (EMA) in the one training loop: what validation and the saved model use."""

import copy

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


def test_an_endless_average_keeps_the_first_step_weights(jurkat_subset, monkeypatch):
    monkeypatch.setattr("napari_cellcurator.core.training.EMA_MAX_FRACTION", float("inf"))
    # decay ~1: the average is the copy taken after step 1 and never moves, so 3 steps with
    # EMA must return the weights (and BN statistics) seen after step 1
    averaged, one_step = _fit(jurkat_subset, ema_epochs=1e12)
    raw, _ = _fit(jurkat_subset)
    assert _same(averaged, one_step)
    assert not _same(raw, one_step)


def test_ema_is_the_celltype_default():
    from napari_cellcurator.core.tasks import get_task

    hyper = get_task("celltype").hyper
    assert 1 <= hyper.ema_epochs < hyper.epochs


def test_ema_horizon_is_counted_in_epochs():
    from napari_cellcurator.core.training import _ema_of

    model = torch.nn.Linear(2, 2)
    assert _ema_of(model, 0.0, 34, 680) is None
    # decay = 1 - 1/horizon, horizon = min(epochs·steps, 15 % of all steps): 3 epochs of 34
    # steps in 20 epochs ≈ 0.99; 3 epochs of 1 step = 2/3 (a fine-tune on a few labels still
    # follows its weights); 3 epochs of 8 steps in an 8-epoch run: capped at 9.6 steps
    for steps, total, decay in ((34, 680, 1 - 1 / 102), (1, 20, 2 / 3), (8, 64, 1 - 1 / 9.6)):
        ema = _ema_of(model, 3.0, steps, total)
        with torch.no_grad():
            model.weight.fill_(0.0)
            ema.update_parameters(model)
            model.weight.fill_(1.0)
            ema.update_parameters(model)
        assert torch.allclose(ema.module.weight, torch.full((2, 2), 1 - decay))


def test_keep_last_returns_the_final_weights_not_the_best_on_val(jurkat_subset, monkeypatch):
    # compare reports scores on the validation set, so it must not pick the epoch on it:
    # make epoch 1 score best on val, then check "best" returns epoch 1 and "last" epoch 3
    from napari_cellcurator.core.tasks.celltype import CellTypeTask

    scores = iter(())
    real_metrics = CellTypeTask.metrics

    def scripted(self, table, scores_, classes):
        nonlocal scores
        metrics = real_metrics(self, table, scores_, classes)
        return {**metrics, self.primary_metric(): next(scores, metrics[self.primary_metric()])}

    monkeypatch.setattr(CellTypeTask, "metrics", scripted)
    req = TrainRequest(task="celltype", data=[str(jurkat_subset)], arch="resnet",
                       channels=[0, 2], seed=0)
    task, arch, classes, prep, _, _, train, val, _ = prepare_training(req)
    for keep, epoch in (("best", 1), ("last", 3)):
        scores = iter([0.9, 0.1, 0.2])  # epochs 1-3; the final scoring keeps its real value
        model = copy.deepcopy(prepare_training(req)[5])
        cfg = TrainConfig(epochs=3, batch_size=8, lr=1e-2, seed=0, max_steps_per_epoch=2,
                          keep=keep)
        done = [u for u in fit(task, model, train, val, prep, classes, cfg, arch)
                if isinstance(u, TrainingDone)][0]
        assert done.best_epoch == epoch, keep


def test_keep_is_checked():
    import pytest

    with pytest.raises(ValueError, match="keep"):
        TrainConfig(keep="median")


def test_the_schedule_ends_at_the_learning_rate_floor():
    """lr_floor 0.3: warm-up to lr, then annealing to 0.3 × lr (with the weight average, an
    SWA-like end); 0 keeps PyTorch's one-cycle end (lr / 250,000)."""
    import pytest

    from napari_cellcurator.core.training import one_cycle

    for floor, end in ((0.3, 0.3 * 2e-3), (0.0, 0.0)):
        opt = torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), lr=2e-3)
        sched = one_cycle(opt, TrainConfig(lr=2e-3, lr_floor=floor), total_steps=100)
        rates = []
        for _ in range(100):
            opt.step()
            sched.step()
            rates.append(opt.param_groups[0]["lr"])
        assert max(rates) == pytest.approx(2e-3, rel=1e-3)
        assert rates[-1] == pytest.approx(end, rel=1e-2, abs=1e-6)
    with pytest.raises(ValueError, match="lr_floor"):
        TrainConfig(lr_floor=1.5)
