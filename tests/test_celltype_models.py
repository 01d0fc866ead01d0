"""Cell-type models and the task's preprocessing: shapes, overfitting a tiny batch, augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_cellcurator.core.data.crops import (
    augment_crops,
    normalise_crops,
    normalise_per_cell,
    pad_to_square,
    resize_chw,
)
from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.models.registry import available_models, build_model
from napari_cellcurator.core.tasks import ReadOptions, get_task


def _separable_batch(n: int = 16, c: int = 2, s: int = 32, seed: int = 0):
    """Two classes that differ by a bright disc vs a dark ring (plus noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:s, :s] - s / 2
    r = np.hypot(yy, xx)
    x = rng.normal(0, 0.3, size=(n, c, s, s)).astype(np.float32)
    y = np.arange(n) % 2
    x[y == 0] += (r < s / 4)[None, None] * 1.0
    x[y == 1] -= ((r > s / 5) & (r < s / 3))[None, None] * 1.0
    return torch.from_numpy(x), torch.from_numpy(y)


@pytest.mark.parametrize("arch,size,extra", [("seedcnn", 16, {}), ("resnet", 16, {"width": 8}),
                                             ("resnet", 24, {"stem_stride": 2, "width": 8})])
def test_models_overfit_a_tiny_batch(arch, size, extra):
    torch.manual_seed(0)
    x, y = _separable_batch(n=8, s=size)
    model = build_model(arch, in_channels=2, n_outputs=2, input_size=size, **extra)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(40):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(image=x), y)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(image=x).argmax(1) == y).float().mean().item()
    assert loss.item() < 0.1
    assert acc == 1.0


def test_both_architectures_are_registered_for_celltype():
    assert {"seedcnn", "resnet"} <= set(available_models("celltype"))
    assert get_task("celltype").default_arch in available_models("celltype")


def test_seedcnn_follows_the_paper_layout():
    model = build_model("seedcnn", in_channels=3, n_outputs=4, input_size=48)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    pools = [m for m in model.modules() if isinstance(m, torch.nn.MaxPool2d)]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [c.kernel_size[0] for c in convs] == [11, 5, 3]  # 11×11 shrinking to 3×3
    assert len(pools) == 3 and len(linears) == 2
    assert model(image=torch.zeros(2, 3, 48, 48)).shape == (2, 4)


def test_stride2_stem_is_cheaper_and_keeps_output_shape():
    a = build_model("resnet", in_channels=3, n_outputs=5, input_size=48)
    b = build_model("resnet", in_channels=3, n_outputs=5, input_size=48, stem_stride=2)
    x = torch.randn(2, 3, 48, 48)
    assert a(image=x).shape == b(image=x).shape == (2, 5)
    assert b.features(x).shape[-1] == a.features(x).shape[-1] // 2


def test_normalisations():
    rng = np.random.default_rng(0)
    crops = rng.normal(5, 2, size=(4, 2, 8, 8)).astype(np.float32) * np.array([1, 10])[
        None, :, None, None]
    z = normalise_crops(crops, crops.mean(axis=(0, 2, 3)), crops.std(axis=(0, 2, 3)))
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3)), 1, atol=1e-4)
    # dataset statistics keep the brightness difference between cells; per-cell removes it
    brighter = crops.copy()
    brighter[1] *= 3
    dz = normalise_crops(brighter, [5, 50], [2, 20])
    assert dz[1].mean() > dz[0].mean() + 1
    pc = normalise_per_cell(brighter)
    np.testing.assert_allclose(pc.mean(axis=(2, 3)), 0, atol=1e-5)


def test_augment_keeps_shape_and_changes_content_but_not_the_batch():
    rng = np.random.default_rng(0)
    crops = rng.normal(size=(6, 2, 20, 20)).astype(np.float32)
    before = crops.copy()
    out = augment_crops(crops, rng, max_shift=2, noise=0.05, blur_p=1.0, gain=0.1)
    assert out.shape == crops.shape and out.dtype == np.float32
    np.testing.assert_array_equal(crops, before)  # input untouched
    assert not np.allclose(out, crops)
    # without noise/blur/gain/shift, a crop is one of its 8 dihedral copies
    plain = augment_crops(crops[:1], np.random.default_rng(3), max_shift=0, noise=0)
    dihedral = [np.rot90(c, k, axes=(1, 2)) for k in range(4) for c in (crops[0],
                                                                        crops[0][:, :, ::-1])]
    assert any(np.array_equal(plain[0], d) for d in dihedral)


def test_pad_to_square_and_resize_keep_aspect_and_size():
    arr = np.zeros((3, 10, 30), np.float32)
    arr[:, 3:7, 5:25] = 1.0
    sq = pad_to_square(arr)
    assert sq.shape == (3, 30, 30)
    assert sq.sum() == arr.sum()  # the cell is moved, not stretched
    assert resize_chw(sq, 48).shape == (3, 48, 48)


def _items(n=20, c=2, s=40, seed=0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    table = pd.DataFrame({"item_id": [f"i{i}" for i in range(n)], "source": "x",
                         "label": ["a", "b"] * (n // 2)})
    return ItemSet(table, {"image": rng.uniform(0, 1000, (n, c, s, s)).astype(np.float32)})


@pytest.mark.parametrize("norm", ["dataset", "cell"])
def test_task_preprocessing_and_batches(norm):
    task = get_task("celltype")
    items = _items()
    prep = task.fit_preprocessing(items, ReadOptions(channels=[0, 2], extra={"norm": norm}))
    assert prep["norm"] == norm and prep["input_size"] == 40 and prep["in_channels"] == 2
    batch = task.make_batch(items, np.arange(8), prep, augment=False,
                            rng=np.random.default_rng(0))["image"]
    assert batch.shape == (8, 2, 40, 40) and batch.dtype == torch.float32
    assert abs(float(batch.mean())) < 0.3
    spec = task.model_spec(prep, ["a", "b"])
    assert spec["stem_stride"] == 1
    model = build_model("resnet", **spec)
    assert model(**task.make_batch(items, np.arange(4), prep, True,
                                   np.random.default_rng(0))).shape == (4, 2)


def test_unknown_normalisation_is_a_clear_error():
    from napari_cellcurator.core.errors import InputError

    with pytest.raises(InputError, match="normalisation"):
        get_task("celltype").fit_preprocessing(_items(), ReadOptions(extra={"norm": "zscore"}))


def test_old_model_specs_without_norm_still_build():
    """Configs saved before ``norm``/``stem_stride`` existed rebuild the same network."""
    task = get_task("celltype")
    old_prep = {"input_size": 48, "in_channels": 3, "channel_mean": [0, 0, 0],
                "channel_std": [1, 1, 1]}
    spec = task.model_spec(old_prep, ["a", "b"])
    assert "stem_stride" not in spec
    assert build_model("resnet", **spec).stem[0].stride == (1, 1)
