"""Experiment: does the active-learning ratio depend on the features the head sees?

Same protocol, data, split, seed sets, head and orders as ``bench/active_learning.py``; only the
fixed features change. Instead of the random-weight CNN, the product's own self-supervised
encoder: ``cellcurator pretrain`` (``core.pretrain.pretrain``, autoencoder or SimCLR-style
contrastive, default schedule) on every item's image — no label is read — and the input of its
last linear layer (``core.embedding.extract_features``) as the features, standardised. This is
the representation a user who pretrains before curating starts from.

    python bench/experiments/al_features.py [jurkat|chula] [--method autoencoder|contrastive]

Appends one JSON line per run to ``bench/results/al_features.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))
import active_learning as al  # noqa: E402


def encoder_features(items, method: str, seed: int = 0) -> np.ndarray:
    """Standardised penultimate features of an encoder pretrained on ``items`` (no labels)."""
    from napari_cellcurator.core.embedding import extract_features
    from napari_cellcurator.core.pretrain import pretrain
    from napari_cellcurator.core.store.modelio import load_model

    with tempfile.TemporaryDirectory() as tmp:
        pretrain("celltype", [], Path(tmp) / "encoder", method=method, seed=seed,
                 device="cpu", items=items)
        model, config = load_model(Path(tmp) / "encoder")
    f = extract_features(model, config, items)
    return ((f - f.mean(0)) / (f.std(0) + 1e-6)).astype(np.float32)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dataset", choices=["jurkat", "chula"])
    p.add_argument("--method", default="autoencoder", choices=["autoencoder", "contrastive"])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    items = al.read_jurkat() if a.dataset == "jurkat" else al.read_chula(1800)
    t0 = time.perf_counter()
    feats = encoder_features(items, a.method)
    t_feat = time.perf_counter() - t0
    torch.set_num_threads(1)  # the head, as in the main benchmark
    name = {"jurkat": "jurkat_ch02", "chula": "chula_rbc12"}[a.dataset]
    res = al.run_dataset(name, items, feats, list(range(a.seeds)), 20, 20, 35)
    al.show(res)
    keep = {k: v for k, v in res.items() if k != "curves" and not k.startswith("mean_curve")}
    line = {"features": f"pretrained {a.method} encoder (penultimate)", **keep,
            "seconds_features": t_feat, "seconds": time.perf_counter() - t0}
    out = BENCH / "results" / "al_features.jsonl"
    with out.open("a") as fh:
        fh.write(json.dumps(line, default=float) + "\n")
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
