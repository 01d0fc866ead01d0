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
from dataclasses import dataclass, field
from pathlib import Path

from napari_cellcurator._sample_data import sample_root


@dataclass
class DemoCase:
    """One task of the demo: where its sample data are and how long to train."""

    task: str
    data: str  # relative to sample_data/
    epochs: int
    channels: list[int] | None = None
    extra: dict = field(default_factory=dict)


CASES = (
    DemoCase("celltype", "celltype/chula_small", epochs=6),
    DemoCase("cellness", "cellness_sim", epochs=4),
    DemoCase("mixture", "mixture/manifest.csv", epochs=4),
)


@dataclass
class DemoResult:
    """What the demo produced for one task (used by the viewer part)."""

    case: DemoCase
    data_path: Path
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
    items = read_for_model(saved.config, str(data))
    table, scores = predict_items(saved.model, saved.config, items)
    task = get_task(case.task)
    metrics = task.metrics(items.table, scores, saved.config.classes)
    metrics["validation"] = saved.config.metrics.get("validation", {})
    csv = out / f"{case.task}_predictions.csv"
    atomic_write(csv, lambda p: table.to_csv(p, index=False))
    item = str(table.sort_values("uncertainty", ascending=False)["item_id"].iloc[0])
    heatmap = out / f"{case.task}_occlusion_{_safe(item)}.npy"
    explain_item(str(model_dir), str(data), item, "occlusion", out=str(heatmap))
    _log(f"{case.task}: {len(table)} items predicted, item {item!r} explained")
    return DemoResult(case, data, model_dir, jsonable(metrics), csv, item, heatmap)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:60]


def run_demo(out: Path, viewer: bool = True, epochs: int | None = None) -> dict:
    """Run every demo case; write ``metrics.json`` and (with ``viewer``) one screenshot per task."""
    out = Path(out)
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
