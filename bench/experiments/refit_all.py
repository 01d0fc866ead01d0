"""Experiment: after choosing the recipe, should the final model train on every label?

The product holds 20 % of the labelled items out (hash split) to pick the best epoch and
report validation metrics, so the saved model has seen 80 % of the labels. Here the product's
own split of Jurkat (label-free, channels 0, 2) gives a *test* set nobody trains or chooses
on — the cells every README figure is reported on — and the rest is trained on two ways:

- ``split``: as the product does (its inner hash split holds 20 % of the rest out, best epoch
  by validation macro-F1);
- ``all``: every item of the rest trains, the last epoch is kept (nothing to choose on).

    python bench/experiments/refit_all.py [--seeds 0 1 2] [--modes split all]

Appends one JSON line per run to ``bench/results/refit_all_jurkat.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
JURKAT = (REPO / ".." / "shared" / "data" / "celltype" / "jurkat_ifc").resolve()
OUT = REPO / "bench" / "results" / "refit_all_jurkat.jsonl"


def run(seed: int, mode: str) -> dict:
    """Train on the rest of the product's split (``mode``) and score the held-out cells."""
    from napari_cellcurator.core import pipeline
    from napari_cellcurator.core.data.splits import training_split
    from napari_cellcurator.core.pipeline import ModelSaved, TrainRequest, train_iter
    from napari_cellcurator.core.store.modelio import load_model
    from napari_cellcurator.core.tasks import ReadOptions, get_task

    task = get_task("celltype")
    items = task.read_many([str(JURKAT)], ReadOptions(channels=[0, 2]))
    labelled = items.subset(np.flatnonzero(items.labelled))
    rest_idx, test_idx = training_split(labelled.table, task.hyper.val_fraction)
    rest, test = labelled.subset(rest_idx), labelled.subset(test_idx)
    product_split = pipeline.training_split
    if mode == "all":  # no inner validation: every item trains
        pipeline.training_split = lambda table, _fraction: (np.arange(len(table)),
                                                             np.zeros(0, np.int64))
    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as out:
            req = TrainRequest(task="celltype", data=[str(JURKAT)], channels=[0, 2], out=out,
                               seed=seed, device="cpu")
            saved = [u for u in train_iter(req, items=rest) if isinstance(u, ModelSaved)][-1]
            model, config = load_model(out)
    finally:
        pipeline.training_split = product_split
    seconds = time.perf_counter() - t0
    _, scores = pipeline.predict_items(model, config, test, "cpu")
    metrics = task.metrics(test.table, scores, config.classes)
    return {"mode": mode, "seed": seed, "n_train": saved.config.metrics["n_train"],
            "n_val": saved.config.metrics["n_val"], "n_test": len(test),
            "best_epoch": saved.config.metrics["best_epoch"],
            "test_accuracy": round(metrics["accuracy"], 4),
            "test_macro_f1": round(metrics["macro_f1"], 4),
            "test_balanced_accuracy": round(metrics["balanced_accuracy"], 4),
            "seconds": round(seconds, 1), "threads": torch.get_num_threads()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    p.add_argument("--modes", nargs="*", default=["split", "all"])
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    for seed in a.seeds:
        for mode in a.modes:
            line = run(seed, mode)
            print(json.dumps(line), flush=True)
            with OUT.open("a") as sink:
                sink.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
