"""Incremental occlusion must equal the plain batched forward on every architecture."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _explain_models import RegionModel, TraceWindowModel, TwoStream
from torch import nn

from napari_cellcurator.core.explain import make_score_fn, occlusion_map
from napari_cellcurator.core.explain.incremental import IncrementalOcclusion
from napari_cellcurator.core.explain.occlusion import fill_image, positions
from napari_cellcurator.core.models.registry import build_model
from napari_cellcurator.core.tasks import get_task


class ShapeDependent(nn.Module):
    """Reads the batch size from a *non*-occluded input: a trap for incremental inference."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.head = nn.Linear(3 * 8 * 8 + 4, 2)

    def forward(self, image, trace):
        b = trace.shape[0]
        return self.head(torch.cat([self.conv(image).view(b, -1), trace], dim=1))


class WithControlFlow(nn.Module):
    """Data-dependent Python control flow: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, image):
        y = self.conv(image)
        if float(y.detach().mean()) > 1e9:
            y = y * 2
        return y.mean(dim=(2, 3))


def _plain_vs_incremental(model, inputs, key, patch, stride, fill="mean"):
    model.eval()
    h, w = inputs[key].shape[-2:]
    ys, xs = positions(h, patch, stride), positions(w, patch, stride)
    grid = np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)
    filled = fill_image(inputs[key], fill, patch)
    with torch.inference_mode():
        fast = IncrementalOcclusion(model, inputs, key).logits(filled, grid[:, 0], grid[:, 1],
                                                               patch, patch)
        batch = inputs[key].expand(len(grid), *inputs[key].shape[1:]).clone()
        for i, (y0, x0) in enumerate(grid):
            batch[i, ..., y0:y0 + patch, x0:x0 + patch] = \
                filled[0, ..., y0:y0 + patch, x0:x0 + patch]
        others = {k: v.expand(len(grid), *v.shape[1:]) for k, v in inputs.items() if k != key}
        plain = model(**{key: batch, **others})
    return fast, plain


@pytest.mark.parametrize("arch,size,patch,stride", [("resnet", 40, 5, 7), ("seedcnn", 32, 6, 4),
                                                    ("resnet", 36, 7, 9)])
def test_celltype_models_match_the_plain_forward(arch, size, patch, stride):
    torch.manual_seed(0)
    model = build_model(arch, in_channels=2, n_outputs=5, input_size=size)
    # non-trivial BatchNorm statistics so BN is not the identity
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    inputs = {"image": torch.randn(1, 2, size, size)}
    fast, plain = _plain_vs_incremental(model, inputs, "image", patch, stride, fill="blur")
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model,inputs,key", [
    (RegionModel(), {"image": torch.rand(1, 2, 32, 32)}, "image"),
    (TwoStream(), {"frames": torch.randn(1, 3, 20, 20)}, "frames"),
    (TraceWindowModel(), {"image": torch.randn(1, 1, 16, 16), "trace": torch.randn(1, 100)},
     "image"),
])
def test_toy_models_match_the_plain_forward(model, inputs, key):
    fast, plain = _plain_vs_incremental(model, inputs, key, 4, 3)
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("model,inputs", [
    (ShapeDependent(), {"image": torch.randn(1, 1, 8, 8), "trace": torch.randn(1, 4)}),
    (WithControlFlow(), {"image": torch.randn(1, 2, 12, 12)}),
])
def test_auto_mode_falls_back_to_plain_batches(model, inputs):
    task = get_task("celltype")
    score_fn, _ = make_score_fn(task, model(**inputs), None)
    auto = occlusion_map(model, inputs, score_fn, patch=3, stride=2)
    plain = occlusion_map(model, inputs, score_fn, patch=3, stride=2, incremental=False)
    np.testing.assert_allclose(auto, plain, rtol=1e-5, atol=1e-7)
    with pytest.raises(Exception):  # noqa: B017 - forced mode must not hide the failure
        occlusion_map(model, inputs, score_fn, patch=3, stride=2, incremental=True)


def test_occlusion_map_same_with_and_without_incremental():
    torch.manual_seed(1)
    model = build_model("resnet", in_channels=2, n_outputs=3, input_size=32)
    inputs = {"image": torch.randn(1, 2, 32, 32)}
    score_fn, _ = make_score_fn(get_task("celltype"), model(**inputs), None)
    a = occlusion_map(model, inputs, score_fn, patch=6, stride=5, incremental=True)
    b = occlusion_map(model, inputs, score_fn, patch=6, stride=5, incremental=False)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
