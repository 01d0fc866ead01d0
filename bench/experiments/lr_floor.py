"""Experiment: keep the learning rate from annealing to zero (an SWA-like end of training).

Jurkat label-free accuracy peaks mid-training (epochs 20–24 of 40, at a high learning rate,
with the weight average) and settles about 0.02 lower as the one-cycle schedule anneals the
rate to ~0 (README). Stochastic weight averaging (Izmailov et al. 2018) keeps the rate up and
averages the weights instead. Here the product's schedule anneals to ``floor`` × the peak rate
(``Hyper.lr_floor``, the celltype default since this measurement: 0.3; ``--floor 0`` is the
schedule before it); the model is the EMA of the weights as always. Scored on the
product's validation cells: the last epoch (nothing chosen) and the chosen epoch.

    python bench/experiments/lr_floor.py --floor 0.3 [--data jurkat|chula] [--seeds 0 1 2]

Appends one JSON line per run to ``bench/results/lr_floor.jsonl``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from records import run_record

REPO = Path(__file__).resolve().parents[2]
DATA = (REPO / ".." / "shared" / "data" / "celltype").resolve()
OUT = REPO / "bench" / "results" / "lr_floor.jsonl"
SETS = {"jurkat": ("jurkat_ifc", [0, 2]), "chula": ("chula_rbc12", None)}


def run(data: str, seed: int, floor: float) -> dict:
    from napari_cellcurator.core.pipeline import TrainRequest, train
    from napari_cellcurator.core.tasks import get_task

    folder, channels = SETS[data]
    task = get_task("celltype")  # the task's hyper-parameters with this floor
    type(task).hyper = dataclasses.replace(task.hyper, lr_floor=floor)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        saved = train(TrainRequest(task="celltype", data=[str(DATA / folder)],
                                   channels=channels, out=out, seed=seed, device="cpu"))
    return run_record(saved, time.perf_counter() - t0, data=data, floor=floor, seed=seed)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--floor", type=float, required=True)
    p.add_argument("--data", default="jurkat", choices=list(SETS))
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    for seed in a.seeds:
        line = run(a.data, seed, a.floor)
        print(json.dumps(line), flush=True)
        with OUT.open("a") as sink:
            sink.write(json.dumps(line) + "\n")
    sys.exit(0)


if __name__ == "__main__":
    main()
