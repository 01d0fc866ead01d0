"""Benchmark: occlusion sensitivity of one 128×128 crop on the default cell-type model.

Run ``./.venv/bin/python bench/occlusion.py``: 16-px patch, stride 8 (225 occluded copies),
``build_model("resnet", in_channels=2, n_outputs=7, input_size=128)`` with random weights,
2 torch threads. Writes ``bench/results/occlusion.json`` and prints it beside the target.
Both the default (incremental) path and plain batched forward passes are timed.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from napari_cellcurator.core.explain import make_score_fn, occlusion_map
from napari_cellcurator.core.explain.occlusion import positions
from napari_cellcurator.core.models.registry import build_model
from napari_cellcurator.core.tasks import get_task

TARGET_S = 1.0
CROP, PATCH, STRIDE, THREADS = 128, 16, 8, 2


def _time(fn, repeats: int) -> tuple[list[float], list[float], np.ndarray]:
    """Wall-clock and process CPU seconds of each call (CPU time is less sensitive to other
    programs sharing the cores; wall ≈ CPU / threads on an idle machine)."""
    times, cpu, out = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return times, cpu, out


def main(repeats: int = 5, plain_repeats: int = 2) -> dict:
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    model = build_model("resnet", in_channels=2, n_outputs=7, input_size=CROP).eval()
    inputs = {"image": torch.randn(1, 2, CROP, CROP)}
    score_fn, _ = make_score_fn(get_task("celltype"), model(**inputs), None)
    n_copies = len(positions(CROP, PATCH, STRIDE)) ** 2

    def run(**kw):
        return occlusion_map(model, inputs, score_fn, patch=PATCH, stride=STRIDE, **kw)

    t0 = time.perf_counter()
    run()  # first call: tracing + oneDNN kernel creation
    first = time.perf_counter() - t0
    load_before = os.getloadavg()[0]
    fast_times, fast_cpu, fast = _time(lambda: run(), repeats)
    plain_times, plain_cpu, plain = _time(lambda: run(batch_size=64, incremental=False),
                                          plain_repeats)
    # one thread: CPU time without OpenMP spin-waits while the other core is taken by others
    torch.set_num_threads(1)
    one_times, one_cpu, _ = _time(lambda: run(), max(2, repeats // 2))
    _, one_plain_cpu, _ = _time(lambda: run(batch_size=64, incremental=False), 1)
    torch.set_num_threads(THREADS)
    result = {
        "seconds_per_crop": round(statistics.median(fast_times), 4),
        "seconds_per_crop_all_runs": [round(t, 4) for t in fast_times],
        "seconds_per_crop_best": round(min(fast_times), 4),
        "cpu_seconds_per_crop": round(statistics.median(fast_cpu), 4),
        "one_thread_seconds_per_crop": round(statistics.median(one_times), 4),
        "one_thread_cpu_seconds_per_crop": round(min(one_cpu), 4),
        "seconds_first_call": round(first, 4),
        "seconds_per_crop_plain_batches": round(statistics.median(plain_times), 4),
        "plain_batches_all_runs": [round(t, 4) for t in plain_times],
        "cpu_seconds_per_crop_plain_batches": round(statistics.median(plain_cpu), 4),
        "one_thread_cpu_seconds_per_crop_plain_batches": round(one_plain_cpu[0], 4),
        "max_abs_diff_incremental_vs_plain": float(np.abs(fast - plain).max()),
        "crop_size": CROP, "patch": PATCH, "stride": STRIDE,
        "occluded_copies": n_copies,
        "forward_passes": {
            "incremental": "1 unoccluded + 1 incremental pass over all copies "
                           "+ 1 plain check pass of 2 copies",
            "plain": 1 + -(-n_copies // 64)},
        "threads": THREADS, "model": "resnet (2 ch, 7 classes, 128 px, random weights)",
        "method": "default: incremental inference (torch.fx), all copies in one batch; "
                  "plain = batched full forwards of 64 copies, inference_mode",
        "target_seconds": TARGET_S,
        "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor(),
                    "load_avg_1min_before": round(load_before, 2),
                    "load_avg_1min_after": round(os.getloadavg()[0], 2),
                    "torch": torch.__version__},
    }
    out = Path(__file__).resolve().parent / "results" / "occlusion.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    res = main()
    print(json.dumps(res, indent=2))
    # wall time depends on what else runs on the cores; 1-thread CPU time does not
    verdict = (f"wall {'meets' if res['seconds_per_crop'] < TARGET_S else 'misses'}, "
               f"1-thread CPU "
               f"{'meets' if res['one_thread_cpu_seconds_per_crop'] < TARGET_S else 'misses'}")
    print(f"occlusion: {res['seconds_per_crop']:.3f} s per 128-px crop, median of "
          f"{len(res['seconds_per_crop_all_runs'])} (best {res['seconds_per_crop_best']:.2f} s, "
          f"CPU {res['cpu_seconds_per_crop']:.2f} s; 1 thread: "
          f"{res['one_thread_seconds_per_crop']:.2f} s, CPU "
          f"{res['one_thread_cpu_seconds_per_crop']:.2f} s; target < {TARGET_S:.0f} s: "
          f"{verdict}); "
          f"plain batches {res['seconds_per_crop_plain_batches']:.2f} s "
          f"(CPU {res['cpu_seconds_per_crop_plain_batches']:.2f} s, 1-thread CPU "
          f"{res['one_thread_cpu_seconds_per_crop_plain_batches']:.2f} s); load avg "
          f"{res['machine']['load_avg_1min_before']} on {res['machine']['cpu_count']} cores")
