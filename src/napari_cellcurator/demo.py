"""``cellcurator demo``: the main job on the bundled sample data, end to end.

For each task: train a small model on ``sample_data/``, predict every item, explain the most
uncertain one with occlusion, and (unless ``viewer=False``) show it all in napari with the
plugin's dock widgets and save a screenshot. With no display, a virtual X server (Xvfb) is
started for the viewer. Writes ``<out>/metrics.json``, per-task prediction CSVs, heatmaps and
``<out>/<task>.png``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from napari_cellcurator._sample_data import sample_root


def side_by_side_movie(out: Path) -> Path:
    """A display movie for the mixture demo: the T98G and C2C12 sample crops side by side.

    A spatial composite of two pure real movies (each scaled to [0, 1] by its own 1st/99th
    percentiles, same number of frames), so the proportion map should read ~0 on the left
    half and ~1 on the right. It is a composite for display, not a real mixed culture.
    """
    import numpy as np
    import tifffile

    folder = sample_root() / "mixture"
    movies = [tifffile.imread(folder / name).astype(np.float32)
              for name in ("t98g_crop.tif", "c2c12_crop.tif")]
    frames = min(m.shape[0] for m in movies)
    scaled = []
    for m in movies:
        lo, hi = np.percentile(m[:frames], [1, 99])
        scaled.append(np.clip((m[:frames] - lo) / max(hi - lo, 1e-6), 0, 1))
    path = out / "mixture_side_by_side.tif"
    tifffile.imwrite(path, np.concatenate(scaled, axis=2).astype(np.float32))
    return path


@dataclass
class DemoCase:
    """One task of the demo: where its sample data are and how long to train."""

    task: str
    data: str  # relative to sample_data/
    epochs: int
    channels: list[int] | None = None
    extra: dict = field(default_factory=dict)
    #: builds the data shown and predicted in the viewer (default: the training data)
    display: Callable[[Path], Path] | None = None


CASES = (
    DemoCase("celltype", "celltype/chula_small", epochs=5),
    DemoCase("cellness", "cellness_sim", epochs=4),
    DemoCase("mixture", "mixture/manifest.csv", epochs=6, display=side_by_side_movie),
)


@dataclass
class DemoResult:
    """What the demo produced for one task (used by the viewer part)."""

    case: DemoCase
    data_path: Path
    display_path: Path
    model_dir: Path
    metrics: dict
    predictions_csv: Path
    explained_item: str
    heatmap_path: Path


def _log(msg: str) -> None:
    print(f"[demo] {msg}", file=sys.stderr, flush=True)


def run_case(case: DemoCase, out: Path, epochs: int | None = None) -> DemoResult:
    """Train, predict, evaluate and explain one task on its sample data."""
    from napari_cellcurator.core.explain.api import explain_item
    from napari_cellcurator.core.metrics import jsonable
    from napari_cellcurator.core.pipeline import (
        TrainRequest,
        predict_items,
        read_for_model,
        train,
    )
    from napari_cellcurator.core.store.atomic import atomic_write
    from napari_cellcurator.core.tasks import get_task

    data = sample_root() / case.data
    if not data.exists():
        raise FileNotFoundError(f"sample data for {case.task} missing: {data}")
    model_dir = out / "models" / case.task
    t0 = time.perf_counter()
    saved = train(TrainRequest(task=case.task, data=[str(data)], out=str(model_dir),
                               channels=case.channels, epochs=epochs or case.epochs,
                               device="auto", read_extra=case.extra))
    _log(f"{case.task}: trained {saved.config.arch} in {time.perf_counter() - t0:.0f} s")
    # every cell is scored, as `cellcurator predict` does; the metrics leave out the cells
    # the quality filter marks, as `cellcurator evaluate` does
    items = read_for_model(saved.config, str(data), every_item=True)
    table, scores = predict_items(saved.model, saved.config, items)
    task = get_task(case.task)
    metrics = task.metrics(items.table, scores, saved.config.classes)
    metrics["validation"] = saved.config.metrics.get("validation", {})
    shown = case.display(out) if case.display else data
    if shown != data:
        items = read_for_model(saved.config, str(shown), every_item=True)
        table, _ = predict_items(saved.model, saved.config, items)
    csv = out / f"{case.task}_predictions.csv"
    atomic_write(csv, lambda p: table.to_csv(p, index=False))
    item = str(table.sort_values("uncertainty", ascending=False)["item_id"].iloc[0])
    heatmap = out / f"{case.task}_occlusion_{_safe(item)}.npy"
    explain_item(str(model_dir), str(shown), item, "occlusion", out=str(heatmap))
    _log(f"{case.task}: {len(table)} items predicted, item {item!r} explained")
    return DemoResult(case, data, Path(shown), model_dir, jsonable(metrics), csv, item, heatmap)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:60]


def run_demo(out: Path, viewer: bool = True, epochs: int | None = None) -> dict:
    """Run every demo case; write ``metrics.json`` and (with ``viewer``) one screenshot per task."""
    out = Path(out)
    if viewer:  # before minutes of training, not after
        from napari_cellcurator._qt.demo_screens import check_can_render

        check_can_render()
    out.mkdir(parents=True, exist_ok=True)
    results, summary = [], {}
    for case in CASES:
        result = run_case(case, out, epochs)
        results.append(result)
        summary[case.task] = {"model": str(result.model_dir), "data": str(result.data_path),
                              "explained_item": result.explained_item, **result.metrics}
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    _log(f"wrote {out / 'metrics.json'}")
    if viewer:
        from napari_cellcurator._qt.demo_screens import screenshot_results

        for path in screenshot_results(results, out):
            _log(f"wrote {path}")
    return summary
