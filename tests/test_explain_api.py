"""explain_item / explain_batch on a model folder and a class-folder data set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.explain import explain_batch, explain_item, explain_iter
from napari_cellcurator.core.models.registry import build_model
from napari_cellcurator.core.store.modelio import ModelConfig, save_model
from napari_cellcurator.core.tasks import ReadOptions, get_task

SIZE = 24


@pytest.fixture(scope="module")
def model_and_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    data = root / "data"
    rng = np.random.default_rng(0)
    for cls in ("round", "spiky"):
        (data / cls).mkdir(parents=True)
        for i in range(3):
            img = (rng.random((2, SIZE, SIZE)) * 1000).astype(np.uint16)
            tifffile.imwrite(data / cls / f"{cls}_{i}.tif", img)
    task = get_task("celltype")
    items = task.read(data, ReadOptions())
    prep = task.fit_preprocessing(items, ReadOptions())
    classes = task.classes_from(items)
    spec = task.model_spec(prep, classes)
    torch.manual_seed(0)
    model = build_model("seedcnn", **spec)
    config = ModelConfig(task="celltype", arch="seedcnn", model_spec=spec, classes=classes,
                         preprocessing=prep)
    save_model(root / "model", model, config)
    return root / "model", data


@pytest.mark.parametrize("method,shape", [("occlusion", (SIZE, SIZE)),
                                          ("gradcam", (SIZE, SIZE)),
                                          ("activations", (32, SIZE, SIZE))])
def test_explain_item_writes_npy_with_the_items_shape(model_and_data, tmp_path, method, shape):
    model_dir, data = model_and_data
    out = tmp_path / f"{method}.npy"
    res = explain_item(model_dir, str(data), "spiky/spiky_1.tif", method, out=out)
    saved = np.load(out)
    assert saved.shape == shape and saved.dtype == np.float32
    np.testing.assert_array_equal(saved, res["map"])
    assert res["item_id"] == "spiky/spiky_1.tif"
    assert res["target_name"] in ("round", "spiky")
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temp files left


def test_tif_and_zarr_outputs_and_named_target(model_and_data, tmp_path):
    import zarr

    model_dir, data = model_and_data
    tif, zr = tmp_path / "m.tif", tmp_path / "m.zarr"
    a = explain_item(model_dir, str(data), "round/round_0.tif", "gradcam", target="round",
                     out=tif)
    assert a["target"] == 0 and a["target_name"] == "round"
    np.testing.assert_array_equal(tifffile.imread(tif), a["map"])
    b = explain_item(model_dir, str(data), "round/round_0.tif", "occlusion", target=1,
                     out=zr, patch=6, stride=3)
    arr = zarr.open_array(str(zr), mode="r")
    np.testing.assert_array_equal(arr[...], b["map"])
    assert arr.attrs["method"] == "occlusion" and arr.attrs["patch"] == 6
    assert arr.attrs["placement"] == b["placement"]  # where the map goes, with the map
    # overwriting an existing zarr swaps it whole
    explain_item(model_dir, str(data), "round/round_0.tif", "gradcam", out=zr)
    assert zarr.open_array(str(zr), mode="r").attrs["method"] == "gradcam"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tif", "m.zarr"]


def test_unknown_item_lists_valid_ids(model_and_data):
    model_dir, data = model_and_data
    with pytest.raises(InputError, match="no item 'nope'.*round/round_0.tif"):
        explain_item(model_dir, str(data), "nope", "gradcam")


def test_bad_suffix_and_target_are_input_errors(model_and_data, tmp_path):
    model_dir, data = model_and_data
    with pytest.raises(InputError, match="suffix"):
        explain_item(model_dir, str(data), "round/round_0.tif", "gradcam", out=tmp_path / "m.png")
    with pytest.raises(InputError, match="target"):
        explain_item(model_dir, str(data), "round/round_0.tif", "gradcam", target="oval")


def test_explain_batch_writes_one_zarr(model_and_data, tmp_path):
    import zarr

    model_dir, data = model_and_data
    ids = ["round/round_0.tif", "spiky/spiky_2.tif"]
    seen = []
    out = explain_batch(model_dir, str(data), ids, "gradcam", tmp_path / "all.zarr",
                        on_progress=lambda i, n: seen.append((i, n)))
    arr = zarr.open_array(str(out), mode="r")
    assert arr.shape == (2, SIZE, SIZE) and seen == [(1, 2), (2, 2)]
    assert arr.attrs["item_ids"] == ids
    single = explain_item(model_dir, str(data), ids[1], "gradcam")
    np.testing.assert_allclose(arr[1], single["map"], rtol=1e-5, atol=1e-7)
    assert arr.attrs["placements"][1] == single["placement"]
    with pytest.raises(InputError):
        explain_batch(model_dir, str(data), ["round/round_0.tif", "x"], "gradcam",
                      tmp_path / "bad.zarr")
    assert not (tmp_path / "bad.zarr").exists()


def test_explain_iter_can_be_cancelled(model_and_data):
    from napari_cellcurator.core.store.modelio import load_model

    model_dir, _ = model_and_data
    model, _ = load_model(model_dir)
    image = np.random.default_rng(1).normal(size=(2, SIZE, SIZE)).astype(np.float32)
    gen = explain_iter(model, "celltype", {"image": image}, "occlusion", patch=4, stride=1,
                       batch_size=16)
    frac, partial = next(gen)
    assert 0 < frac < 1 and partial.shape == (SIZE, SIZE)
    gen.close()  # what the widget's cancel does


JURKAT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "celltype" / "jurkat_ifc"


@pytest.fixture
def jurkat_subset(tmp_path):
    if not JURKAT.is_dir():
        pytest.skip("shared Jurkat data not available")
    import shutil

    for cls in ("G1", "Metaphase"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for f in sorted((JURKAT / cls).glob("*.tif"))[:3]:
            shutil.copy(f, tmp_path / "data" / cls / f.name)
    return tmp_path / "data"


def test_real_jurkat_crop_bright_and_dark_field(jurkat_subset, tmp_path):
    """Real (3, 40, 40) IFC crops, label-free channels 0 and 2: the map has the crop's shape."""
    task = get_task("celltype")
    options = ReadOptions(channels=[0, 2])
    items = task.read(jurkat_subset, options)
    prep = task.fit_preprocessing(items, options)
    classes = task.classes_from(items)
    spec = task.model_spec(prep, classes)
    torch.manual_seed(0)
    save_model(tmp_path / "model", build_model("resnet", **spec),
               ModelConfig(task="celltype", arch="resnet", model_spec=spec, classes=classes,
                           preprocessing=prep, channels=[0, 2]))
    item = items.table["item_id"].iloc[-1]
    out = tmp_path / "occ.npy"
    res = explain_item(tmp_path / "model", str(jurkat_subset), item, "occlusion", out=out)
    assert np.load(out).shape == (40, 40)
    assert (res["patch"], res["stride"]) == (5, 2)
    assert np.abs(res["map"]).max() > 0  # hiding parts of a real cell changes the output


def test_cli_explain_writes_the_map_and_reports_unknown_ids(model_and_data, tmp_path, capsys):
    from napari_cellcurator.cli import main

    model_dir, data = model_and_data
    out = tmp_path / "cam.npy"
    rc = main(["explain", "--model", str(model_dir), "--data", str(data), "--item",
               "round/round_2.tif", "--method", "gradcam", "--target", "spiky", "--out", str(out)])
    assert rc == 0 and np.load(out).shape == (SIZE, SIZE)
    rc = main(["explain", "--model", str(model_dir), "--data", str(data), "--item", "nope",
               "--method", "occlusion", "--out", str(tmp_path / "x.npy")])
    err = capsys.readouterr().err
    assert rc == 2 and "no item 'nope'" in err and "round/round_0.tif" in err
    assert not (tmp_path / "x.npy").exists()
