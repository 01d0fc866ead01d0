"""Real-data check of trace occlusion: a cellness model trained on simulated recordings finds
the transients of real Allen candidates' traces more important for "cell" than quiet stretches.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

ALLEN = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cellness"
         / "allen_croissant" / "train_rois.json")


@pytest.fixture(scope="module")
def sim_trained_model():
    from napari_cellcurator.core.data.simulate_calcium import simulate_candidates
    from napari_cellcurator.core.io.items import concat_itemsets
    from napari_cellcurator.core.io.rois import roiset_to_items
    from napari_cellcurator.core.pipeline import ModelSaved, TrainRequest, train_iter

    sets = [roiset_to_items(simulate_candidates(seed)[1], {}) for seed in (0, 1)]
    req = TrainRequest(task="cellness", data=["simulated"], epochs=15, seed=0, init="none")
    last, threads = None, torch.get_num_threads()
    torch.set_num_threads(2)  # the same numbers whichever test ran before (some set 1 thread)
    try:
        for update in train_iter(req, items=concat_itemsets(sets)):
            last = update
    finally:
        torch.set_num_threads(threads)
    assert isinstance(last, ModelSaved)
    return last.model, last.config


@pytest.mark.slow
def test_transient_windows_matter_more_than_quiet_ones_on_allen_candidates(sim_trained_model):
    if not ALLEN.is_file():
        pytest.skip("shared Allen candidates not available")
    from napari_cellcurator.core.explain import make_score_fn, trace_occlusion
    from napari_cellcurator.core.pipeline import read_for_model
    from napari_cellcurator.core.tasks import get_task

    model, config = sim_trained_model
    task = get_task("cellness")
    items = read_for_model(config, str(ALLEN), task)
    cell = config.classes.index("cell")
    rng = np.random.default_rng(0)
    window, stride = 20, 10
    peak_minus_median = []
    for i in range(len(items)):
        batch = task.make_batch(items, np.array([i]), config.preprocessing, False, rng)
        with torch.inference_mode():
            score_fn, _ = make_score_fn(task, model(**batch), cell)
        imp = trace_occlusion(model, batch, score_fn, window=window, stride=stride)
        trace = batch["trace"][0].numpy()
        starts = np.arange(0, len(trace) - window + 1, stride)
        win_max = np.array([trace[s:s + window].max() for s in starts])
        win_imp = np.array([imp[s:s + window].mean() for s in starts])
        # hiding the window with the largest transient vs a typical window
        peak_minus_median.append(win_imp[np.argmax(win_max)] - np.median(win_imp))
    d = np.array(peak_minus_median)
    # measured over training seeds 0-3: the peak window matters more for
    # 77 / 59 / 44 / 61 % of the 70 candidates, and more on average for every seed; the
    # share of candidates depends on the seed, the average does not
    assert d.mean() > 0
    assert (d > 0).mean() > 0.4
