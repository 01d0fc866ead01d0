"""CUDA and mixed precision: training and inference really run on a GPU, in bf16 (or fp16
with loss scaling), and agree with float32 on the CPU.

The CUDA tests skip where torch sees no GPU (CI); the CPU tests check bf16 on CPUs that
have it natively (the training default there) and float32 on the others.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_cellcurator.core import device as core_device
from napari_cellcurator.core.device import amp_dtype, autocast
from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.tasks import ReadOptions, get_task
from napari_cellcurator.core.training import (
    EpochDone,
    TrainConfig,
    TrainingDone,
    fit,
    predict_logits,
)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
TASKS = ("celltype", "cellness", "mixture")


def _model_and_items(bench_module, name: str, n: int = 32):
    from napari_cellcurator.core.models.registry import build_model

    cases = bench_module("cases")
    _, items, prep = cases.build_case(name, n)
    task = get_task(name)
    classes = list(items.meta["classes"])
    if name == "celltype":
        # a class-dependent disk (same under the flips, turns and shifts of augmentation):
        # learnable with or without the real Jurkat crops the bench case uses when present
        items.arrays["image"] = _disks_by_class(items.table["label"], classes)
        prep = task.fit_preprocessing(items, ReadOptions())
    torch.manual_seed(0)
    model = build_model(task.default_arch, **task.model_spec(prep, classes))
    return task, model, items, prep, classes


def _disks_by_class(labels, classes: list[str], side: int = 40) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:side, :side] - side / 2
    radius = 4 + 2 * np.array([classes.index(c) for c in labels])
    disks = (np.hypot(yy, xx)[None] < radius[:, None, None]).astype(np.float32)
    noise = rng.uniform(0, 500, size=(len(radius), 3, side, side))
    return (noise + 3000 * disks[:, None]).astype(np.uint16)


def _train(task, model, items: ItemSet, prep, classes, device: str, amp: bool = True,
           epochs: int = 30):
    config = TrainConfig(epochs=epochs, batch_size=16, lr=3e-3, balance="none", device=device,
                         amp=amp)
    losses, done = [], None
    for update in fit(task, model, items, None, prep, classes, config):
        if isinstance(update, EpochDone):
            losses.append(update.train_loss)
        elif isinstance(update, TrainingDone):
            done = update
    assert done is not None, "training did not finish"
    assert all(np.isfinite(losses))
    return done.model, losses


def _assert_learns_like_float32(bench_module, name: str, amp_losses: list[float]) -> None:
    """Mixed-precision training fits the items about as well as float32 training does."""
    task, model, items, prep, classes = _model_and_items(bench_module, name)
    _, fp32_losses = _train(task, model, items, prep, classes, "cuda", amp=False)
    assert amp_losses[-1] < 0.9 * amp_losses[0], f"{name}: AMP loss did not fall: {amp_losses}"
    assert amp_losses[-1] <= 1.25 * fp32_losses[-1] + 0.05, (
        f"{name}: AMP final loss {amp_losses[-1]:.3f} vs float32 {fp32_losses[-1]:.3f}")


def test_cpus_without_native_bf16_keep_float32(monkeypatch):
    monkeypatch.setattr(core_device, "cpu_has_native_bf16", lambda: False)
    assert amp_dtype("cpu") is None
    assert not core_device.default_training_amp("cpu")
    with autocast("cpu"):
        out = torch.ones(4, 4) @ torch.ones(4, 4)
    assert out.dtype == torch.float32


def test_cpus_with_native_bf16_train_in_bf16_by_default(monkeypatch):
    monkeypatch.setattr(core_device, "cpu_has_native_bf16", lambda: True)
    assert amp_dtype("cpu") == torch.bfloat16
    assert core_device.default_training_amp("cpu")
    assert not core_device.default_training_amp("cuda")  # measured slower on an H100
    with autocast("cpu"):
        assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.bfloat16


def test_the_amp_switch_on_the_cpu(bench_module, monkeypatch):
    """Without native bf16 the switch changes nothing; with it, bf16 scores stay close."""
    task, model, items, prep, _ = _model_and_items(bench_module, "celltype", 16)
    model.eval()
    off = predict_logits(task, model, items, prep, 8, "cpu", amp=False)
    with monkeypatch.context() as m:
        m.setattr(core_device, "cpu_has_native_bf16", lambda: False)
        assert torch.equal(predict_logits(task, model, items, prep, 8, "cpu", amp=True), off)
    if core_device.cpu_has_native_bf16():
        on = predict_logits(task, model, items, prep, 8, "cpu", amp=True)
        diff = np.abs(task.outputs_to_scores(on) - task.outputs_to_scores(off)).max()
        assert diff < 0.05


def test_bf16_cpu_training_fits_like_float32(bench_module):
    """Where the CPU has native bf16 (the default there) training fits 32 items as well."""
    if not core_device.cpu_has_native_bf16():
        pytest.skip("this CPU has no native bf16")
    task, model, items, prep, classes = _model_and_items(bench_module, "celltype")
    _, bf16 = _train(task, model, items, prep, classes, "cpu", amp=True, epochs=20)
    task, model, items, prep, classes = _model_and_items(bench_module, "celltype")
    _, fp32 = _train(task, model, items, prep, classes, "cpu", amp=False, epochs=20)
    assert bf16[-1] < 0.9 * bf16[0]
    assert bf16[-1] <= 1.25 * fp32[-1] + 0.05


@needs_cuda
def test_gpu_autocast_dtype_follows_the_compute_capability():
    major, _ = torch.cuda.get_device_capability()
    assert amp_dtype("cuda") == (torch.bfloat16 if major >= 8 else torch.float16)
    with autocast("cuda"):
        out = torch.ones(8, 8, device="cuda") @ torch.ones(8, 8, device="cuda")
    assert out.dtype == amp_dtype("cuda")


@needs_cuda
@pytest.mark.parametrize("name", TASKS)
def test_mixed_precision_training_on_the_gpu_learns_and_matches_cpu_inference(
        bench_module, name):
    """Each task's default model fits 32 items on CUDA under autocast as well as in float32;
    its CUDA AMP predictions match float32 CPU predictions of the same weights."""
    task, model, items, prep, classes = _model_and_items(bench_module, name)
    trained, losses = _train(task, model, items, prep, classes, "cuda")
    _assert_learns_like_float32(bench_module, name, losses)
    assert next(trained.parameters()).device.type == "cuda"
    gpu = task.outputs_to_scores(
        predict_logits(task, trained, items, prep, 16, "cuda", amp=True))
    cpu = task.outputs_to_scores(
        predict_logits(task, trained.cpu().float(), items, prep, 16, "cpu", amp=False))
    assert np.abs(gpu - cpu).max() < 0.05
    same = (gpu.argmax(1) == cpu.argmax(1)) if gpu.ndim == 2 else ((gpu >= .5) == (cpu >= .5))
    assert same.mean() >= 0.9


@needs_cuda
def test_float16_training_scales_the_loss(bench_module, monkeypatch):
    """GPUs without bf16 (compute capability < 8) train in fp16 with a GradScaler."""
    monkeypatch.setattr(core_device, "amp_dtype", lambda device: (
        torch.float16 if torch.device(device).type == "cuda" else None))
    steps = []
    real_scaler = torch.amp.GradScaler

    class CountingScaler(real_scaler):
        def step(self, optimizer, *args, **kwargs):
            steps.append(self.get_scale())
            return super().step(optimizer, *args, **kwargs)

    monkeypatch.setattr(torch.amp, "GradScaler", CountingScaler)
    task, model, items, prep, classes = _model_and_items(bench_module, "celltype")
    _, losses = _train(task, model, items, prep, classes, "cuda")
    assert steps, "the fp16 path did not use a GradScaler"
    _assert_learns_like_float32(bench_module, "celltype", losses)


@needs_cuda
def test_dask_batch_scoring_on_the_gpu_matches_the_cpu(bench_module, tmp_path):
    from napari_cellcurator.core import batch as core_batch

    common = bench_module("common")
    cases = bench_module("cases")
    case, items, prep = cases.build_case("celltype", 64)
    model_dir, model, _ = common.make_model_dir(tmp_path / "m", "celltype", prep, case.classes)
    core_batch._MODEL_CACHE.clear()
    gpu = core_batch.score_items(str(model_dir), items, "cuda", 32, amp=True)
    cpu = core_batch.score_items(str(model_dir), items, "cpu", 32)
    assert gpu.shape == cpu.shape
    assert np.abs(gpu - cpu).max() < 0.05
