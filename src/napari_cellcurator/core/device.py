"""Device choice, mixed precision and CPU thread limits."""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path

import torch

from napari_cellcurator.core.errors import CellCuratorError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; anything else is taken as asked."""
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CellCuratorError("--device cuda asked for, but torch sees no CUDA GPU")
    mps = getattr(torch.backends, "mps", None)
    if name == "mps" and not (mps is not None and mps.is_available()):
        raise CellCuratorError("--device mps asked for, but MPS is not available")
    return torch.device(name)


def limit_cpu_threads(leave_free: int = 1) -> int:
    """Cap torch intra-op threads so a GUI thread keeps a core; returns the cap."""
    n = max(1, (os.cpu_count() or 2) - leave_free)
    torch.set_num_threads(n)
    return n


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch so CPU runs are reproducible."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))  # noqa: NPY002 - for libraries using the global RNG
    torch.manual_seed(seed)


def use_channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """Store 2-D conv weights channels-last (NHWC), in place; returns ``model``.

    oneDNN's NHWC convolution kernels are ~1.5× faster on CPU than NCHW ones. Only the
    weights change layout: inputs stay as given (the first convolution converts them), so
    models that reshape their raw inputs keep working; outputs are numerically unchanged.
    """
    on_mps = any(p.device.type == "mps" for p in model.parameters())  # NHWC there is flaky
    if not on_mps and any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
        model.to(memory_format=torch.channels_last)
    return model


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether the CPU computes bf16 dot products natively (AVX-512 bf16 or AMX, read from
    ``/proc/cpuinfo``; False elsewhere): without them bf16 is emulated and slower."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags") and ":" in line), [])
    native = "avx512_bf16" in flags or "amx_bf16" in flags
    return native and torch.backends.mkldnn.is_available()


def amp_dtype(device: str | torch.device) -> torch.dtype | None:
    """The autocast dtype of mixed precision on ``device``, or None where it stays float32.

    CUDA GPUs with bf16 tensor cores (compute capability 8 and newer: A100, H100, RTX 30xx…)
    get bfloat16, which needs no loss scaling; older CUDA GPUs get float16 (training then
    scales the loss). CPUs with native bf16 (:func:`cpu_has_native_bf16`) get bfloat16;
    other CPUs and MPS keep float32 (emulated or unsupported there).
    """
    device = torch.device(device)
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_native_bf16() else None
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    major, _ = torch.cuda.get_device_capability(device)
    return torch.bfloat16 if major >= 8 else torch.float16


def default_training_amp(device: str | torch.device) -> bool:
    """Whether training uses mixed precision when not told: only where it was measured
    faster. CPUs with native bf16: training steps 1.3–2.2× faster for the three default
    models; default celltype accuracy Jurkat 0.786 vs 0.784, Chula 0.835 vs 0.835 (seed 0,
    docs/performance.md). CUDA: no — on an
    H100 the default models trained 10–15 % slower with it (bench/gpu.py), their steps wait
    on CPU preprocessing."""
    device = torch.device(device)
    return device.type == "cpu" and amp_dtype(device) is not None


def autocast(device: str | torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """Mixed-precision context for forward passes on ``device`` (a no-op where
    :func:`amp_dtype` is None or ``enabled`` is False)."""
    dtype = amp_dtype(device) if enabled else None
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)
