"""NHWC conv weights (used on the inference path for speed) leave model outputs unchanged."""

import pytest
import torch

from napari_cellcurator.core.device import use_channels_last
from napari_cellcurator.core.models.registry import build_model

CASES = [
    ("resnet", {"in_channels": 3, "n_outputs": 4, "input_size": 40},
     lambda: {"image": torch.randn(5, 3, 40, 40)}),
    ("seedcnn", {"in_channels": 2, "n_outputs": 3, "input_size": 40},
     lambda: {"image": torch.randn(5, 2, 40, 40)}),
    ("twobranch", {"in_channels": 2, "n_outputs": 2},
     lambda: {"image": torch.randn(5, 2, 32, 32), "trace": torch.randn(5, 300)}),
    ("3cnet", {"n_outputs": 2},
     lambda: {"image": torch.randn(5, 2, 32, 32), "trace": torch.randn(5, 9000)}),
]


@pytest.mark.parametrize(("arch", "spec", "inputs"), CASES, ids=[c[0] for c in CASES])
def test_channels_last_same_outputs(arch, spec, inputs):
    torch.manual_seed(0)
    model = build_model(arch, **spec).eval()
    batch = inputs()
    with torch.inference_mode():
        ref = model(**batch)
        fast = use_channels_last(model)(**batch)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fast, ref, atol=1e-4, rtol=1e-4)


def test_models_without_2d_convs_are_left_alone():
    model = torch.nn.Sequential(torch.nn.Conv1d(1, 2, 3), torch.nn.Flatten())
    w = model[0].weight.clone()
    assert use_channels_last(model) is model
    assert torch.equal(model[0].weight, w) and model[0].weight.is_contiguous()
