"""Mixture models, tiling, dX, proportion map, training end to end and reproducibility."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from napari_cellcurator.core.data.snippets import (
    SnippetArray,
    frame_differences,
    grid_positions,
    robust_normalise,
)
from napari_cellcurator.core.io.movies import open_movie
from napari_cellcurator.core.models.mixture import temporal_difference
from napari_cellcurator.core.models.registry import available_models, build_model
from napari_cellcurator.core.tasks.mixture import proportion_map, summarise

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data" / "mixture"


def test_archs_registered():
    assert {"cnn", "dcnn", "cnn_fc", "dcnn_fc", "c3d"} <= set(available_models("mixture"))


def test_tiles_match_direct_numpy(tmp_path):
    movie = np.random.default_rng(0).random((9, 50, 70)).astype(np.float32)
    np.save(tmp_path / "m.npy", movie)
    mv = open_movie(tmp_path / "m.npy")
    pos = grid_positions((0, 9), (0, 50), (0, 70), 5, 16, 12, 2)
    # t0 ∈ {0,2,4}, y0 ∈ {0,12,24}, x0 ∈ {0,12,...,48}
    assert len(pos) == 3 * 3 * 5 and pos[:, 0].max() == 4 and pos[:, 2].max() == 48
    arr = SnippetArray.from_positions([mv], np.zeros(len(pos), int), pos, 5, 16)
    got = np.asarray(arr)
    for i in (0, 7, len(pos) - 1):
        t, y, x = pos[i]
        np.testing.assert_allclose(got[i], robust_normalise(movie[t:t + 5, y:y + 16, x:x + 16]),
                                   rtol=1e-6)
    half = SnippetArray.from_positions([mv], np.zeros(len(pos), int), pos, 5, 8, scale=2)
    t, y, x = pos[5]
    direct = movie[t:t + 5, y:y + 16, x:x + 16].reshape(5, 8, 2, 8, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(half[[5]].compute()[0], robust_normalise(direct), rtol=1e-5)


def test_normalisation_removes_gain_and_offset():
    x = np.random.default_rng(1).random((5, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(robust_normalise(x), robust_normalise(x * 37.0 + 900.0),
                               atol=1e-4)


def test_dx_matches_numpy():
    x = torch.randn(3, 5, 8, 8)
    np.testing.assert_allclose(temporal_difference(x, 1).numpy(), (x[:, 1:] - x[:, :-1]).numpy(),
                               rtol=1e-6)
    np.testing.assert_allclose(temporal_difference(x, 2).numpy(),
                               frame_differences(x.numpy(), 2), rtol=1e-5, atol=1e-6)
    model = build_model("dcnn", in_frames=5, diff_orders=(1, 2))
    assert len(model.streams) == 3


@pytest.mark.parametrize("arch", ["cnn", "dcnn", "cnn_fc", "dcnn_fc", "c3d"])
def test_each_model_overfits_a_tiny_batch(arch):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 5, 16, 16, generator=g)
    y = torch.tensor([0, 1, 0, 1, 0.25, 0.75, 0.5, 1.0])
    x = x + (y[:, None, None, None] * 2.0)  # a learnable signal
    model = build_model(arch, in_frames=5, input_size=16, n_outputs=1, dropout=0.0,
                        unknown_kwarg=1)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(60):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(frames=x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        p = torch.sigmoid(model(frames=x))
    assert p.shape == (8,)
    assert (p - y).abs().mean() < 0.1, (p, y)


def test_proportion_map_places_tiles():
    pred = pd.DataFrame({"t0": [0, 0, 5, 0], "y0": [0, 32, 0, 0], "x0": [0, 64, 32, 0],
                         "proportion": [0.1, 0.9, 0.5, 0.3],
                         "kind": ["tile", "tile", "tile", "composite"]})
    m = proportion_map(pred, (10, 128, 128), 64, 32)
    assert m.shape == (2, 3, 3)
    assert m[0, 0, 0] == pytest.approx(0.1) and m[0, 1, 2] == pytest.approx(0.9)
    assert m[1, 0, 1] == pytest.approx(0.5)
    assert np.isnan(m).sum() == 18 - 3


def test_summarise_per_movie():
    pred = pd.DataFrame({"source": ["a", "a", "b"], "row": [1, 1, 2], "label": [0.0, 0.0, 1.0],
                         "proportion": [0.1, 0.3, 0.8]})
    s = summarise(pred).set_index("source")
    assert s.loc["a", "proportion_mean"] == pytest.approx(0.2)
    assert s.loc["a", "n_snippets"] == 2 and s.loc["b", "label_mean"] == 1.0


def _small_manifest(tmp_path: Path) -> Path:
    for f in ("t98g_crop.tif", "c2c12_crop.tif"):
        shutil.copy(SAMPLE / f, tmp_path / f)
    p = tmp_path / "m.csv"
    p.write_text("path,proportion,class_a,class_b,composite_of,n,grid,max_snippets\n"
                 "t98g_crop.tif,0,T98G,C2C12,,,,40\nc2c12_crop.tif,1,T98G,C2C12,,,,40\n"
                 ",,T98G,C2C12,1 2,40,2,\n")
    return p


def test_training_is_reproducible_and_predicts_movies(tmp_path):
    from napari_cellcurator.core.pipeline import TrainRequest, predict, train

    torch.set_num_threads(1)
    man = _small_manifest(tmp_path)
    preds = []
    for k in range(2):
        out = tmp_path / f"model{k}"
        train(TrainRequest(task="mixture", data=[str(man)], out=str(out), arch="cnn",
                           epochs=1, batch_size=16, seed=3))
        preds.append(predict(str(out), str(tmp_path / "c2c12_crop.tif")))
    np.testing.assert_allclose(preds[0]["proportion"], preds[1]["proportion"], rtol=1e-5)
    p = preds[0]
    assert {"proportion", "y", "x", "t0"} <= set(p.columns)
    assert len(p) == 2 * 3 * 3  # t0 ∈ {0, 5}, 3×3 tiles of 64 px on 192 px
    m = proportion_map(p, (10, 192, 192), 64, 64)
    assert m.shape == (2, 3, 3) and np.isfinite(m).all()


@pytest.mark.parametrize("bias", [3.0, 8.0, -8.0])
def test_a_confident_map_head_stays_finite_under_bf16(bias):
    """bf16 autocast (the CPU training default where the CPU has it) rounded the clamp's
    1 - 1e-6 to 1: a saturated map gave an infinite logit and a NaN loss mid-training."""
    import torch.nn.functional as F

    from napari_cellcurator.core.device import autocast

    torch.manual_seed(0)
    model = build_model("dcnn", in_frames=5, input_size=32, head="map").eval()
    with torch.no_grad():
        model.head[1].bias.fill_(bias)
    x = torch.randn(4, 5, 32, 32)
    with torch.no_grad():
        full = model(x)
        with autocast("cpu", True):
            low = model(x)
    assert torch.isfinite(low).all() and low.dtype == torch.float32
    torch.testing.assert_close(low, full, atol=0.15, rtol=0.02)
    loss = F.binary_cross_entropy_with_logits(low, torch.ones(4))
    assert torch.isfinite(loss)
