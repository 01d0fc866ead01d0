"""Peak memory of scoring data much larger than RAM should allow: bounded by the batch, not N.

Case 1, ``crops``: a zarr store of 1,000,000 candidate crops (1×32×32 uint8, ~1 GB raw, chunks
of one batch) is written chunk by chunk, then a fresh process opens it lazily (dask), scores
every crop with :func:`napari_cellcurator.core.batch.score_items` (threaded dask scheduler, the
``cellcurator predict`` path) and writes the 1,000,000-row prediction table (Parquet). The model
is a deliberately tiny CNN registered for the celltype task by this benchmark (a 1-conv net), so
the run takes minutes on 2 cores: the pipeline (read, decompress, preprocess, forward, collect,
write) is what is measured, and the weights of a real model add only a few MB.

Case 2, ``movie``: a 2,000 × 512 × 512 uint16 movie (1 GB raw) written chunk-wise to zarr is
read lazily and tiled into snippets by the mixture task's reader, which are scored by the
mixture task's default model (random weights), predictions written.

Case 3, ``candidates``: PCA/ICA cell candidates of the same movie with a few hundred
simulated firing cells added (``cellcurator`` cellness on a raw movie): read in blocks of
frames, the PCA in a few passes (:mod:`napari_cellcurator.core.io.movie_stream`), traces and
neuropil projected block by block.

Each case runs in its own process; its peak RSS (``ru_maxrss``) is reported, together with the
RSS after imports and model loading, and RSS sampled every 0.25 s during the run (its maximum
over the first and the last quarter of the run shows whether memory grows with N).
Target: < 1 GB peak for each.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from common import RESULTS, current_rss_mb, parse_args, peak_rss_mb, run_child, show, write_result

TARGET_MB = 1000.0
CROP = (1, 32, 32)


# ---- data (parent process) --------------------------------------------------------------------
def write_crop_store(path: Path, n: int, chunk: int, seed: int = 0) -> Path:
    """``n`` crops (1, 32, 32) uint8 — blobs on a noisy background — written chunk by chunk."""
    import zarr

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:32, :32] - 15.5
    radius = rng.uniform(3, 9, size=(chunk, 1, 1))
    bank = (200 * np.exp(-(yy**2 + xx**2)[None] / (2 * radius**2)))[:, None].astype(np.uint8)
    noise = rng.integers(0, 40, size=(2 * chunk, *CROP), dtype=np.uint8)  # drawn once: fast
    root = zarr.open_group(str(path), mode="w")
    z = root.create_array("image", shape=(n, *CROP), chunks=(chunk, *CROP), dtype="uint8")
    for start in range(0, n, chunk):
        m, o = min(chunk, n - start), int(rng.integers(chunk))
        z[start:start + m] = bank[rng.permutation(chunk)[:m]] + noise[o:o + m]  # ≤ 239
    return path


# ---- the tiny model of the crops case ---------------------------------------------------------
def register_tiny_model() -> None:
    """A 1-conv CNN registered as ``bench_tiny`` for the celltype task (this process only)."""
    from torch import nn

    from napari_cellcurator.core.models.registry import register_model

    class Tiny(nn.Module):
        def __init__(self, in_channels: int, n_outputs: int):
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(in_channels, 8, 3, stride=2, padding=1),
                                     nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                     nn.Linear(8, n_outputs))

        def forward(self, image):
            return self.net(image)

    @register_model("bench_tiny", task="celltype", description="benchmark-only 1-conv CNN")
    def build(in_channels: int, n_outputs: int, **_):
        return Tiny(in_channels, n_outputs)


def crop_model_dir(out: Path) -> Path:
    from common import make_model_dir

    register_tiny_model()
    prep = {"read_options": {"channels": None, "crop_size": 32, "extra": {}},
            "input_size": 32, "in_channels": 1, "channel_mean": [60.0], "channel_std": [40.0]}
    return make_model_dir(out, "celltype", prep, ["not_cell", "cell"], arch="bench_tiny")[0]


# ---- children -----------------------------------------------------------------------------
class RssSampler:
    """Samples this process's RSS every ``every`` seconds in a thread."""

    def __init__(self, every: float = 0.25):
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.samples.append((time.perf_counter() - self._t0, current_rss_mb()))

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        rss = np.asarray([s[1] for s in self.samples] or [current_rss_mb()])
        q = max(1, len(rss) // 4)
        return {"rss_samples": len(rss), "max_rss_mb_first_quarter": float(rss[:q].max()),
                "max_rss_mb_last_quarter": float(rss[-q:].max())}


def child_crops(store: str, model_dir: str, batch: int, out: str) -> dict:
    import dask.array as da
    import pandas as pd
    import zarr

    from napari_cellcurator.core.batch import _cached_model, score_items
    from napari_cellcurator.core.io.items import ItemSet
    from napari_cellcurator.core.tasks import get_task

    register_tiny_model()
    _cached_model(model_dir, "cpu")
    baseline = peak_rss_mb()
    sampler = RssSampler()
    t0 = time.perf_counter()
    arr = da.from_zarr(zarr.open_group(store, mode="r")["image"])
    n = arr.shape[0]
    table = pd.DataFrame({"item_id": pd.RangeIndex(n).astype(str), "source": store,
                          "label": None})
    items = ItemSet(table, {"image": arr})
    stages = {"item_table_built": current_rss_mb()}
    scores = score_items(model_dir, items, "cpu", batch, "threads")
    stages["all_scored"] = current_rss_mb()
    task = get_task("celltype")
    task.prediction_table(items.table, scores, ["not_cell", "cell"]).to_parquet(out, index=False)
    stages["predictions_written"] = current_rss_mb()
    seconds = time.perf_counter() - t0
    return {"n_items": n, "batch_size": batch, "seconds": seconds, "items_per_s": n / seconds,
            "rss_mb_after_imports_and_model": baseline, "peak_rss_mb": peak_rss_mb(),
            "rss_mb_at": stages, **sampler.stop()}


def child_movie(store: str, out: str) -> dict:
    """Tile and score the movie with the mixture task (needs its movie reader)."""
    from napari_cellcurator.core.batch import predict_to_file

    baseline = peak_rss_mb()
    sampler = RssSampler()
    t0 = time.perf_counter()
    model_dir = str(Path(out).with_suffix("")) + "_model"
    _mixture_model(store, model_dir)
    path = predict_to_file(model_dir, store, out, device="cpu")
    import pandas as pd

    n = len(pd.read_parquet(path))
    seconds = time.perf_counter() - t0
    return {"n_snippets": n, "seconds": seconds, "rss_mb_after_imports": baseline,
            "peak_rss_mb": peak_rss_mb(), **sampler.stop()}


def child_candidates(store: str) -> dict:
    """PCA/ICA candidates of the movie, as ``cellcurator predict`` on a raw movie reads it."""
    from napari_cellcurator.core.tasks import ReadOptions, get_task

    task = get_task("cellness")
    baseline = peak_rss_mb()
    sampler = RssSampler()
    t0 = time.perf_counter()
    items = task.read(Path(store), ReadOptions())
    seconds = time.perf_counter() - t0
    return {"n_candidates": len(items), "seconds": seconds, "rss_mb_after_imports": baseline,
            "peak_rss_mb": peak_rss_mb(), **sampler.stop()}


def add_cells(path: Path, n_cells: int, seed: int = 1) -> None:
    """Add ``n_cells`` Gaussian cells with sparse calcium transients to the zarr movie."""
    import zarr

    z = zarr.open_array(str(path), mode="r+")
    frames, side = z.shape[0], z.shape[1]
    rng = np.random.default_rng(seed)
    centres = rng.uniform(8, side - 8, size=(n_cells, 2))
    yy, xx = np.mgrid[:side, :side]
    spikes = rng.random((n_cells, frames)) < 0.01
    kernel = np.exp(-np.arange(40) / 8.0)
    activity = np.stack([np.convolve(s, kernel)[:frames] for s in spikes]) * 400
    chunk = z.chunks[0]
    for start in range(0, frames, chunk):
        block = z[start:start + chunk].astype(np.float32)
        for (cy, cx), trace in zip(centres, activity[:, start:start + chunk], strict=True):
            y0, x0 = int(cy) - 8, int(cx) - 8
            blob = np.exp(-((yy[y0:y0 + 16, x0:x0 + 16] - cy) ** 2
                            + (xx[y0:y0 + 16, x0:x0 + 16] - cx) ** 2) / 18.0)
            block[:, y0:y0 + 16, x0:x0 + 16] += trace[:, None, None] * blob
        z[start:start + chunk] = np.clip(block, 0, 65535).astype(np.uint16)


def _mixture_model(store: str, model_dir: str) -> None:
    """A default-arch mixture model (random weights) whose preprocessing reads ``store``."""
    from common import make_model_dir

    from napari_cellcurator.core.tasks import ReadOptions, get_task

    task = get_task("mixture")
    items = task.read(Path(store), ReadOptions())
    prep = task.fit_preprocessing(items.subset(np.arange(min(len(items), 64))), ReadOptions())
    make_model_dir(Path(model_dir), "mixture", prep, task.classes_from(items))


def movie_unavailable() -> str | None:
    import importlib

    for module in ("napari_cellcurator.core.tasks.mixture", "napari_cellcurator.core.io.movies"):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            return f"{module} not available yet ({exc})"
    return None


def write_movie_store(path: Path, frames: int, side: int, chunk_frames: int = 50) -> Path:
    """A (frames, side, side) uint16 movie written ``chunk_frames`` frames at a time."""
    import zarr

    rng = np.random.default_rng(0)
    z = zarr.create_array(str(path), shape=(frames, side, side), dtype="uint16",
                          chunks=(chunk_frames, side, side))
    base = rng.normal(1000, 100, size=(side, side))
    for start in range(0, frames, chunk_frames):
        m = min(chunk_frames, frames - start)
        z[start:start + m] = (base + rng.normal(0, 30, size=(m, side, side))).astype(np.uint16)
    return path


# ---- parent ----------------------------------------------------------------------------------
def main(quick: bool = False, out: Path | None = None) -> dict:
    n_crops, batch = (20_000, 2048) if quick else (1_000_000, 4096)
    frames, side = (100, 128) if quick else (2000, 512)
    tmp = Path(tempfile.mkdtemp(prefix="cc_bench_mem_"))
    result: dict = {"target_mb": TARGET_MB}
    try:
        t0 = time.perf_counter()
        write_crop_store(tmp / "crops.zarr", n_crops, batch)
        model_dir = crop_model_dir(tmp / "tiny_model")
        print(f"  wrote {n_crops:,} crops in {time.perf_counter() - t0:.0f} s; scoring…",
              flush=True)
        crops = run_child([__file__, "--child", "crops", str(tmp / "crops.zarr"), str(model_dir),
                           str(batch), str(tmp / "crops_pred.parquet")])
        result["peak_rss_mb_1m_crops" if not quick else "peak_rss_mb_crops"] = crops["peak_rss_mb"]
        result["crops"] = crops
        _show_case(f"{n_crops:,} crops 1x32x32", crops)
        why = movie_unavailable()
        if why is None:
            write_movie_store(tmp / "movie.zarr", frames, side)
            movie = run_child([__file__, "--child", "movie", str(tmp / "movie.zarr"),
                               str(tmp / "movie_pred.parquet")])
            key = "peak_rss_mb_movie_2000x512x512" if not quick else "peak_rss_mb_movie"
            result[key] = movie["peak_rss_mb"]
            result["movie"] = {**movie, "shape": [frames, side, side]}
            _show_case(f"movie {frames}x{side}x{side} uint16", movie)
            add_cells(tmp / "movie.zarr", 40 if quick else 300)
            cands = run_child([__file__, "--child", "candidates", str(tmp / "movie.zarr")])
            key = "peak_rss_mb_candidates_2000x512x512" if not quick else "peak_rss_mb_candidates"
            result[key] = cands["peak_rss_mb"]
            result["candidates"] = {**cands, "shape": [frames, side, side]}
            _show_case(f"PCA/ICA candidates, movie {frames}x{side}x{side}", cands)
            show("  candidates found", cands["n_candidates"])
        else:
            result["movie"] = {"skipped": why}
            show("movie case skipped", why)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_result("memory", result, out or RESULTS)
    return result


def _show_case(label: str, r: dict) -> None:
    show(f"peak RSS, {label}", r["peak_rss_mb"], "MB", f"< {TARGET_MB:.0f} MB",
         r["peak_rss_mb"] < TARGET_MB)
    base = r.get("rss_mb_after_imports_and_model", r.get("rss_mb_after_imports"))
    show("  RSS after imports (+ model)", base, "MB")
    show("  max RSS first / last quarter of run",
         f"{r['max_rss_mb_first_quarter']:.0f} / {r['max_rss_mb_last_quarter']:.0f}", "MB")
    for stage, mb in r.get("rss_mb_at", {}).items():
        show(f"  RSS when {stage.replace('_', ' ')}", mb, "MB")
    show("  seconds", r["seconds"], "s")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind, rest = sys.argv[2], sys.argv[3:]
        if kind == "crops":
            res = child_crops(rest[0], rest[1], int(rest[2]), rest[3])
        elif kind == "candidates":
            res = child_candidates(rest[0])
        else:
            res = child_movie(rest[0], rest[1])
        print(json.dumps(res))
    else:
        args = parse_args(__doc__.splitlines()[0])
        main(args.quick, args.out)
