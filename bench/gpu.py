"""GPU inference: the inference benchmark on CUDA with AMP, and throughput vs batch size.

Skipped (``{"skipped": "no CUDA device"}``) where torch sees no CUDA GPU. Per task (default
architecture, random BN-calibrated weights): forward-only items/s in float32 and under
autocast (bf16 where the GPU supports it, else fp16) with the accuracy change, end-to-end
items/s through :func:`napari_cellcurator.core.batch.score_items` on ``cuda`` from a zarr store
(with ``amp=True``, i.e. ``--amp``), forward-only AMP items/s for batch sizes
32 … 4096 (until memory runs out), and training items/s through ``fit`` (preprocessing and
augmentation on the CPU included) in float32 and in mixed precision.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import cases
import numpy as np
from common import RESULTS, calibrate_batchnorm, make_model_dir, parse_args, show, write_result

BATCH_SIZES = (32, 128, 512, 1024, 2048, 4096)


def _sync_time(fn) -> float:
    import torch

    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def _forward(model, batches, amp_dtype=None):
    import torch

    outs = []
    with torch.inference_mode(), torch.autocast("cuda", amp_dtype or torch.float16,
                                                enabled=amp_dtype is not None):
        for b in batches:
            outs.append(model(**b).float())
    return torch.cat(outs)


def _gpu_batches(task, items, prep, batch_size: int) -> list[dict]:
    out = []
    for start in range(0, len(items), batch_size):
        idx = np.arange(start, min(len(items), start + batch_size))
        b = task.make_batch(items, idx, prep, False, np.random.default_rng(0))
        out.append({k: v.cuda(non_blocking=True) for k, v in b.items()})
    return out


def _training_items_per_s(name: str, items, prep, classes, amp: bool, steps: int) -> float:
    """Items/s of ``fit`` steps on CUDA after 5 warm-up steps (one epoch of ``steps``)."""
    import torch

    from napari_cellcurator.core.models.registry import build_model
    from napari_cellcurator.core.tasks import get_task
    from napari_cellcurator.core.training import StepDone, TrainConfig, fit

    task = get_task(name)
    model = build_model(task.default_arch, **task.model_spec(prep, classes))
    config = TrainConfig(epochs=1, batch_size=task.hyper.batch_size, device="cuda", amp=amp,
                         balance="none", max_steps_per_epoch=steps)
    warm, t0 = 5, None
    for update in fit(task, model, items, None, prep, classes, config):
        if isinstance(update, StepDone) and update.step == warm:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        if isinstance(update, StepDone) and update.step == update.steps:
            torch.cuda.synchronize()
            return (update.steps - warm) * config.batch_size / (time.perf_counter() - t0)
    raise RuntimeError("training ended before its last step")


def bench_task(name: str, tmp: Path, quick: bool) -> dict:
    import dask.array as da
    import pandas as pd
    import torch
    import zarr

    from napari_cellcurator.core import batch as core_batch
    from napari_cellcurator.core.device import amp_dtype
    from napari_cellcurator.core.io.items import ItemSet
    from napari_cellcurator.core.store.modelio import save_model
    from napari_cellcurator.core.tasks import get_task

    task = get_task(name)
    n = 1024 if quick else 16384
    case, items, prep = cases.build_case(name, n)
    model_dir, model, config = make_model_dir(tmp / f"{name}_model", name, prep, case.classes)
    model = model.cuda()
    batches = _gpu_batches(task, items, prep, 512)
    calibrate_batchnorm(model, batches[0])
    save_model(model_dir, model.cpu(), config)
    model = model.cuda().to(memory_format=torch.channels_last)
    amp = amp_dtype("cuda")  # the dtype the product's --amp uses on this GPU
    _forward(model, batches[:1])
    _forward(model, batches[:1], amp)
    t32 = min(_sync_time(lambda: _forward(model, batches)) for _ in range(2))
    tamp = min(_sync_time(lambda: _forward(model, batches, amp)) for _ in range(2))
    ref = task.outputs_to_scores(_forward(model, batches))
    low = task.outputs_to_scores(_forward(model, batches, amp))
    agree = (ref.argmax(1) == low.argmax(1)) if ref.ndim == 2 else ((ref >= .5) == (low >= .5))
    by_batch = {}
    for bs in BATCH_SIZES[: 3 if quick else None]:
        try:
            bb = _gpu_batches(task, items, prep, bs)
            _forward(model, bb[:1], amp)
            by_batch[bs] = n / _sync_time(lambda bb=bb: _forward(model, bb, amp))
        except torch.OutOfMemoryError:
            by_batch[bs] = None
            break
    store = cases.write_zarr_store(tmp / f"{name}.zarr", case.arrays, 1024)
    root = zarr.open_group(str(store), mode="r")
    lazy = ItemSet(items.table, {k: da.from_zarr(root[k]) for k in root.array_keys()})
    core_batch._MODEL_CACHE.clear()
    t0 = time.perf_counter()
    scores = core_batch.score_items(str(model_dir), lazy, "cuda", 1024, "threads", amp=True)
    pd.DataFrame(task.prediction_table(lazy.table, scores, case.classes)).to_parquet(
        tmp / f"{name}.parquet")
    e2e = n / (time.perf_counter() - t0)
    steps = 15 if quick else 60
    train_rate = {label: _training_items_per_s(name, items, prep, case.classes, mixed, steps)
                  for label, mixed in (("fp32", False), ("amp", True))}
    return {"n_items": n, "amp_dtype": str(amp).replace("torch.", ""),
            "forward_fp32_items_per_s": n / t32, "forward_amp_items_per_s": n / tamp,
            "amp_max_abs_diff": float(np.abs(ref - low).max()),
            "amp_decision_agreement": float(np.mean(agree)),
            "end_to_end_amp_items_per_s": e2e, "ratio_end_to_end_vs_forward_amp": e2e * tamp / n,
            "training_fp32_items_per_s": train_rate["fp32"],
            "training_amp_items_per_s": train_rate["amp"],
            "forward_amp_items_per_s_by_batch_size": by_batch}


def main(quick: bool = False, out: Path | None = None) -> dict:
    import torch

    if not torch.cuda.is_available():
        show("skipped", "no CUDA device")
        write_result("gpu", {"skipped": "no CUDA device"}, out or RESULTS)
        return {"skipped": "no CUDA device"}
    result: dict = {"device": torch.cuda.get_device_name(0), "tasks": {}}
    tmp = Path(tempfile.mkdtemp(prefix="cc_bench_gpu_"))
    try:
        for name in cases.CASES:
            why = cases.task_available(name)
            if why is not None:
                result["tasks"][name] = {"skipped": why}
                continue
            r = bench_task(name, tmp, quick)
            result["tasks"][name] = r
            print(f"== {name}")
            for k, v in r.items():
                show(k, v if not isinstance(v, dict) else
                     ", ".join(f"{b}: {x:,.0f}" if x else f"{b}: OOM" for b, x in v.items()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_result("gpu", result, out or RESULTS)
    return result


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    main(args.quick, args.out)
