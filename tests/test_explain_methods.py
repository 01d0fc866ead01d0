"""Occlusion, Grad-CAM and activations on models with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _explain_models import RegionModel, TraceWindowModel, TwoStream

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.explain import (
    explain,
    gradcam,
    layer_activations,
    list_conv_layers,
    make_score_fn,
    occlusion_iter,
    occlusion_map,
    trace_occlusion,
)
from napari_cellcurator.core.explain.occlusion import default_patch, positions
from napari_cellcurator.core.tasks import get_task
from napari_cellcurator.core.tasks.base import ProportionTask

BOX = (8, 16, 18, 26)  # y0, y1, x0, x1


class _Proportion:
    """Minimal stand-in of a proportion task (the mixture task may not be written yet)."""

    kind = "proportion"
    explain_input = "frames"
    input_keys = ("frames",)
    explain_score = ProportionTask.explain_score
    explain_logit = ProportionTask.explain_logit
    occlusion_fill = "mean"


def _region_item(seed: int = 0) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    x = rng.random((1, 2, 32, 32)).astype(np.float32) * 0.1
    y0, y1, x0, x1 = BOX
    x[..., y0:y1, x0:x1] += 1.0  # the region is bright, so hiding it lowers the score
    return {"image": torch.from_numpy(x)}


def _far_from_box(shape, margin: int) -> np.ndarray:
    y0, y1, x0, x1 = BOX
    far = np.ones(shape, bool)
    far[max(0, y0 - margin):y1 + margin, max(0, x0 - margin):x1 + margin] = False
    return far


def _inside_box(shape) -> np.ndarray:
    y0, y1, x0, x1 = BOX
    inside = np.zeros(shape, bool)
    inside[y0:y1, x0:x1] = True
    return inside


@pytest.mark.parametrize("fill", ["mean", "zero", "blur"])
def test_occlusion_peaks_in_the_known_region(fill):
    model = RegionModel()
    item = _region_item()
    task = get_task("celltype")
    score_fn, target = make_score_fn(task, model(**item), None)
    assert target == 1
    m = occlusion_map(model, item, score_fn, patch=4, stride=2, fill=fill)
    assert m.shape == (32, 32) and m.dtype == np.float32
    peak = np.unravel_index(np.argmax(m), m.shape)
    assert _inside_box(m.shape)[peak]
    assert m[_inside_box(m.shape)].mean() > 1e-3
    # pixels whose covering patches never touch the box: exactly no effect
    assert np.abs(m[_far_from_box(m.shape, 4)]).max() < 1e-6


def test_occlusion_iter_is_progressive_and_matches_the_full_run():
    model = RegionModel()
    item = _region_item(1)
    score_fn, _ = make_score_fn(get_task("celltype"), model(**item), None)
    steps = list(occlusion_iter(model, item, score_fn, patch=4, stride=2, batch_size=40))
    fractions = [f for f, _ in steps]
    n_patches = len(positions(32, 4, 2)) ** 2
    assert len(steps) == -(-n_patches // 40)
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    # the first partial map only covers the top rows
    first = steps[0][1]
    assert np.all(first[-4:] == 0)
    full = occlusion_map(model, item, score_fn, patch=4, stride=2, batch_size=7)
    np.testing.assert_allclose(steps[-1][1], full, atol=1e-6)


def test_occlusion_target_is_fixed_not_re_argmaxed():
    """Explaining class 0 must give the mirror image of class 1 (p0 = 1 - p1)."""
    model = RegionModel()
    item = _region_item(2)
    task = get_task("celltype")
    f1, _ = make_score_fn(task, model(**item), 1)
    f0, _ = make_score_fn(task, model(**item), 0)
    m1 = occlusion_map(model, item, f1, patch=4, stride=2)
    m0 = occlusion_map(model, item, f0, patch=4, stride=2)
    np.testing.assert_allclose(m0, -m1, atol=1e-5)


def test_gradcam_lies_in_the_known_region():
    model = RegionModel()
    item = _region_item(3)
    score_fn, _ = make_score_fn(get_task("celltype"), model(**item), None)
    maps = gradcam(model, item, score_fn)
    assert list(maps) == ["conv"]
    m = maps["conv"]
    assert m.shape == (32, 32) and (m >= 0).all()
    peak = np.unravel_index(np.argmax(m), m.shape)
    assert _inside_box(m.shape)[peak]
    assert m[_far_from_box(m.shape, 2)].max() < 1e-3 * m.max()


def test_activations_equal_a_manual_forward():
    model = RegionModel()
    item = _region_item(4)
    acts = layer_activations(model, item, "conv")
    expected = model.conv(item["image"] * model.mask)[0].detach().numpy()
    assert acts["conv"].shape == (4, 32, 32)
    np.testing.assert_allclose(acts["conv"], expected, rtol=1e-5, atol=1e-6)


def test_activations_survive_inplace_relu_and_downsampling():
    model = TwoStream().eval()
    frames = torch.randn(1, 3, 16, 16)
    acts = layer_activations(model, {"frames": frames}, "x_stream.0", key="frames",
                             upsample=False)
    expected = model.x_stream[0](frames)[0].detach().numpy()
    assert (expected < 0).any()  # the in-place ReLU after it must not have changed the copy
    np.testing.assert_allclose(acts["x_stream.0"], expected, rtol=1e-5, atol=1e-6)


def test_unknown_layer_is_an_input_error():
    with pytest.raises(InputError, match="conv"):
        layer_activations(RegionModel(), _region_item(), "nope")


def test_two_streams_get_one_map_each():
    model = TwoStream()
    frames = {"frames": torch.randn(1, 3, 16, 16)}
    assert list_conv_layers(model) == ["x_stream.0", "x_stream.2", "dx_stream.0", "dx_stream.2"]
    acts = layer_activations(model, frames, key="frames")
    assert sorted(acts) == ["dx_stream.0", "x_stream.0"]
    score_fn, _ = make_score_fn(_Proportion(), model(**frames), None, logit=True)
    cams = gradcam(model, frames, score_fn, key="frames")
    assert sorted(cams) == ["dx_stream.2", "x_stream.2"]
    assert all(c.shape == (16, 16) for c in cams.values())
    res = explain(model, _Proportion(), frames, "gradcam")
    np.testing.assert_allclose(res["map"], cams["x_stream.2"] + cams["dx_stream.2"], rtol=1e-5)


def test_trace_occlusion_peaks_in_the_known_window():
    rng = np.random.default_rng(0)
    trace = rng.normal(0, 0.1, (1, 100)).astype(np.float32)
    trace[0, 45:55] += 3.0  # a transient inside the window the model reads
    trace[0, 10:20] += 3.0  # and one outside it
    item = {"image": torch.zeros(1, 1, 8, 8), "trace": torch.from_numpy(trace)}
    model = TraceWindowModel()
    score_fn, _ = make_score_fn(get_task("celltype"), model(**item), 1)
    imp = trace_occlusion(model, item, score_fn, window=10, stride=5)
    assert imp.shape == (100,)
    assert 40 <= int(np.argmax(imp)) < 60
    assert np.abs(imp[:30]).max() < 1e-6 and np.abs(imp[70:]).max() < 1e-6
    # through the API: the image map is flat, the trace importance is returned too
    res = explain(model, get_task("celltype"), item, "occlusion", target=1)
    assert res["trace_importance"].shape == (100,)
    assert 40 <= int(np.argmax(res["trace_importance"])) < 60
    assert np.abs(res["map"]).max() < 1e-6


def test_default_patch_and_positions_cover_the_edges():
    assert default_patch(128) == (16, 8)
    assert default_patch(40) == (5, 2)
    p = positions(10, 4, 3)
    assert list(p) == [0, 3, 6]
    assert list(positions(11, 4, 3)) == [0, 3, 6, 7]
    with pytest.raises(InputError):
        occlusion_map(RegionModel(), _region_item(), lambda lg: lg[:, 0], patch=-2, stride=1)


def test_numpy_inputs_without_batch_axis():
    model = RegionModel()
    x = _region_item(5)["image"][0].numpy()
    res = explain(model, "celltype", {"image": x}, "occlusion", patch=4, stride=4)
    assert res["map"].shape == (32, 32) and res["target"] == 1
    peak = np.unravel_index(np.argmax(res["map"]), res["map"].shape)
    assert _inside_box((32, 32))[peak]


def test_3d_convs_give_2d_maps_and_incremental_falls_back_exactly():
    from _explain_models import TinyC3D

    torch.manual_seed(0)
    model = TinyC3D()
    item = {"frames": torch.randn(1, 5, 20, 20)}
    task = _Proportion()
    for method, shape in (("gradcam", (20, 20)), ("activations", (4, 20, 20)),
                          ("occlusion", (20, 20))):
        res = explain(model, task, item, method, patch=5, stride=5)
        assert res["map"].shape == shape, method
    acts = layer_activations(model, item, "conv", key="frames")["conv"]
    manual = model.conv(item["frames"].unsqueeze(1))[0].mean(dim=1).detach().numpy()
    np.testing.assert_allclose(acts, manual, rtol=1e-5, atol=1e-6)
    score_fn, _ = make_score_fn(task, model(**item), None)
    a = occlusion_map(model, item, score_fn, patch=5, stride=5, key="frames",
                      incremental=None)
    b = occlusion_map(model, item, score_fn, patch=5, stride=5, key="frames",
                      incremental=False)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_models_without_conv_layers_get_a_clear_error():
    class Mlp(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(2 * 8 * 8, 3)

        def forward(self, image):
            return self.fc(image.flatten(1))

    item = {"image": torch.randn(1, 2, 8, 8)}
    for method in ("gradcam", "activations"):
        with pytest.raises(InputError, match="no 2-D/3-D conv layer"):
            explain(Mlp(), "celltype", item, method)
    assert explain(Mlp(), "celltype", item, "occlusion", patch=4)["map"].shape == (8, 8)
