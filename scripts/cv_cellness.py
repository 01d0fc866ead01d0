"""Cross-validated cell / not-cell F1 on the Allen ROIs: 3cnet vs twobranch, ± sim pretraining.

    python scripts/cv_cellness.py --data ../shared/data/cellness/allen_croissant/train_rois.json \
        --init-twobranch src/napari_cellcurator/core/pretrained/cellness_twobranch \
        --init-3cnet /tmp/pre_3cnet

5-fold stratified group k-fold (experiments kept on one side). Training uses the task's
default hyper-parameters and no validation split (best epoch = lowest training loss), so the
test fold never steers training.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from napari_cellcurator.core.io.rois import CLASSES
from napari_cellcurator.core.models.registry import build_model
from napari_cellcurator.core.pipeline import _load_compatible
from napari_cellcurator.core.tasks import ReadOptions, get_task
from napari_cellcurator.core.training import TrainConfig, TrainingDone, fit, predict_logits


def run(data: str, inits: dict, folds: int, epochs: int | None, seed: int) -> dict:
    from sklearn.model_selection import StratifiedGroupKFold

    task = get_task("cellness")
    items = task.read_many([data], ReadOptions())
    y = (items.table["label"] == "cell").to_numpy().astype(int)
    groups = items.table["group"].astype(str).to_numpy()
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    results = {}
    for name, (arch, init) in inits.items():
        t0 = time.perf_counter()
        preds = np.zeros(len(items), int)
        for tr, te in cv.split(np.zeros(len(y)), y, groups):
            train, test = items.subset(tr), items.subset(te)
            prep = task.fit_preprocessing(train, ReadOptions())
            model = build_model(arch, **task.model_spec(prep, CLASSES))
            if init:
                _load_compatible(model, init)
            h = task.hyper
            cfg = TrainConfig(epochs=epochs or h.epochs, batch_size=h.batch_size, lr=h.lr,
                              weight_decay=h.weight_decay, balance=h.balance, seed=seed)
            done = [u for u in fit(task, model, train, None, prep, CLASSES, cfg, arch)
                    if isinstance(u, TrainingDone)][0]
            logits = predict_logits(task, done.model, test, prep)
            preds[te] = logits.argmax(1).numpy()
        m = task.metrics(items.table, np.eye(2)[preds], CLASSES)
        results[name] = {k: round(m[k], 3) for k in ("accuracy", "precision", "recall", "f1",
                                                       "macro_f1")}
        results[name]["seconds"] = round(time.perf_counter() - t0, 1)
        print(name, results[name], flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--init-twobranch", default=None)
    ap.add_argument("--init-3cnet", default=None)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=None, help="comma-separated config names")
    args = ap.parse_args()
    torch.set_num_threads(1)
    inits = {"twobranch_scratch": ("twobranch", None),
             "twobranch_pretrained": ("twobranch", args.init_twobranch),
             "3cnet_scratch": ("3cnet", None), "3cnet_pretrained": ("3cnet", args.init_3cnet)}
    inits = {k: v for k, v in inits.items() if not k.endswith("pretrained") or v[1]}
    if args.only:
        inits = {k: v for k, v in inits.items() if k in args.only.split(",")}
    print(json.dumps(run(args.data, inits, args.folds, args.epochs, args.seed), indent=1))


if __name__ == "__main__":
    main()
