"""Inference throughput per task: end to end from a zarr store vs forward-only vs matmul peak.

End to end = what ``cellcurator predict`` does on a lazy store: open the zarr store as dask
arrays, score it with :func:`napari_cellcurator.core.batch.score_items` (threaded dask: read,
preprocess, forward per batch) and write the prediction table (Parquet). Forward-only = the
same model on the same items already preprocessed into tensors in memory. Both in one run, so
their ratio is meaningful even on a busy machine. Target: end to end >= 70 % of forward-only.

Also reported: the forward's GFLOP/s (FLOPs counted by torch's FlopCounterMode) against the
measured float32 matmul rate, and the forward-only speed of other layouts / precisions
(NCHW, NHWC = channels_last, bf16 autocast where the CPU has bf16 dot products) with the
accuracy each costs (max |Δ probability|, argmax agreement) on BN-calibrated random weights.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import cases
import numpy as np
from common import (
    RESULTS,
    best_time,
    bf16_supported,
    calibrate_batchnorm,
    make_model_dir,
    matmul_peak_gflops,
    parse_args,
    show,
    write_result,
)

TARGET_RATIO = 0.70


def _batches(task, items, prep, batch_size: int) -> list[dict]:
    """Preprocessed model inputs of every batch (tensors in memory)."""
    out = []
    for start in range(0, len(items), batch_size):
        idx = np.arange(start, min(len(items), start + batch_size))
        out.append(task.make_batch(items, idx, prep, False, np.random.default_rng(0)))
    return out


def _forward_all(model, batches: list[dict], bf16: bool = False):
    import torch

    outs = []
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        for b in batches:
            outs.append(model(**b).float())
    return torch.cat(outs)


def _timed_forward(model, batches: list[dict], bf16: bool = False):
    t0 = time.perf_counter()
    logits = _forward_all(model, batches, bf16)
    return time.perf_counter() - t0, logits


def _flops_per_item(model, batch: dict) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    n = len(next(iter(batch.values())))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(**batch)
    return counter.get_total_flops() / n


def _end_to_end(model_dir: Path, store: Path, table, task, classes, batch_size: int,
                out: Path) -> float:
    """Seconds to score the zarr store and write the predictions (model loaded inside)."""
    import dask.array as da

    from napari_cellcurator.core import batch as core_batch
    from napari_cellcurator.core.io.items import ItemSet

    core_batch._MODEL_CACHE.clear()  # model loading is part of end to end
    t0 = time.perf_counter()
    import zarr

    root = zarr.open_group(str(store), mode="r")
    arrays = {k: da.from_zarr(root[k]) for k in root.array_keys()}
    items = ItemSet(table, arrays)
    scores = core_batch.score_items(str(model_dir), items, "cpu", batch_size, "threads")
    task.prediction_table(table, scores, classes).to_parquet(out, index=False)
    return time.perf_counter() - t0


def bench_task(name: str, tmp: Path, quick: bool, seconds: float = 5.0) -> dict:
    """All figures of one task."""
    import pandas as pd
    import torch

    from napari_cellcurator.core.device import use_channels_last
    from napari_cellcurator.core.store.modelio import save_model
    from napari_cellcurator.core.tasks import get_task

    task = get_task(name)
    batch_size = 64 if quick else 256
    # size the run so the forward takes ~`seconds`: probe one batch first
    case, probe_items, prep = cases.build_case(name, batch_size)
    model_dir, model, config = make_model_dir(tmp / f"{name}_model", name, prep, case.classes)
    probe = _batches(task, probe_items, prep, batch_size)
    calibrate_batchnorm(model, probe[0])
    save_model(model_dir, model, config)  # again, with the calibrated BN statistics
    use_channels_last(model)
    t_probe = best_time(lambda: _forward_all(model, probe), repeats=1)
    n_batches = 2 if quick else int(np.clip(seconds / t_probe, 3, 64))
    n = n_batches * batch_size
    case, items, _ = cases.build_case(name, n, seed=1)
    store = cases.write_zarr_store(tmp / f"{name}.zarr", case.arrays, batch_size)
    batches = _batches(task, items, prep, batch_size)
    table = pd.DataFrame({"item_id": items.table["item_id"], "source": "bench", "label": None})

    fwd, precision = {}, {}
    model.to(memory_format=torch.contiguous_format)
    t, ref_logits = _timed_forward(model, batches)
    fwd["fp32_nchw"] = n / t
    ref = task.outputs_to_scores(ref_logits)
    use_channels_last(model)
    fwd["fp32_channels_last"] = n / min(_timed_forward(model, batches)[0] for _ in range(2))
    if bf16_supported():
        _forward_all(model, batches[:1], bf16=True)  # warm the bf16 kernels
        t, low_logits = _timed_forward(model, batches, bf16=True)
        fwd["bf16_channels_last"] = n / t
        precision["bf16"] = _agreement(ref, task.outputs_to_scores(low_logits))
        # probabilities of random weights sit near 1/K; the logit error relative to the
        # logits' spread is the figure that carries over to trained models
        precision["bf16"]["max_abs_logit_diff_over_logit_std"] = float(
            (low_logits - ref_logits).abs().max() / ref_logits.std())
    forward_only = fwd["fp32_channels_last"]  # what the core path runs (fp32, NHWC weights)

    out = tmp / f"{name}_pred.parquet"
    # best of two, like the forward-only figure (each run loads the model and reads the store)
    t_e2e = min(_end_to_end(model_dir, store, table, task, case.classes, batch_size, out)
                for _ in range(2))
    e2e = n / t_e2e
    scores = pd.read_parquet(out)
    e2e_vs_ref = float(np.abs(_score_matrix(scores, task, case.classes) - ref).max())
    flops = _flops_per_item(model, batches[0])
    return {
        "n_items": n, "batch_size": batch_size, "arch": config.arch, "inputs": case.note,
        "end_to_end_items_per_s": e2e,
        "forward_only_items_per_s": forward_only,
        "ratio": e2e / forward_only,
        "gflop_per_item": flops / 1e9,
        "achieved_gflops": flops * forward_only / 1e9,
        "forward_only_variants_items_per_s": fwd,
        "precision_change": precision,
        "end_to_end_max_abs_diff_vs_forward": e2e_vs_ref,
    }


def _score_matrix(pred, task, classes) -> np.ndarray:
    if task.kind == "classification":
        return pred[[f"prob_{c}" for c in classes]].to_numpy()
    return pred["proportion"].to_numpy()


def _agreement(ref: np.ndarray, low: np.ndarray) -> dict:
    """How much a lower precision changes scores: max |Δ| and agreement of the decision."""
    if ref.ndim == 2:
        agree = float((ref.argmax(1) == low.argmax(1)).mean())
    else:
        agree = float(((ref >= 0.5) == (low >= 0.5)).mean())
    return {"max_abs_diff": float(np.abs(ref - low).max()), "decision_agreement": agree}


def main(quick: bool = False, out: Path | None = None) -> dict:
    import torch

    print(f"torch threads: {torch.get_num_threads()}", flush=True)
    peak = matmul_peak_gflops(1024 if quick else 2048, 2 if quick else 5)
    show("float32 matmul peak", peak, "GFLOP/s")
    results: dict = {"matmul_peak_gflops": peak, "target_ratio": TARGET_RATIO, "tasks": {}}
    tmp = Path(tempfile.mkdtemp(prefix="cc_bench_inf_"))
    try:
        for name in cases.CASES:
            why = cases.task_available(name)
            print(f"== {name}", flush=True)
            if why is not None:
                results["tasks"][name] = {"skipped": why}
                show("skipped", why)
                continue
            r = bench_task(name, tmp, quick)
            r["matmul_peak_gflops"] = peak
            results["tasks"][name] = r
            _print_task(r, peak)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_result("inference", results, out or RESULTS)
    return results


def _print_task(r: dict, peak: float) -> None:
    show("end to end (zarr → parquet)", r["end_to_end_items_per_s"], "items/s")
    show("forward only (fp32, NHWC)", r["forward_only_items_per_s"], "items/s")
    show("ratio end to end / forward", r["ratio"], "", f">= {TARGET_RATIO:.2f}",
         r["ratio"] >= TARGET_RATIO)
    show("forward GFLOP/s (of matmul peak)", r["achieved_gflops"], "GFLOP/s",
         f"{peak:,.0f} peak")
    for k, v in r["forward_only_variants_items_per_s"].items():
        show(f"  forward {k}", v, "items/s")
    for k, v in r["precision_change"].items():
        show(f"  {k}: max |Δp|, decision agreement",
             f"{v['max_abs_diff']:.2g}, {v['decision_agreement']:.4f}")


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    main(args.quick, args.out)
