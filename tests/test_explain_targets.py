"""What the explanations differentiate and occlude: the right layers of the real mixture
models, logits (not saturated probabilities) for Grad-CAM, a task-aware occlusion fill and
checked proportion targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _explain_models import RegionModel
from torch import nn

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.explain import explain, gradcam, make_score_fn
from napari_cellcurator.core.models.registry import build_model
from napari_cellcurator.core.tasks import get_task

BOX = (8, 16, 18, 26)  # RegionModel's box: y0, y1, x0, x1


@pytest.mark.parametrize("arch,cams,acts", [
    ("dcnn", ["streams.0.8", "streams.1.8"], ["streams.0.0", "streams.1.0"]),
    ("dcnn_fc", ["streams.0.8", "streams.1.8"], ["streams.0.0", "streams.1.0"]),
    ("cnn", ["streams.0.8"], ["streams.0.0"]),
])
def test_mixture_models_are_explained_on_each_streams_convs(arch, cams, acts):
    """The default map head's 1×1 convs (one joins both streams) are not stream layers."""
    torch.manual_seed(0)
    model = build_model(arch, in_frames=5, input_size=32).eval()
    frames = {"frames": torch.randn(1, 5, 32, 32)}
    assert explain(model, "mixture", frames, "gradcam")["layers"] == cams
    assert explain(model, "mixture", frames, "activations")["layers"] == acts


def test_resnet_gradcam_is_on_a_spatial_conv():
    torch.manual_seed(0)
    model = build_model("resnet", in_channels=2, n_outputs=3, input_size=32).eval()
    res = explain(model, "celltype", {"image": torch.randn(1, 2, 32, 32)}, "gradcam")
    (layer,) = res["layers"]
    assert dict(model.named_modules())[layer].kernel_size != (1, 1)


def _region_item() -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(0)
    x = rng.random((1, 2, 32, 32)).astype(np.float32) * 0.1
    y0, y1, x0, x1 = BOX
    x[..., y0:y1, x0:x1] += 1.0
    return {"image": torch.from_numpy(x)}


def test_gradcam_of_a_confident_item_keeps_its_map():
    """Grad-CAM differentiates the class score before the softmax: a model 100× more sure
    gives the same map, 100× stronger, not the vanished gradient of a probability of 1."""
    item = _region_item()
    plain, sure = RegionModel(), RegionModel()
    with torch.no_grad():
        sure.head.weight.mul_(100)
        sure.head.bias.mul_(100)
    assert torch.softmax(sure(**item), dim=1)[0, 1] == 1.0  # saturated in float32
    m_plain = explain(plain, "celltype", item, "gradcam")["map"]
    m_sure = explain(sure, "celltype", item, "gradcam")["map"]
    assert m_plain.max() > 0
    np.testing.assert_allclose(m_sure, 100 * m_plain, rtol=1e-3, atol=1e-6 * m_sure.max())


def test_proportion_gradcam_target_0_mirrors_target_1():
    """±logit: the two targets' maps are the two signs of one map (before upsampling)."""
    torch.manual_seed(0)
    model = build_model("dcnn_fc", in_frames=5).eval()
    frames = {"frames": torch.randn(1, 5, 32, 32)}
    task = get_task("mixture")
    maps = []
    for target in (1, 0):
        score_fn, _ = make_score_fn(task, model(**frames), target, logit=True)
        maps.append(gradcam(model, frames, score_fn, key="frames", upsample=False))
    for name in maps[0]:
        m1, m0 = maps[0][name], maps[1][name]
        assert not ((m1 > 0) & (m0 > 0)).any()
        assert m1.max() + m0.max() > 0


class _FootprintSum(nn.Module):
    """Cell score = weighted footprint sum; the trace plays no part."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 1, bias=False)
        nn.init.constant_(self.conv.weight, 1.0)

    def forward(self, image, trace):
        z = self.conv(image).mean(dim=(1, 2, 3)) * 50 - 1 + 0 * trace.mean(dim=1)
        return torch.stack([torch.zeros_like(z), z], dim=1)


def test_cellness_occlusion_hides_nothing_outside_the_roi():
    """Footprint channels are 0 outside the ROI: occluding there (zero fill) changes
    nothing; the patch-mean fill painted footprint into the background."""
    image = np.zeros((1, 2, 24, 24), np.float32)
    image[:, :, 9:15, 9:15] = 1.0
    inputs = {"image": torch.from_numpy(image), "trace": torch.randn(1, 60)}
    res = explain(_FootprintSum(), "cellness", inputs, "occlusion", patch=4, stride=2)
    assert res["fill"] == "zero"
    far = np.ones((24, 24), bool)
    far[5:19, 5:19] = False  # pixels no patch touching the ROI covers
    assert np.abs(res["map"][far]).max() == 0
    assert res["map"][9:15, 9:15].min() > 0
    celltype = explain(RegionModel(), "celltype", _region_item(), "occlusion", patch=4)
    assert celltype["fill"] == "mean"


@pytest.mark.parametrize("target", [7, -3, 2])
def test_a_proportion_target_other_than_0_or_1_is_an_input_error(target):
    model = build_model("dcnn_fc", in_frames=5).eval()
    with pytest.raises(InputError, match="proportion"):
        explain(model, "mixture", {"frames": torch.randn(1, 5, 32, 32)}, "occlusion",
                target=target)


@pytest.mark.parametrize("method", ["occlusion", "gradcam", "activations"])
def test_a_model_in_training_mode_stays_in_it(method):
    """The Train widget's model may be explained between epochs: explaining evaluates it in
    eval mode and hands it back as it was."""
    model = RegionModel().train()
    explain(model, "celltype", _region_item(), method, patch=8)
    assert model.training


def test_numpy_inputs_each_with_or_without_a_batch_axis():
    image = np.zeros((1, 2, 24, 24), np.float32)
    image[:, :, 9:15, 9:15] = 1.0
    trace = np.random.default_rng(0).normal(size=60).astype(np.float32)
    model = _FootprintSum()
    both = explain(model, "cellness", {"image": image, "trace": trace[None]}, "occlusion",
                   patch=4, stride=2)["map"]
    mixed = explain(model, "cellness", {"image": image, "trace": trace}, "occlusion",
                    patch=4, stride=2)["map"]
    neither = explain(model, "cellness", {"image": image[0], "trace": trace}, "occlusion",
                      patch=4, stride=2)["map"]
    np.testing.assert_array_equal(mixed, both)
    np.testing.assert_array_equal(neither, both)
