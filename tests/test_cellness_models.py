"""Cellness models: shapes, the 3CNet input layout, hinge/CE losses, overfitting a tiny batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_cellcurator.core.models.cellness import ThreeCNet, centre_into, middle_samples
from napari_cellcurator.core.models.registry import available_models, build_model
from napari_cellcurator.core.tasks import get_task


def test_registered():
    assert {"3cnet", "twobranch"} <= set(available_models("cellness"))


def test_threecnet_input_is_the_reports():
    net = ThreeCNet()
    image = torch.zeros(2, 2, 32, 32)
    image[:, 0, 16, 16] = 1.0
    trace = torch.arange(100.0).repeat(2, 1)
    x = net.to_input(image, trace)
    assert x.shape == (2, 2, 92, 92)
    assert x[0, 0, 46, 46] == 1 and x[0, 0].sum() == 1  # ROI zero-centred in 92×92
    flat = x[0, 1].reshape(-1)
    nz = torch.nonzero(flat).ravel()
    assert len(flat) == 8464 and flat[nz].tolist() == list(range(1, 100))  # padded trace
    long = torch.arange(10000.0)[None]
    assert middle_samples(long, 8464)[0, 0] == (10000 - 8464) // 2
    assert centre_into(torch.ones(1, 100, 100), 92).shape == (1, 92, 92)
    # no padding, three pools: 92→90→88→44→42→40→20→18→9
    assert net.features(x).shape == (2, 64, 9, 9)
    layers = [type(m).__name__ for m in net.features]
    assert layers[:3] == ["Conv2d", "ReLU", "BatchNorm2d"] and layers.count("Conv2d") == 5
    assert [m.out_features for m in net.head if isinstance(m, torch.nn.Linear)] == [72, 2]


@pytest.mark.parametrize("arch", ["3cnet", "twobranch"])
@pytest.mark.parametrize("t", [37, 9000])
def test_any_trace_length(arch, t):
    model = build_model(arch, in_channels=2, n_outputs=2).eval()
    with torch.no_grad():
        out = model(image=torch.rand(3, 2, 32, 32), trace=torch.randn(3, t))
    assert out.shape == (3, 2) and torch.isfinite(out).all()


def test_losses_by_arch():
    task = get_task("cellness")
    logits = torch.tensor([[2.0, -2.0], [0.2, 0.0]])
    y = torch.tensor([0, 0])
    hinge = task.loss(logits, y, arch="3cnet")
    # report's hinge: sum_j≠y max(0, s_j − s_y + 1), averaged (torch divides by n_classes)
    expected = (max(0, -4 + 1) + max(0, -0.2 + 1)) / 2 / 2
    assert hinge.item() == pytest.approx(expected)
    ce = task.loss(logits, y, arch="twobranch")
    assert ce.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item())


@pytest.mark.parametrize("arch,steps,lr", [("twobranch", 30, 3e-3), ("3cnet", 40, 1e-3)])
def test_overfits_tiny_batch(arch, steps, lr):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n = 8
    y = torch.tensor([0, 1] * (n // 2))
    image = torch.zeros(n, 2, 32, 32)
    trace = torch.from_numpy(rng.normal(size=(n, 120)).astype(np.float32))
    for i in range(n):  # cells: round blob + transients; not cells: a line, flat trace
        if y[i]:
            image[i, :, 12:20, 12:20] = 1
            trace[i, 30 + i:40 + i] += 4
        else:
            image[i, :, 15:17, 2:30] = 1
    model = build_model(arch, in_channels=2, n_outputs=2)
    task = get_task("cellness")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss = task.loss(model(image=image, trace=trace), y, arch=arch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(image=image, trace=trace).argmax(1)
    assert (pred == y).all()
