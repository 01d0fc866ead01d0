"""Benchmark inputs per task: raw item arrays shaped like each task's real data.

Run directly it lists the cases (``make bench`` runs every ``bench/*.py``; this one is instant).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from common import JURKAT


@dataclass
class Case:
    """Raw arrays of ``n`` items of one task, as its reader would return them."""

    task: str
    arrays: dict[str, np.ndarray]
    classes: list[str]
    read_extra: dict = field(default_factory=dict)
    note: str = ""


def _jurkat_pool(limit: int = 256) -> np.ndarray | None:
    """Up to ``limit`` real Jurkat crops (3, 40, 40) uint16, or None without the shared data."""
    if not JURKAT.is_dir():
        return None
    import tifffile

    files = sorted(JURKAT.glob("*/*.tif"))[:: max(1, len(list(JURKAT.glob("*/*.tif"))) // limit)]
    crops = [tifffile.imread(f) for f in files[:limit]]
    crops = [c for c in crops if c.shape == (3, 40, 40)]
    return np.stack(crops) if crops else None


def celltype_case(n: int, rng: np.random.Generator) -> Case:
    """Jurkat-shaped crops: (n, 3, 40, 40) uint16; real crops repeated with flips if present."""
    pool = _jurkat_pool()
    if pool is None:
        arr = rng.integers(0, 4000, size=(n, 3, 40, 40), dtype=np.uint16)
        note = "synthetic uint16 crops (shared Jurkat data absent)"
    else:
        pick = rng.integers(0, len(pool), size=n)
        arr = pool[pick]
        flip = rng.random(n) < 0.5
        arr[flip] = arr[flip][..., ::-1]
        note = f"{len(pool)} real Jurkat crops repeated (with flips) to {n}"
    classes = ["G1", "S_phase", "G2", "Prophase", "Metaphase", "Anaphase", "Telophase"]
    return Case("celltype", {"image": np.ascontiguousarray(arr)}, classes, note=note)


def cellness_case(n: int, rng: np.random.Generator, side: int = 32, length: int = 2000) -> Case:
    """ROI candidates: footprint + mask patches (n, 2, side, side) and traces (n, length)."""
    yy, xx = np.mgrid[:side, :side] - side / 2
    r = rng.uniform(3, 7, size=(n, 1, 1))
    foot = np.exp(-(yy**2 + xx**2)[None] / (2 * r**2)).astype(np.float32)
    image = np.stack([foot, (foot > 0.3).astype(np.float32)], axis=1)
    t = np.arange(length)
    spikes = (rng.random((n, length)) < 0.01).astype(np.float32)
    kernel = np.exp(-np.arange(50) / 10.0)
    trace = np.stack([np.convolve(s, kernel)[:length] for s in spikes]).astype(np.float32)
    trace += 0.1 * rng.standard_normal((n, length)).astype(np.float32) + 0 * t
    return Case("cellness", {"image": image, "trace": trace}, ["not_cell", "cell"],
                note=f"synthetic footprints {side}x{side} + {length}-sample traces")


def mixture_case(n: int, rng: np.random.Generator, length: int = 8, side: int = 64) -> Case:
    """Movie snippets: (n, length, side, side) uint16 phase-contrast-like texture."""
    base = rng.normal(1000, 80, size=(n, 1, side, side))
    drift = rng.normal(0, 20, size=(n, length, side, side))
    frames = np.clip(base + drift, 0, 65535).astype(np.uint16)
    return Case("mixture", {"frames": frames}, ["type_a", "type_b"],
                note=f"synthetic snippets {length} frames x {side}x{side} uint16")


CASES = {"celltype": celltype_case, "cellness": cellness_case, "mixture": mixture_case}


def task_available(name: str) -> str | None:
    """None when task ``name`` and its default architecture import; else why not."""
    from napari_cellcurator.core.models.registry import available_models
    from napari_cellcurator.core.tasks import get_task

    try:
        task = get_task(name)
    except (ImportError, AttributeError) as exc:
        return f"task module not available yet ({exc.__class__.__name__}: {exc})"
    if task.default_arch not in available_models(name):
        return f"default arch {task.default_arch!r} not registered yet"
    return None


def build_case(name: str, n: int, seed: int = 0):
    """``(case, items, prep)``: the raw items of ``name`` and preprocessing fitted on them."""

    from napari_cellcurator.core.io.items import ItemSet
    from napari_cellcurator.core.tasks import ReadOptions, get_task

    case = CASES[name](n, np.random.default_rng(seed))
    table = _table(n, case.classes, seed)
    if get_task(name).kind == "proportion":  # mixture items are labelled with a proportion
        table["label"] = np.random.default_rng(seed).uniform(0, 1, size=n)
    items = ItemSet(table, case.arrays, {"classes": case.classes})
    prep = get_task(name).fit_preprocessing(items, ReadOptions(extra=dict(case.read_extra)))
    return case, items, prep


def _table(n: int, classes: list[str], seed: int):
    import pandas as pd

    labels = np.asarray(classes, dtype=object)[np.random.default_rng(seed).integers(
        0, len(classes), size=n)]
    return pd.DataFrame({"item_id": [f"i{i}" for i in range(n)], "source": "bench",
                         "label": labels})


def write_zarr_store(path: Path, arrays: dict[str, np.ndarray], chunk: int) -> Path:
    """One zarr array per input, chunked ``chunk`` items along axis 0 and written chunk by chunk
    (so a scoring batch of ``chunk`` items reads exactly one chunk)."""
    import zarr

    root = zarr.open_group(str(path), mode="w")
    for key, arr in arrays.items():
        z = root.create_array(key, shape=arr.shape, dtype=arr.dtype,
                              chunks=(chunk, *arr.shape[1:]))
        for start in range(0, len(arr), chunk):
            z[start:start + chunk] = arr[start:start + chunk]
    return Path(path)


if __name__ == "__main__":
    for name in CASES:
        why = task_available(name)
        print(f"  {name:<10} {'ready' if why is None else 'skipped: ' + why}")
