"""Write-back changes only what a person decided: Suite2p's own labels and probabilities stay
for every ROI nobody curated (unless ``--model-decides``), partial predictions leave the
other planes alone, ``combined/`` follows the planes, and a broken ``iscell.npy`` is refused
before anything is backed up. Synthetic Suite2p folders laid out as Suite2p writes them."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_cellcurator.cli import main
from napari_cellcurator.core.errors import InputError, InputWarning

PLANE0 = np.array([[1, .9], [0, .2], [1, .7], [1, .8]])
PLANE1 = np.array([[1, .9], [0, .2], [1, .7]])


def make_plane(plane: Path, iscell: np.ndarray, size: int = 24, frames: int = 60) -> Path:
    """A Suite2p plane folder: stat/F/Fneu/iscell/ops .npy, one small square ROI per row."""
    plane.mkdir(parents=True)
    rng = np.random.default_rng(len(iscell))
    stat = np.empty(len(iscell), dtype=object)
    for i in range(len(iscell)):
        yy, xx = np.mgrid[2 + 5 * i:5 + 5 * i, 3:6]
        stat[i] = {"ypix": yy.ravel(), "xpix": xx.ravel(), "lam": np.ones(yy.size, np.float32),
                   "med": [3 + 5 * i, 4], "npix": yy.size}
    np.save(plane / "stat.npy", stat, allow_pickle=True)
    f = rng.normal(100, 5, (len(iscell), frames)).astype(np.float32)
    np.save(plane / "F.npy", f)
    np.save(plane / "Fneu.npy", f * 0.5)
    np.save(plane / "iscell.npy", np.asarray(iscell, np.float64))
    ops = {"Ly": size, "Lx": size, "fs": 10.0,
           "meanImg": rng.random((size, size)).astype(np.float32)}
    np.save(plane / "ops.npy", ops, allow_pickle=True)
    return plane


def _items(data: Path):
    from napari_cellcurator.core.tasks import get_task

    return get_task("cellness").read_many([data])


def predict_all_not_cell(data: Path, out: Path, only: str | None = None) -> Path:
    """A prediction table like ``cellcurator predict``'s: every ROI not_cell, P(cell) 0.1
    (the shipped model on real Suite2p data); ``only`` keeps the items of one plane."""
    table = _items(data).table
    if only:
        table = table[table["source"].astype(str).str.endswith(only)]
    pd.DataFrame({"item_id": table["item_id"].astype(str), "prediction": "not_cell",
                  "probability": 0.9, "prob_cell": 0.1, "prob_not_cell": 0.9}
                 ).to_csv(out, index=False)
    return out


@pytest.fixture
def plane(tmp_path) -> Path:
    return make_plane(tmp_path / "rec" / "plane0", PLANE0)


@pytest.fixture
def two_planes(tmp_path) -> Path:
    root = tmp_path / "rec" / "suite2p"
    make_plane(root / "plane0", PLANE0)
    make_plane(root / "plane1", PLANE1)
    return root


def _export(data: Path, project: Path, *extra: str, model_decides: bool = False) -> int:
    """``cellcurator export`` (through its command function, ``--model-decides`` included)."""
    from napari_cellcurator._cli_curation import _cmd_export

    args = argparse.Namespace(data=str(data), project=str(project), task=None, user="ana",
                              predictions=None, out=None, write_back=False,
                              model_decides=model_decides)
    for flag, value in zip(extra[::2], extra[1::2], strict=True):
        setattr(args, flag.lstrip("-").replace("-", "_"), value)
    return _cmd_export(args)


# --- 1. the model does not overrule the pipeline unless asked -----------------------------

def test_write_back_keeps_the_pipeline_labels_of_uncurated_rois(plane, tmp_path, capsys):
    preds = predict_all_not_cell(plane, tmp_path / "preds.csv")
    project = ["--data", str(plane), "--project", str(tmp_path / "proj")]
    assert main(["labels", *project, "--set", "rec/plane0:1", "cell"]) == 0
    assert main(["export", *project, "--predictions", str(preds), "--write-back"]) == 0
    assert "keep the pipeline's own label" in capsys.readouterr().out
    new = np.load(plane / "iscell.npy")
    expected = PLANE0.copy()
    expected[1] = [1, 1]  # the person's label, with certainty
    np.testing.assert_array_equal(new, expected)


def test_csv_export_shows_the_pipeline_label_for_uncurated_rois(plane, tmp_path):
    preds = predict_all_not_cell(plane, tmp_path / "preds.csv")
    out = tmp_path / "curated.csv"
    assert _export(plane, tmp_path / "proj", "--predictions", str(preds), "--out", str(out)) == 0
    table = pd.read_csv(out)
    assert list(table["curated"]) == ["cell", "not_cell", "cell", "cell"]
    assert (table["curated_from"] == "label").all()
    assert (table["prediction"] == "not_cell").all()  # the model's output is still there


def test_model_decides_is_an_opt_in_and_says_what_it_changed(plane, tmp_path, capsys):
    from napari_cellcurator._cli_curation import MODEL_DECIDES_HELP, add_model_decides_arg

    preds = predict_all_not_cell(plane, tmp_path / "preds.csv")
    assert main(["export", "--data", str(plane), "--project", str(tmp_path / "proj"),
                 "--predictions", str(preds), "--write-back", "--model-decides"]) == 0
    assert "the model changed 3 of the pipeline's own labels" in capsys.readouterr().out
    np.testing.assert_allclose(np.load(plane / "iscell.npy"), [[0, .1]] * 4)
    parser = argparse.ArgumentParser()
    add_model_decides_arg(parser)
    assert parser.parse_args([]).model_decides is False
    assert parser.parse_args(["--model-decides"]).model_decides is True
    assert MODEL_DECIDES_HELP == ("uncurated items take the model's prediction instead of "
                                  "the pipeline's own label")


def test_expert_labels_still_beat_the_model_when_it_decides():
    from napari_cellcurator.core.curation import curated_table, model_changes

    items = pd.DataFrame({"item_id": ["a", "b"], "label": ["cell", "cell"],
                          "label_origin": ["expert", None]})
    preds = pd.DataFrame({"item_id": ["a", "b"], "prediction": ["not_cell"] * 2,
                          "probability": [0.9, 0.9]})
    table = curated_table(items, preds, None, model_over_file_labels=True)
    assert list(table["curated"]) == ["cell", "not_cell"] and model_changes(table) == 1
    assert list(curated_table(items, preds, None)["curated"]) == ["cell", "cell"]


def make_caiman(path: Path, dims=(20, 24), t=50, good=(0, 2), bad=(1,)) -> Path:
    """A CaImAn results HDF5: sparse ``estimates/A`` (pixels in Fortran order), ``C``,
    ``YrA`` and CaImAn's own classification ``idx_components`` / ``idx_components_bad``."""
    h5py = pytest.importorskip("h5py")
    k = len(good) + len(bad)
    a = np.zeros((dims[0] * dims[1], k), np.float32)
    for j, (cy, cx) in enumerate([(5, 5), (10, 15), (15, 6)][:k]):
        img = np.zeros(dims, np.float32)
        img[cy - 2:cy + 3, cx - 2:cx + 3] = 1 + j
        a[:, j] = img.ravel(order="F")
    nz = [np.flatnonzero(a[:, j]) for j in range(k)]
    with h5py.File(path, "w") as fh:
        fh["dims"] = np.array(dims)
        est = fh.create_group("estimates")
        est["A/data"] = np.concatenate([a[n, j] for j, n in enumerate(nz)])
        est["A/indices"] = np.concatenate(nz).astype(np.int32)
        est["A/indptr"] = np.cumsum([0, *map(len, nz)]).astype(np.int32)
        est["A/shape"] = np.array([dims[0] * dims[1], k])
        est["C"] = np.random.default_rng(0).random((k, t)).astype(np.float32)
        est["YrA"] = np.zeros((k, t), np.float32)
        est["idx_components"] = np.array(good)
        est["idx_components_bad"] = np.array(bad)
    return path


def test_caiman_write_back_keeps_caimans_own_classification(tmp_path):
    h5py = pytest.importorskip("h5py")
    results = make_caiman(tmp_path / "results.hdf5")
    preds = predict_all_not_cell(results, tmp_path / "preds.csv")
    project = ["--data", str(results), "--project", str(tmp_path / "proj")]
    ids = _items(results).table["item_id"].astype(str).tolist()
    assert main(["labels", *project, "--set", ids[1], "cell"]) == 0
    assert main(["export", *project, "--predictions", str(preds), "--write-back"]) == 0
    with h5py.File(results, "r") as fh:
        assert list(fh["estimates/idx_components"][()]) == [0, 1, 2]
        assert list(fh["estimates/idx_components_bad"][()]) == []


# --- 2. partial predictions keep the other planes' probabilities --------------------------

@pytest.mark.parametrize("model_decides", [False, True])
def test_partial_predictions_leave_the_other_plane_untouched(two_planes, tmp_path,
                                                             model_decides):
    preds = predict_all_not_cell(two_planes, tmp_path / "pp0.csv", only="plane0")
    assert _export(two_planes, tmp_path / "proj", "--predictions", str(preds),
                   "--write_back", True, model_decides=model_decides) == 0
    np.testing.assert_array_equal(np.load(two_planes / "plane1" / "iscell.npy"), PLANE1)
    plane0 = np.load(two_planes / "plane0" / "iscell.npy")
    np.testing.assert_array_equal(plane0, [[0, .1]] * 4 if model_decides else PLANE0)


def test_curated_predictions_one_hot_only_for_a_persons_labels():
    from napari_cellcurator.core.curation import curated_predictions, curated_table

    items = pd.DataFrame({"item_id": ["a", "b", "c"], "label": ["cell"] * 3})
    preds = pd.DataFrame({"item_id": ["a", "b", "c"], "prediction": ["not_cell"] * 3,
                          "probability": [0.8] * 3, "prob_cell": [0.2] * 3})
    journal = pd.DataFrame({"item_id": ["a"], "label": ["not_cell"], "source": ["human"]})
    out = curated_predictions(curated_table(items, preds, journal))
    assert out["prob_cell"].iloc[0] == 0.0 and out["probability"].iloc[0] == 1.0
    assert out["prob_cell"].iloc[1:].isna().all()  # the file's own probability is kept
    model = curated_predictions(curated_table(items, preds, journal,
                                              model_over_file_labels=True))
    assert list(model["prob_cell"]) == [0.0, 0.2, 0.2]


# --- 3. combined/ follows the planes -------------------------------------------------------

def _with_combined(root: Path, rows: np.ndarray) -> Path:
    make_plane(root / "combined", rows)
    return root / "combined"


def test_write_back_rebuilds_combined_in_plane_order(tmp_path):
    root = tmp_path / "rec" / "suite2p"
    make_plane(root / "plane9", PLANE0)  # natural order: plane9 before plane10
    make_plane(root / "plane10", PLANE1)
    combined = _with_combined(root, np.vstack([PLANE0, PLANE1]))
    project = ["--data", str(root), "--project", str(tmp_path / "proj")]
    assert main(["labels", *project, "--set", "rec/suite2p/plane10:0", "not_cell"]) == 0
    assert main(["labels", *project, "--set", "rec/suite2p/plane9:1", "cell"]) == 0
    assert main(["export", *project, "--write-back"]) == 0
    expected = np.vstack([PLANE0, PLANE1])
    expected[1] = [1, 1]
    expected[len(PLANE0)] = [0, 0]
    np.testing.assert_array_equal(np.load(combined / "iscell.npy"), expected)
    backups = list(combined.glob("iscell.bak-*.npy"))
    assert len(backups) == 1
    np.testing.assert_array_equal(np.load(backups[0]), np.vstack([PLANE0, PLANE1]))


def test_combined_with_other_rows_is_left_with_a_warning(two_planes, tmp_path):
    combined = _with_combined(two_planes, PLANE0)  # 4 rows, the planes have 7
    before = (combined / "iscell.npy").read_bytes()
    project = ["--data", str(two_planes), "--project", str(tmp_path / "proj")]
    assert main(["labels", *project, "--set", "rec/suite2p/plane1:0", "not_cell"]) == 0
    with pytest.warns(InputWarning, match=r"combined: not updated .*4 rows .* 7"):
        assert _export(two_planes, tmp_path / "proj", "--write_back", True) == 0
    assert (combined / "iscell.npy").read_bytes() == before
    assert not list(combined.glob("iscell.bak-*"))
    assert np.load(two_planes / "plane1" / "iscell.npy")[0, 0] == 0


def test_single_plane_without_combined_writes_no_warning(plane, tmp_path):
    project = ["--data", str(plane), "--project", str(tmp_path / "proj")]
    assert main(["labels", *project, "--set", "rec/plane0:0", "not_cell"]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)
        assert _export(plane, tmp_path / "proj", "--write_back", True) == 0


# --- 4. iscell.npy checked before it is backed up -----------------------------------------

def test_iscell_with_other_rows_than_stat_is_refused_before_any_backup(plane):
    from napari_cellcurator.core.io.writeback import write_suite2p_iscell

    np.save(plane / "iscell.npy", PLANE0[:3])  # changed since it was read: 3 rows, 4 ROIs
    before = (plane / "iscell.npy").read_bytes()
    with pytest.raises(InputError, match=r"iscell\.npy: has 3 rows but .*stat\.npy has 4"):
        write_suite2p_iscell(plane, np.array([0]), np.array([True]), np.array([1.0]))
    assert not list(plane.glob("iscell.bak-*"))
    assert (plane / "iscell.npy").read_bytes() == before
