"""Audit: Suite2p output folders as users hand them over — the ``suite2p/`` root of a
multi-plane run, a plane folder, the recording folder above ``suite2p/``, two recordings at
once, optional files missing, 0.x and 1.x — built from the real Suite2p folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.tasks import get_task

TASK = get_task("cellness")
N_ROIS = {"movie_100x100x100": 34, "792757260_test_data": 15}


@pytest.fixture(scope="module")
def s2p(shared_data) -> Path:
    return shared_data / "cellness"


def _copy_plane(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("data.bin"))
    for p in dst.iterdir():
        p.chmod(0o644)
    return dst


@pytest.fixture()
def multiplane(s2p, tmp_path) -> Path:
    """``rec/suite2p/plane0`` (34 ROIs), ``plane1`` (15 ROIs) and Suite2p's ``combined/``."""
    root = tmp_path / "rec" / "suite2p"
    for i, name in enumerate(N_ROIS):
        _copy_plane(s2p / "suite2p_1.1.0" / name / "plane0", root / f"plane{i}")
    _copy_plane(root / "plane0", root / "combined")
    return root


@pytest.mark.parametrize("level", ["suite2p", "recording"])
def test_multiplane_root_reads_every_plane_once(multiplane, level):
    path = multiplane if level == "suite2p" else multiplane.parent
    items = TASK.read_many([path])
    assert len(items) == 34 + 15  # combined/ is not read as a third plane
    assert items.table["item_id"].is_unique
    sources = items.table.groupby("source").size()
    assert sources.to_dict() == {str(multiplane / "plane0"): 34, str(multiplane / "plane1"): 15}


def test_plane_folder_alone(multiplane):
    items = TASK.read_many([multiplane / "plane1"])
    assert len(items) == 15 and set(items.table["source"]) == {str(multiplane / "plane1")}


def test_two_recordings_with_the_same_folder_names(s2p, tmp_path):
    paths = []
    for name in N_ROIS:
        _copy_plane(s2p / "suite2p_1.1.0" / name / "plane0", tmp_path / name / "suite2p" / "plane0")
        paths.append(tmp_path / name / "suite2p")
    items = TASK.read_many(paths)
    assert len(items) == 49 and items.table["item_id"].is_unique


def test_write_back_goes_to_each_plane(multiplane):
    items = TASK.read_many([multiplane])
    n = len(items)
    rng = np.random.default_rng(0)
    is_cell = rng.random(n) < 0.5
    preds = pd.DataFrame({"item_id": items.table["item_id"],
                          "prediction": np.where(is_cell, "cell", "not_cell"),
                          "probability": np.full(n, 0.9),
                          "prob_cell": np.where(is_cell, 0.9, 0.1)})
    combined_before = np.load(multiplane / "combined" / "iscell.npy")
    TASK.write_back(items, preds, None)
    for plane in ("plane0", "plane1"):
        rows = (items.table["source"] == str(multiplane / plane)).to_numpy()
        new = np.load(multiplane / plane / "iscell.npy")
        assert new.shape == (rows.sum(), 2)
        np.testing.assert_array_equal(new[:, 0], is_cell[rows])
        assert len(list((multiplane / plane).glob("iscell.bak-*.npy"))) == 1
    np.testing.assert_array_equal(np.load(multiplane / "combined" / "iscell.npy"),
                                  combined_before)
    # only plane1: plane0 keeps what it has
    before0 = np.load(multiplane / "plane0" / "iscell.npy")
    TASK.write_back(items, preds.assign(prediction="cell", prob_cell=1.0),
                    multiplane / "plane1")
    np.testing.assert_array_equal(np.load(multiplane / "plane0" / "iscell.npy"), before0)
    assert np.load(multiplane / "plane1" / "iscell.npy")[:, 0].all()


@pytest.mark.parametrize("missing", [("Fneu.npy",), ("spks.npy",), ("iscell.npy",),
                                     ("ops.npy",), ("Fneu.npy", "spks.npy", "iscell.npy")])
def test_optional_files_missing_1x(missing, s2p, tmp_path):
    plane = _copy_plane(s2p / "suite2p_1.1.0" / "792757260_test_data" / "plane0",
                        tmp_path / "plane0")
    full = TASK.read_many([plane])
    for name in missing:
        (plane / name).unlink()
    items = TASK.read_many([plane])
    assert len(items) == 15
    if "iscell.npy" in missing:
        assert items.table["label"].isna().all()
    else:
        assert list(items.table["label"]) == list(full.table["label"])
    if missing == ("ops.npy",):  # 1.x keeps Ly/Lx in db.npy, the images in reg/detect outputs
        assert items.meta["fov_shape"] == (100, 100)
        assert items.meta["mean_image"].shape == (100, 100)
        assert items.meta["images"]["Vcorr"].shape == (100, 100)
        np.testing.assert_array_equal(items.arrays["trace"], full.arrays["trace"])


@pytest.mark.parametrize("missing", ["Fneu.npy", "iscell.npy", "ops.npy", "spks.npy"])
def test_optional_files_missing_0x(missing, s2p, tmp_path):
    plane = _copy_plane(s2p / "suite2p_0.x" / "fissa_example" / "plane0", tmp_path / "plane0")
    (plane / missing).unlink()
    items = TASK.read_many([plane])
    assert len(items) == 23 and items.arrays["trace"].shape == (23, 864)


def test_required_file_missing_is_one_error(s2p, tmp_path):
    plane = _copy_plane(s2p / "suite2p_0.x" / "fissa_example" / "plane0",
                        tmp_path / "suite2p" / "plane0")
    (plane / "F.npy").unlink()
    with pytest.raises(InputError, match="missing F.npy") as err:
        TASK.read_many([tmp_path / "suite2p"])
    assert str(plane) in str(err.value)


def test_suite2p_folder_without_planes_names_what_it_wants(tmp_path):
    root = tmp_path / "suite2p"
    (root / "plane0").mkdir(parents=True)
    (root / "plane0" / "ops.npy").write_bytes(b"")
    with pytest.raises(InputError) as err:
        TASK.read_many([root])
    assert str(root) in str(err.value) and "stat.npy" in str(err.value)


def test_cli_train_on_a_multiplane_root_then_evaluate_and_predict(multiplane, tmp_path):
    import json

    import torch

    from napari_cellcurator.cli import main

    torch.set_num_threads(1)
    out, pred = tmp_path / "m", tmp_path / "p.csv"
    assert main(["train", "--task", "cellness", "--data", str(multiplane), "--out", str(out),
                 "--epochs", "1", "--batch-size", "16", "--device", "cpu"]) == 0
    assert json.loads((out / "config.json").read_text())["classes"] == ["not_cell", "cell"]
    assert main(["evaluate", "--model", str(out), "--data", str(multiplane.parent)]) == 0
    assert main(["predict", "--model", str(out), "--data", str(multiplane / "plane1"),
                 "--out", str(pred), "--device", "cpu"]) == 0
    assert len(pd.read_csv(pred)) == 15
