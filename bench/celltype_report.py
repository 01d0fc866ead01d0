"""Cell-type classification report (issue 4): the default model on the shared real data sets.

Trains the celltype task's defaults (``cellcurator train --task celltype``: architecture,
epochs, test-time views) on the validation split the CLI uses (hash split by item / by smear
image) and reports:

- Jurkat label-free (bright field + dark field, channels 0,2): accuracy, macro-F1, per-class
  recall, 7-class balanced accuracy and the 5-class one with G1/S/G2 merged (interphase);
- Jurkat with all channels (0,1,2, the DNA stain included): the ablation;
- Chula RBC-12 (full smears + points, held-out smear images): accuracy, macro-F1, recall.

The model kept is the epoch scoring best on the validation split, which is also the split
reported; the last epoch's validation accuracy and macro-F1 are reported beside it (no choice
made on the reported cells). Training times are wall-clock on this machine (the load average
is recorded with them) and the process's CPU seconds (summed over its threads; less sensitive
to other work running).
``--quick`` trains one epoch of each (a smoke test of the script, not a result).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from common import JURKAT, SHARED_DATA, parse_args, show, write_result

CHULA = SHARED_DATA / "celltype" / "chula_rbc12"
INTERPHASE = ("G1", "S_phase", "G2")  # label-free, these differ only by DNA content
TARGETS = {"jurkat_label_free": {"accuracy": 0.80},
           "chula_rbc12": {"accuracy": 0.92, "macro_f1": 0.85}}


def merged_balanced_accuracy(confusion: list[list[int]], classes: list[str],
                             merge: tuple[str, ...], name: str = "interphase") -> float:
    """Balanced accuracy after merging ``merge`` classes into one (rows = truth)."""
    groups = [name if c in merge else c for c in classes]
    names = list(dict.fromkeys(groups))
    index = np.array([names.index(g) for g in groups])
    cm = np.zeros((len(names), len(names)), dtype=np.int64)
    full = np.asarray(confusion, dtype=np.int64)
    for i in range(len(classes)):
        for j in range(len(classes)):
            cm[index[i], index[j]] += full[i, j]
    support = cm.sum(axis=1)
    recall = np.diag(cm)[support > 0] / support[support > 0]
    return float(recall.mean())


def run(name: str, data: Path, channels: list[int] | None, quick: bool, tmp: Path) -> dict:
    """Train the defaults on ``data`` and summarise the validation metrics."""
    from napari_cellcurator.core.pipeline import TrainRequest, train

    t0, cpu0 = time.perf_counter(), time.process_time()
    saved = train(TrainRequest(task="celltype", data=[str(data)], channels=channels,
                               out=str(tmp / name), epochs=1 if quick else None, device="cpu"))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    cfg = saved.config
    val = cfg.metrics["validation"]
    out = {
        "data": str(data.relative_to(SHARED_DATA.parent)), "channels": channels,
        "arch": cfg.arch, "epochs": cfg.hyperparameters["epochs"],
        "best_epoch": cfg.metrics["best_epoch"], "tta_views": cfg.preprocessing.get("tta", 1),
        "input_size": cfg.preprocessing["input_size"], "n_train": cfg.metrics["n_train"],
        "n_val": cfg.metrics["n_val"], "train_seconds": round(seconds, 1),
        "train_cpu_seconds": round(cpu, 1),  # summed over threads
        "training_precision": cfg.hyperparameters.get("amp_dtype") or "float32",
        "accuracy": val["accuracy"], "macro_f1": val["macro_f1"],
        "balanced_accuracy": val["balanced_accuracy"],
        # macro-F1 above is scikit-learn's (classes in the truth or the predictions: a class
        # predicted but absent from these cells counts 0); this one averages the classes
        # present, as a held-out set with every class would
        "macro_f1_classes_present": float(np.mean(
            [v["f1"] for v in val["per_class"].values() if v["support"] > 0])),
        "last_epoch_accuracy": cfg.history[-1].get("val_accuracy"),
        "last_epoch_macro_f1": cfg.history[-1].get("val_macro_f1"),
        "per_class_recall": {c: v["recall"] for c, v in val["per_class"].items()
                             if v["support"] > 0},
        "per_class_support": {c: v["support"] for c, v in val["per_class"].items()
                              if v["support"] > 0},
    }
    if set(INTERPHASE) <= set(val["classes"]):
        out["balanced_accuracy_5_class"] = merged_balanced_accuracy(
            val["confusion"], val["classes"], INTERPHASE)
    return out


def report(name: str, res: dict) -> None:
    print(f"{name}  ({res['data']}, channels {res['channels']}, {res['epochs']} epochs, "
          f"best {res['best_epoch']}, {res['tta_views']} test-time views)", flush=True)
    goals = TARGETS.get(name, {})
    for key in ("accuracy", "macro_f1", "macro_f1_classes_present", "balanced_accuracy",
                "balanced_accuracy_5_class", "last_epoch_accuracy", "last_epoch_macro_f1"):
        if key in res:
            goal = goals.get(key)
            show(key, res[key], target=f">= {goal}" if goal else "",
                 ok=None if goal is None else res[key] >= goal)
    for cls, rec in res["per_class_recall"].items():
        show(f"  recall {cls} (n={res['per_class_support'][cls]})", rec)
    show("training time", res["train_seconds"], "s", "<= 600", res["train_seconds"] <= 600)


def main(quick: bool = False, out: Path | None = None) -> dict:
    import torch

    runs = {"jurkat_label_free": (JURKAT, [0, 2]), "jurkat_all_channels": (JURKAT, [0, 1, 2]),
            "chula_rbc12": (CHULA, None)}
    results = {"quick": quick, "torch_threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory(prefix="cc_celltype_report_") as tmp:
        for name, (data, channels) in runs.items():
            if not data.is_dir():
                print(f"{name}: {data} missing, skipped", flush=True)
                continue
            results[name] = run(name, data, channels, quick, Path(tmp))
            report(name, results[name])
    kwargs = {} if out is None else {"out": out}
    write_result("celltype_report", results, **kwargs)
    return results


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    main(args.quick, args.out)
