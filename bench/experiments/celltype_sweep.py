"""Celltype recipe sweep: how far do longer training, larger inputs and wider networks go?

Not part of ``make bench`` (hours on a CPU). Each recipe trains the product's ``celltype``
pipeline (``pipeline.train``) on one shared set with overrides of the task's defaults, in
its own process, several at once; one JSON line per run goes to ``--out``. Made to use a lent
GPU: the default recipe must fit 10 minutes on 2 CPU cores, and this measures what the
data allow when it need not.

    python bench/experiments/celltype_sweep.py --data-root ../shared/data/celltype \
        --out sweep.jsonl --parallel 6 --seeds 0 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: name → (data set, channels, task hyper-parameter overrides, read options, network width)
RECIPES: dict[str, tuple[str, list[int] | None, dict, dict, int | None]] = {
    "chula_default": ("chula_rbc12", None, {}, {}, None),
    "chula_80ep": ("chula_rbc12", None, {"epochs": 80}, {}, None),
    "chula_64px_80ep": ("chula_rbc12", None, {"epochs": 80}, {"input_size": 64}, None),
    "chula_w64_80ep": ("chula_rbc12", None, {"epochs": 80}, {}, 64),
    "chula_64px_w64_80ep": ("chula_rbc12", None, {"epochs": 80}, {"input_size": 64}, 64),
    "chula_40ep": ("chula_rbc12", None, {"epochs": 40}, {}, None),
    "chula_60ep": ("chula_rbc12", None, {"epochs": 60}, {}, None),
    "chula_120ep": ("chula_rbc12", None, {"epochs": 120}, {}, None),
    "chula40_nobalance": ("chula_rbc12", None, {"epochs": 40, "balance": "none"}, {}, None),
    "chula40_weights": ("chula_rbc12", None, {"epochs": 40, "balance": "weights"}, {}, None),
    "chula40_crop48": ("chula_rbc12", None, {"epochs": 40}, {"point_crop": 48}, None),
    "chula40_cellnorm": ("chula_rbc12", None, {"epochs": 40}, {"norm": "cell"}, None),
    "chula40_lr4e3": ("chula_rbc12", None, {"epochs": 40, "lr": 4e-3}, {}, None),
    "chula40_wd5e4": ("chula_rbc12", None, {"epochs": 40, "weight_decay": 5e-4}, {}, None),
    "chula40_bs32": ("chula_rbc12", None, {"epochs": 40, "batch_size": 32}, {}, None),
    "chula20_cellnorm": ("chula_rbc12", None, {}, {"norm": "cell"}, None),
    "chula40_cellnorm_nobalance": ("chula_rbc12", None, {"epochs": 40, "balance": "none"},
                                   {"norm": "cell"}, None),
    "chula80_cellnorm": ("chula_rbc12", None, {"epochs": 80}, {"norm": "cell"}, None),
    "jurkat40_cellnorm": ("jurkat_ifc", [0, 2], {"epochs": 40}, {"norm": "cell"}, None),
    "chula30_cellnorm": ("chula_rbc12", None, {"epochs": 30}, {"norm": "cell"}, None),
    # the 64 px crop at full resolution (stride-2 stem: the same feature-map size as 32 px)
    "chula_64px": ("chula_rbc12", None, {}, {"input_size": 64}, None),
    "jurkat_20ep": ("jurkat_ifc", [0, 2], {"epochs": 20}, {}, None),
    "jurkat_30ep": ("jurkat_ifc", [0, 2], {"epochs": 30}, {}, None),
    "jurkat_default": ("jurkat_ifc", [0, 2], {}, {}, None),
    "jurkat40_nobalance": ("jurkat_ifc", [0, 2], {"epochs": 40, "balance": "none"}, {}, None),
    "jurkat40_bs32": ("jurkat_ifc", [0, 2], {"epochs": 40, "batch_size": 32}, {}, None),
    "jurkat_40ep": ("jurkat_ifc", [0, 2], {"epochs": 40}, {}, None),
    "jurkat_60ep": ("jurkat_ifc", [0, 2], {"epochs": 60}, {}, None),
    "jurkat_120ep": ("jurkat_ifc", [0, 2], {"epochs": 120}, {}, None),
    "jurkat_80ep": ("jurkat_ifc", [0, 2], {"epochs": 80}, {}, None),
    "jurkat_w64_80ep": ("jurkat_ifc", [0, 2], {"epochs": 80}, {}, 64),
    # symmetry-aware augmentation + test-time views over the same symmetries (Jurkat IFC:
    # identity + up-down mirror, so 2 views)
    "jurkat_symauto_tta": ("jurkat_ifc", [0, 2], {}, {"symmetry": "auto", "tta": 8}, None),
}


def run_one(name: str, seed: int, data_root: Path, device: str) -> dict:
    """Train recipe ``name`` once and return its validation metrics and time."""
    import torch

    from napari_cellcurator.core.models import celltype as celltype_models
    from napari_cellcurator.core.pipeline import TrainRequest, train
    from napari_cellcurator.core.tasks import get_task

    torch.set_num_threads(1 if device.startswith("cuda") else 2)
    data, channels, hyper, read, width = RECIPES[name]
    task = get_task("celltype")
    type(task).hyper = dataclasses.replace(task.hyper, **hyper)
    if width is not None:
        init = celltype_models.SmallResNet.__init__

        def wider(self, *args, **kwargs):
            import inspect

            bound = inspect.signature(init).bind(self, *args, **kwargs)
            bound.arguments["width"] = width
            init(*bound.args, **bound.kwargs)

        celltype_models.SmallResNet.__init__ = wider
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        saved = train(TrainRequest(task="celltype", data=[str(data_root / data)],
                                   channels=channels, out=out, seed=seed, device=device,
                                   read_extra=read or None))
    val = saved.config.metrics["validation"]
    last = saved.config.history[-1]  # no epoch chosen on the validation cells
    return {"recipe": name, "seed": seed, "device": device,
            "seconds": round(time.perf_counter() - t0, 1),
            "best_epoch": saved.config.metrics["best_epoch"],
            "accuracy": round(val["accuracy"], 4), "macro_f1": round(val["macro_f1"], 4),
            "balanced_accuracy": round(val["balanced_accuracy"], 4),
            "last_epoch_accuracy": round(last["val_accuracy"], 4),
            "last_epoch_macro_f1": round(last["val_macro_f1"], 4),
            "val_accuracy_by_epoch": [round(h["val_accuracy"], 4) for h in
                                      saved.config.history]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--recipes", nargs="*", default=list(RECIPES))
    p.add_argument("--seeds", nargs="*", type=int, default=[0])
    p.add_argument("--parallel", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--one", nargs=2, metavar=("RECIPE", "SEED"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        print(json.dumps(run_one(a.one[0], int(a.one[1]), a.data_root, a.device)), flush=True)
        return
    jobs = [(r, s) for s in a.seeds for r in a.recipes]
    running: list[subprocess.Popen] = []
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    with a.out.open("a") as sink:
        while jobs or running:
            while jobs and len(running) < a.parallel:
                recipe, seed = jobs.pop(0)
                running.append(subprocess.Popen(
                    [sys.executable, __file__, "--data-root", str(a.data_root), "--out",
                     str(a.out), "--device", a.device, "--one", recipe, str(seed)],
                    stdout=subprocess.PIPE, text=True, env=env))
            time.sleep(1)
            for proc in [q for q in running if q.poll() is not None]:
                running.remove(proc)
                line = (proc.stdout.read().strip().splitlines() or ["{}"])[-1]
                print(line, flush=True)
                sink.write(line + "\n")
                sink.flush()


if __name__ == "__main__":
    main()
