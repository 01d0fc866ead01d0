"""Pretrain a cellness model on simulated recordings and save it inside the package.

    python scripts/pretrain_cellness.py --recordings 40 --epochs 15
    python scripts/pretrain_cellness.py --arch 3cnet --out /tmp/pre_3cnet   # for comparisons

Simulated candidates come out of the PCA/ICA path and are labelled by overlap with the true
somata (see core/data/simulate_calcium.py). Half the recordings keep raw traces (like Allen
JSON), half are neuropil-corrected (like Suite2p), so the init fits both.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from napari_cellcurator.core.data.simulate_calcium import simulate_candidates
from napari_cellcurator.core.io.items import ItemSet, concat_itemsets
from napari_cellcurator.core.io.rois import CLASSES, roiset_to_items
from napari_cellcurator.core.models.registry import build_model
from napari_cellcurator.core.store.modelio import ModelConfig, save_model
from napari_cellcurator.core.tasks import ReadOptions, get_task
from napari_cellcurator.core.training import TrainConfig, TrainingDone, fit

PACKAGE_OUT = (Path(__file__).resolve().parents[1] / "src" / "napari_cellcurator" / "core"
               / "pretrained")


def simulated_items(n: int, first_seed: int, cache: Path | None) -> ItemSet:
    """Items of ``n`` simulated recordings (cached as .npz per seed when ``cache`` is set)."""
    sets = []
    for seed in range(first_seed, first_seed + n):
        f = cache / f"sim_{seed}.npz" if cache else None
        if f is not None and f.is_file():
            z = np.load(f, allow_pickle=False)  # our own cache: numeric arrays only
            items = ItemSet(_table(z, seed), {"image": z["image"], "trace": z["trace"]})
        else:
            _, rois = simulate_candidates(seed)
            if not rois.footprints:
                continue
            coef = 0.7 if seed % 2 else 0.0  # half raw (Allen-like), half corrected
            items = roiset_to_items(rois, {"neuropil_coef": coef})
            if f is not None:
                cache.mkdir(parents=True, exist_ok=True)
                np.savez(f, image=items.arrays["image"], trace=items.arrays["trace"],
                         label=(items.table["label"] == "cell").to_numpy())
        items.meta = {}
        sets.append(items)
        print(f"seed {seed}: {len(items)} candidates", flush=True)
    return concat_itemsets(sets)


def _table(z, seed):
    import pandas as pd

    n = len(z["label"])
    return pd.DataFrame({"item_id": [f"sim{seed}:{i}" for i in range(n)], "source": f"sim{seed}",
                         "label": np.where(z["label"], "cell", "not_cell"), "group": f"sim{seed}",
                         "roi_index": np.arange(n)})


def pretrain(arch: str, items: ItemSet, epochs: int, seed: int = 0, lr: float = 2e-3):
    """Train ``arch`` on simulated items (last 15% of recordings as validation)."""
    task = get_task("cellness")
    groups = items.table["group"].to_numpy()
    uniq = list(dict.fromkeys(groups))
    val_groups = set(uniq[-max(1, len(uniq) // 7):])
    val_mask = np.isin(groups, list(val_groups))
    train, val = items.subset(np.flatnonzero(~val_mask)), items.subset(np.flatnonzero(val_mask))
    prep = task.fit_preprocessing(train, ReadOptions())
    spec = task.model_spec(prep, CLASSES)
    model = build_model(arch, **spec)
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=lr, weight_decay=1e-3, seed=seed)
    done = None
    for update in fit(task, model, train, val, prep, CLASSES, cfg, arch):
        if isinstance(update, TrainingDone):
            done = update
        elif hasattr(update, "val_metrics") and hasattr(update, "train_loss"):
            m = update.val_metrics
            print(f"epoch {update.epoch}: loss {update.train_loss:.3f} val acc "
                  f"{m.get('accuracy', 0):.3f} f1 {m.get('f1', 0):.3f}", flush=True)
    config = ModelConfig(
        task="cellness", arch=arch, model_spec=spec, classes=list(CLASSES), preprocessing=prep,
        metrics={"simulated_validation": {k: v for k, v in done.val_metrics.items()
                                          if isinstance(v, int | float)},
                 "n_train": len(train), "n_val": len(val)},
        seed=seed, hyperparameters={"epochs": epochs, "lr": lr, "data": "simulated"},
        history=done.history, created=datetime.now(UTC).isoformat(timespec="seconds"))
    return done.model, config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--arch", default="twobranch")
    ap.add_argument("--recordings", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=1000, help="first simulation seed")
    ap.add_argument("--cache", type=Path, default=None, help="folder caching simulations")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    items = simulated_items(args.recordings, args.seed, args.cache)
    print(f"{len(items)} candidates, {int((items.table.label == 'cell').sum())} cells, "
          f"simulated in {time.perf_counter() - t0:.0f} s", flush=True)
    model, config = pretrain(args.arch, items, args.epochs)
    out = args.out or PACKAGE_OUT / f"cellness_{args.arch}"
    save_model(out, model, config)
    print(f"saved {out} in {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
