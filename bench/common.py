"""Shared helpers of the benchmarks: machine facts, timing, RSS, model folders, JSON results.

Run directly (``make bench`` does) it prints the machine facts every result file also carries
and writes ``bench/results/machine.json``.

Every benchmark measures ratios within one run (end to end vs forward-only on the same machine,
at the same moment), so a busy machine makes the absolute numbers pessimistic but keeps the
ratios meaningful. The load average at the start of each benchmark is recorded for that reason.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()
JURKAT = SHARED_DATA / "celltype" / "jurkat_ifc"

#: ISA flags that matter for torch CPU kernels (from /proc/cpuinfo)
_ISA = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
        "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8")


# ---- machine ---------------------------------------------------------------------------------
def cpu_model_and_flags() -> tuple[str, list[str]]:
    """CPU model name and the ISA flags of :data:`_ISA` it has (Linux; empty elsewhere)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, []
    for line in text.splitlines():
        if line.startswith("model name") and ":" in line:
            model = line.split(":", 1)[1].strip()
        elif line.startswith("flags") and ":" in line:
            flags = set(line.split(":", 1)[1].split())
    return model, [f for f in _ISA if f in flags]


def machine_info() -> dict:
    """Cores, torch threads, CPU model, ISA flags, torch build and CUDA device, load average."""
    import torch

    model, flags = cpu_model_and_flags()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info = {
        "cpu_model": model,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "torch_cpu_capability": getattr(torch.backends.cpu, "get_cpu_capability", lambda: "?")(),
        "isa_flags": flags,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def bf16_supported() -> bool:
    """Whether this CPU has native bf16 dot products (else bf16 autocast is emulated, slow)."""
    import torch

    flags = cpu_model_and_flags()[1]
    fast = "avx512_bf16" in flags or "amx_bf16" in flags
    return fast and torch.backends.mkldnn.is_available()


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Measured float32 matmul rate of this machine (GFLOP/s, best of ``repeats``)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    best = best_time(lambda: torch.mm(a, b), repeats)
    return 2 * n**3 / best / 1e9


# ---- timing / memory -------------------------------------------------------------------------
def best_time(fn: Callable[[], object], repeats: int = 3, warmup: int = 1) -> float:
    """Best wall time in seconds of ``fn()`` over ``repeats`` runs (after ``warmup`` runs)."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def current_rss_mb() -> float:
    """Current resident set size of this process, in MB."""
    import psutil

    return psutil.Process().memory_info().rss / 1e6


def run_child(args: list[str], timeout: float = 600) -> dict:
    """Run ``python args...`` in a fresh process; its last stdout line is JSON, returned as a dict.

    Each memory case runs in its own process so its peak RSS is its own, not the parent's.
    """
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=str(REPO))
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- models ----------------------------------------------------------------------------------
def make_model_dir(out: Path, task_name: str, prep: dict, classes: list[str],
                   arch: str | None = None, spec_extra: dict | None = None, seed: int = 0):
    """Build ``arch`` (the task's default) with random weights and save it as a model folder.

    Returns ``(model_dir, model, config)``.
    """
    import torch

    from napari_cellcurator.core.models.registry import build_model
    from napari_cellcurator.core.store.modelio import ModelConfig, save_model
    from napari_cellcurator.core.tasks import get_task

    task = get_task(task_name)
    arch = arch or task.default_arch
    spec = {**task.model_spec(prep, classes), **(spec_extra or {})}
    torch.manual_seed(seed)
    model = build_model(arch, **spec).eval()
    config = ModelConfig(task=task_name, arch=arch, model_spec=spec, classes=list(classes),
                         preprocessing=prep, seed=seed)
    save_model(out, model, config)
    return Path(out), model, config


def calibrate_batchnorm(model, batch: dict, steps: int = 3) -> None:
    """Give BatchNorm layers running statistics of real-looking inputs (random weights would
    otherwise produce near-constant logits, which hides precision errors)."""
    import torch

    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(**batch)
    model.eval()


# ---- CLI and results -------------------------------------------------------------------------
def parse_args(description: str) -> argparse.Namespace:
    """``--quick`` (smallest configuration, for the smoke test) and ``--out`` (results folder)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="smallest configuration (smoke test)")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder of the JSON results")
    return p.parse_args()


def show(label: str, value, unit: str = "", target: str = "", ok: bool | None = None) -> None:
    """Print one figure beside its target."""
    val = f"{value:,.3g}" if isinstance(value, float) else str(value)
    mark = "" if ok is None else ("  [OK]" if ok else "  [MISSED]")
    tgt = f"   target {target}" if target else ""
    print(f"  {label:<44} {val:>12} {unit:<10}{tgt}{mark}", flush=True)


def write_result(name: str, data: dict, out: Path = RESULTS) -> Path:
    """Write ``<out>/<name>.json`` with the figures plus machine facts and a time stamp."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {**data, "machine": machine_info(),
               "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    path = out / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    print(f"  -> {path.relative_to(REPO) if path.is_relative_to(REPO) else path}", flush=True)
    return path


def main() -> dict:
    args = parse_args("Machine facts recorded with every benchmark result.")
    info = machine_info()
    for k, v in info.items():
        show(k, ", ".join(v) if isinstance(v, list) else v)
    write_result("machine", {}, args.out)
    return info


if __name__ == "__main__":
    main()
