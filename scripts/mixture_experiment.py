"""Measure the mixture models on the shared movies (spatially held-out test region).

Usage: python scripts/mixture_experiment.py ARCH [EPOCHS] [OUT_JSON]
Needs bench/mixture_manifests (scripts/make_mixture_manifest.py). One CPU thread.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from napari_cellcurator.core.metrics import proportion_metrics
from napari_cellcurator.core.pipeline import TrainRequest, predict, train

MAN = Path(__file__).resolve().parents[1] / "bench" / "mixture_manifests"


def _scores(pred) -> dict:
    out = {}
    lab = pred[pred["label"].notna()]
    for name, part in (("pure", lab[lab["kind"] == "tile"]),
                       ("composite", lab[lab["kind"] == "composite"]), ("all", lab)):
        y = part["label"].astype(float).to_numpy()
        m = proportion_metrics(y, part["proportion"].to_numpy())
        out[name] = {"A": round(m["A"], 4), "bce": round(m["bce"], 4), "n": int(len(part))}
    pure = lab[lab["kind"] == "tile"]
    out["pure_per_movie_mean"] = {str(k): round(float(v), 4) for k, v in
                                  pure.groupby("label")["proportion"].mean().items()}
    return out


def gabor(out_json: str | None) -> int:
    """The Gabor + linear SVR baseline on the same train / test manifests."""
    from napari_cellcurator.core.gabor import gabor_baseline
    from napari_cellcurator.core.tasks import ReadOptions, get_task

    task = get_task("mixture")
    train_items = task.read_many([MAN / "train.csv"], ReadOptions())
    result = {"arch": "gabor+linear SVR"}
    for name in ("test", "test_histmatched"):
        test_items = task.read_many([MAN / f"{name}.csv"], ReadOptions())
        t = time.perf_counter()
        res = gabor_baseline(train_items, test_items)
        pred = test_items.table.copy()
        pred["proportion"] = res["predictions"]
        result[name] = _scores(pred)
        result[name]["fit_s"] = round(time.perf_counter() - t, 1)
    print(json.dumps(result, indent=1))
    if out_json:
        Path(out_json).write_text(json.dumps(result, indent=1))
    return 0


def main(arch: str, epochs: int | None, out_json: str | None) -> int:
    torch.set_num_threads(1)
    if arch == "gabor":
        return gabor(out_json)
    model_dir = f"/tmp/mixture_{arch}"
    t = time.perf_counter()
    saved = train(TrainRequest(task="mixture", data=[str(MAN / "train.csv")], out=model_dir,
                               arch=arch, epochs=epochs, seed=0))
    result = {"arch": arch, "train_s": round(time.perf_counter() - t, 1),
              "epochs": saved.config.hyperparameters["epochs"],
              "val_A": saved.config.metrics["validation"].get("A"),
              "n_train": saved.config.metrics["n_train"]}
    for name in ("test", "test_histmatched"):
        result[name] = _scores(predict(model_dir, str(MAN / f"{name}.csv")))
    print(json.dumps(result, indent=1))
    if out_json:
        Path(out_json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    a = sys.argv[1:]
    sys.exit(main(a[0], int(a[1]) if len(a) > 1 and a[1] != "-" else None,
                  a[2] if len(a) > 2 else None))
