"""Does a teacher that sees a stain help a label-free student? (learning with privileged channels)

Not part of ``make bench``. The teacher is the product's default celltype model trained on
all channels (Jurkat: bright field, DNA stain, dark field); the student, the same network on
the label-free channels, learns from the labels and from the teacher's softened
probabilities on the same augmented crops (Hinton et al. 2015; Lopez-Paz et al. 2016).
One JSON line per run goes to ``--out``.

    python bench/experiments/distill.py --data ../shared/data/celltype/jurkat_ifc \
        --keep 0 2 --seeds 0 1 2 --out distill.jsonl
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from napari_cellcurator.core.data.crops import augment_crops, normalise_crops
from napari_cellcurator.core.data.splits import training_split
from napari_cellcurator.core.device import seed_everything
from napari_cellcurator.core.models import build_model
from napari_cellcurator.core.pipeline import TrainRequest, train
from napari_cellcurator.core.tasks import get_task
from napari_cellcurator.core.tasks.base import ReadOptions
from napari_cellcurator.core.tasks.celltype import CellTypeTask
from napari_cellcurator.core.training import TrainConfig, TrainingDone, fit


class StudentTask(CellTypeTask):
    """Celltype task whose training batches carry the teacher's probabilities."""

    def __init__(self, teacher, teacher_prep, keep, temperature, alpha, offline=None):
        self.teacher, self.tprep, self.keep = teacher.eval(), teacher_prep, list(keep)
        self.temperature, self.alpha, self._soft = temperature, alpha, None
        self.offline = offline  # per-item soft targets from un-augmented crops, or None

    def make_batch(self, items, index, prep, augment, rng):
        crops = items.load(index, "image").astype(np.float32)
        if self.offline is not None:
            self._soft = torch.from_numpy(self.offline[index]) if augment else None
            crops = normalise_crops(crops, self.tprep["channel_mean"], self.tprep["channel_std"])
            crops = crops[:, self.keep]
            if augment:
                crops = augment_crops(crops, rng, **self.tprep.get("augment", {}))
            return {"image": torch.from_numpy(np.ascontiguousarray(crops))}
        crops = normalise_crops(crops, self.tprep["channel_mean"], self.tprep["channel_std"])
        self._soft = None
        if augment:
            crops = augment_crops(crops, rng, **self.tprep.get("augment", {}))
            with torch.no_grad():
                logits = self.teacher(image=torch.from_numpy(np.ascontiguousarray(crops)))
                self._soft = torch.softmax(logits.float() / self.temperature, dim=1)
        return {"image": torch.from_numpy(np.ascontiguousarray(crops[:, self.keep]))}

    def loss(self, logits, targets, class_weights=None, arch: str = ""):
        hard = super().loss(logits, targets, class_weights, arch)
        if self._soft is None or self._soft.shape != logits.shape:
            return hard
        t = self.temperature
        kd = F.kl_div(F.log_softmax(logits / t, dim=1), self._soft, reduction="batchmean")
        return (1 - self.alpha) * hard + self.alpha * kd * t * t


def run(data: str, keep: list[int], all_channels: list[int], seed: int, temperature: float,
        alpha: float, teacher_dir: Path, offline: bool = False) -> dict:
    t0 = time.perf_counter()
    if not (teacher_dir / "config.json").exists():
        train(TrainRequest(task="celltype", data=[data], channels=all_channels,
                           out=str(teacher_dir), seed=seed))
    from napari_cellcurator.core.store.modelio import load_model

    teacher, tcfg = load_model(str(teacher_dir))
    t_teacher = time.perf_counter() - t0
    base = get_task("celltype")
    seed_everything(seed)
    items = base.read_many([data], ReadOptions(channels=all_channels))
    labelled = items.subset(np.flatnonzero(items.labelled))
    classes = list(tcfg.classes)
    tr_idx, va_idx = training_split(labelled.table, base.hyper.val_fraction)
    tr, va = labelled.subset(tr_idx), labelled.subset(va_idx)
    tprep = tcfg.preprocessing
    pos = [all_channels.index(c) for c in keep]
    prep = {**tprep, "in_channels": len(keep),
            "channel_mean": [tprep["channel_mean"][i] for i in pos],
            "channel_std": [tprep["channel_std"][i] for i in pos]}
    soft = None
    if offline:
        from napari_cellcurator.core.training import predict_logits

        logits = predict_logits(base, teacher.eval(), tr, tprep, 256, torch.device("cpu"))
        soft = torch.softmax(logits.float() / temperature, dim=1).numpy()
    task = StudentTask(teacher, tprep, pos, temperature, alpha, soft)
    spec = task.model_spec(prep, classes)
    model = build_model("resnet", **spec)
    hyper = base.hyper
    cfg = TrainConfig(epochs=hyper.epochs_for(len(tr)), batch_size=hyper.batch_size,
                      lr=hyper.lr, weight_decay=hyper.weight_decay, balance=hyper.balance,
                      seed=seed, device="cpu", ema_epochs=hyper.ema_epochs)
    t1 = time.perf_counter()
    done = None
    for update in fit(task, model, tr, va, prep, classes, cfg, "resnet"):
        if isinstance(update, TrainingDone):
            done = update
    m = done.val_metrics
    return {"seed": seed, "offline": offline, "T": temperature, "alpha": alpha, "keep": keep,
            "teacher_accuracy": round(tcfg.metrics["validation"]["accuracy"], 4),
            "teacher_seconds": round(t_teacher, 1),
            "student_seconds": round(time.perf_counter() - t1, 1),
            "best_epoch": done.best_epoch, "accuracy": round(m["accuracy"], 4),
            "macro_f1": round(m["macro_f1"], 4),
            "balanced_accuracy": round(m["balanced_accuracy"], 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--keep", nargs="+", type=int, default=[0, 2])
    p.add_argument("--all-channels", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--teachers", type=Path, default=Path(tempfile.gettempdir()) / "teachers")
    p.add_argument("--offline", action="store_true",
                   help="soft targets from the teacher on un-augmented crops, once")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    torch.set_num_threads(2)
    for seed in a.seeds:
        row = run(a.data, a.keep, a.all_channels, seed, a.temperature, a.alpha,
                  a.teachers / f"seed{seed}", a.offline)
        print(json.dumps(row), flush=True)
        with a.out.open("a") as sink:
            sink.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
