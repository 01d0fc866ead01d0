"""Experiment: SGD with Nesterov momentum instead of AdamW for the celltype ResNet.

Small ResNets trained from scratch on small image sets often generalise better with SGD and
momentum than with Adam-type optimisers (Wilson et al. 2017, "The marginal value of adaptive
gradient methods"). The product trains with AdamW (lr 2e-3, weight decay 1e-4). Here only the
optimiser changes: SGD, momentum 0.9 (cycled by the same one-cycle schedule, 0.85–0.95),
Nesterov, peak learning rate ``--lr``, weight decay ``--wd``; everything else is the product's
default recipe (40 epochs, sampler, EMA, learning-rate floor 0.3). Scored on the product's
validation cells: the last epoch (nothing chosen) and the chosen epoch.

    python bench/experiments/sgd.py [--data jurkat|chula] [--seeds 0 1 2] [--lr 0.05] [--wd 5e-4]

Appends one JSON line per run to ``bench/results/sgd.jsonl``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import torch
from records import run_record

REPO = Path(__file__).resolve().parents[2]
DATA = (REPO / ".." / "shared" / "data" / "celltype").resolve()
OUT = REPO / "bench" / "results" / "sgd.jsonl"
SETS = {"jurkat": ("jurkat_ifc", [0, 2]), "chula": ("chula_rbc12", None)}


def sgd_instead_of_adamw(lr: float, wd: float) -> None:
    """``torch.optim.AdamW(params, lr=..., weight_decay=...)`` in the training loop → SGD."""
    def sgd(params, lr=lr, weight_decay=wd, **_):
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True,
                               weight_decay=weight_decay)
    torch.optim.AdamW = sgd


def run(data: str, seed: int, lr: float, wd: float) -> dict:
    from napari_cellcurator.core.pipeline import TrainRequest, train
    from napari_cellcurator.core.tasks import get_task

    folder, channels = SETS[data]
    task = get_task("celltype")  # one-cycle's peak rate is the hyper-parameter's lr
    type(task).hyper = dataclasses.replace(task.hyper, lr=lr, weight_decay=wd)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        saved = train(TrainRequest(task="celltype", data=[str(DATA / folder)],
                                   channels=channels, out=out, seed=seed, device="cpu"))
    return run_record(saved, time.perf_counter() - t0, data=data, optimizer="sgd-nesterov",
                      lr=lr, weight_decay=wd, seed=seed)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="jurkat", choices=list(SETS))
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--wd", type=float, default=5e-4)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    sgd_instead_of_adamw(a.lr, a.wd)
    for seed in a.seeds:
        line = run(a.data, seed, a.lr, a.wd)
        print(json.dumps(line), flush=True)
        with OUT.open("a") as sink:
            sink.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
