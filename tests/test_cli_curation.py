"""Curation from the command line: labels (set/undo/history/export), review order, export and
write-back of the curated result — the same journal and rules as the Curate widget."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_cellcurator.cli import main
from napari_cellcurator.core.curation import curated_table
from napari_cellcurator.core.store.journal import LabelJournal

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "napari_cellcurator" / "sample_data"
PRETRAINED = (Path(__file__).resolve().parents[1] / "src" / "napari_cellcurator" / "core"
              / "pretrained" / "cellness_twobranch")


@pytest.fixture
def plane(tmp_path) -> Path:
    """A writable copy of the bundled simulated Suite2p plane."""
    dest = tmp_path / "rec" / "plane0"
    shutil.copytree(SAMPLE / "cellness_sim" / "plane0", dest)
    return dest


@pytest.fixture
def predictions(plane, tmp_path, capsys) -> Path:
    """Real predictions of the shipped cellness model on the plane."""
    out = tmp_path / "preds.csv"
    assert main(["predict", "--model", str(PRETRAINED), "--data", str(plane), "--out",
                 str(out)]) == 0
    capsys.readouterr()
    return out


def test_labels_set_undo_history_export(plane, tmp_path, capsys):
    project = tmp_path / "proj"
    common = ["--data", str(plane), "--project", str(project), "--user", "ana"]
    assert main(["labels", *common, "--set", "rec/plane0:0", "cell"]) == 0
    assert main(["labels", *common, "--set", "rec/plane0:1", "not_cell"]) == 0
    assert main(["labels", *common, "--undo"]) == 0
    assert "undid rec/plane0:1 (not_cell)" in capsys.readouterr().out
    with LabelJournal(project / "labels.sqlite") as journal:
        current = journal.current_labels()
    assert list(current["item_id"]) == ["rec/plane0:0"] and list(current["user"]) == ["ana"]
    assert main(["labels", *common, "--history"]) == 0
    assert capsys.readouterr().out.count("ana") == 3  # set, set, undo
    assert main(["labels", *common, "--export", str(tmp_path / "labels.parquet")]) == 0
    assert list(pd.read_parquet(tmp_path / "labels.parquet")["label"]) == ["cell"]
    # an unknown item is refused, and nothing is written
    assert main(["labels", *common, "--set", "no-such-roi", "cell"]) == 2
    assert "no-such-roi" in capsys.readouterr().err
    with LabelJournal(project / "labels.sqlite") as journal:
        assert len(journal) == 3


def test_review_orders_unlabelled_items(plane, predictions, tmp_path, capsys):
    project = ["--data", str(plane), "--project", str(tmp_path / "proj")]
    preds = pd.read_csv(predictions, dtype={"item_id": str})
    most_uncertain = preds.loc[preds["uncertainty"].idxmax(), "item_id"]
    assert main(["review", *project, "--predictions", str(predictions), "--order", "uncertain",
                 "--out", str(tmp_path / "order.csv")]) == 0
    order = pd.read_csv(tmp_path / "order.csv", dtype={"item_id": str})
    assert len(order) == len(preds) and order["item_id"].iloc[0] == most_uncertain
    assert list(order["rank"]) == list(range(1, len(preds) + 1))
    # once labelled, the item leaves the queue (default) or goes last
    assert main(["labels", *project, "--set", most_uncertain, "cell"]) == 0
    assert main(["review", *project, "--predictions", str(predictions), "--top", "5",
                 "--out", str(tmp_path / "top.csv")]) == 0
    top = pd.read_csv(tmp_path / "top.csv", dtype={"item_id": str})
    assert len(top) == 5 and most_uncertain not in set(top["item_id"])
    assert main(["review", *project, "--predictions", str(predictions), "--include-labelled",
                 "--out", str(tmp_path / "all.csv")]) == 0
    assert pd.read_csv(tmp_path / "all.csv", dtype={"item_id": str})["item_id"].iloc[-1] \
        == most_uncertain


def test_export_and_write_back_the_curated_result(plane, predictions, tmp_path, capsys):
    project = ["--data", str(plane), "--project", str(tmp_path / "proj")]
    preds = pd.read_csv(predictions, dtype={"item_id": str})
    flip = preds["item_id"].iloc[0]
    human = "not_cell" if preds["prediction"].iloc[0] == "cell" else "cell"
    assert main(["labels", *project, "--set", flip, human]) == 0
    assert main(["export", *project, "--predictions", str(predictions), "--out",
                 str(tmp_path / "curated.csv")]) == 0
    table = pd.read_csv(tmp_path / "curated.csv", dtype={"item_id": str}).set_index("item_id")
    assert table.loc[flip, "curated"] == human and table.loc[flip, "curated_from"] == "label"
    rest = table.drop(index=flip)
    # by default the model does not overrule Suite2p's own labels (--model-decides does);
    # its prediction is still in the table
    assert (rest["curated_from"] == "label").all()
    assert (rest["curated"] == rest["label"]).all()
    assert (rest["prediction"] == preds.set_index("item_id").loc[rest.index, "prediction"]).all()

    original = np.load(plane / "iscell.npy")
    assert main(["export", *project, "--predictions", str(predictions), "--write-back"]) == 0
    assert len(list(plane.glob("iscell.bak-*.npy"))) == 1
    new = np.load(plane / "iscell.npy")
    assert new.shape == original.shape
    roi = table["roi_index"].astype(int)  # Suite2p keeps its own decisions ...
    expected = (table["curated"] == "cell").to_numpy()
    np.testing.assert_array_equal(new[roi.to_numpy(), 0].astype(bool), expected)
    others = np.delete(np.arange(len(new)), roi[flip])
    np.testing.assert_array_equal(new[others], original[others])
    assert new[roi[flip], 0] == (human == "cell")  # ... and the person's label beats both
    assert new[roi[flip], 1] == float(human == "cell")


def test_write_back_of_labels_alone_changes_only_what_was_curated(plane, tmp_path):
    """No model run: the person's labels go into iscell.npy; every other ROI keeps
    Suite2p's own decision and probability (this crashed on the missing probabilities)."""
    original = np.load(plane / "iscell.npy")
    rng = np.random.default_rng(0)
    original[:, 1] = np.where(original[:, 0] > 0, rng.uniform(0.5, 1, len(original)),
                              rng.uniform(0, 0.5, len(original)))
    np.save(plane / "iscell.npy", original)  # probabilities as Suite2p's classifier writes
    project = ["--data", str(plane), "--project", str(tmp_path / "proj")]
    human = "not_cell" if original[0, 0] > 0 else "cell"
    assert main(["labels", *project, "--set", "rec/plane0:0", human]) == 0
    assert main(["export", *project, "--write-back"]) == 0
    new = np.load(plane / "iscell.npy")
    np.testing.assert_array_equal(new[0], [float(human == "cell")] * 2)
    np.testing.assert_allclose(new[1:], original[1:])


def test_write_back_refuses_undecided_items_and_other_tasks(tmp_path, capsys):
    from napari_cellcurator.core.curation import write_back_curated
    from napari_cellcurator.core.errors import InputError
    from napari_cellcurator.core.tasks import ReadOptions, get_task

    plane = tmp_path / "plane0"
    shutil.copytree(SAMPLE / "cellness_sim" / "plane0", plane)
    before = (plane / "iscell.npy").read_bytes()
    task = get_task("cellness")
    items = task.read(plane, ReadOptions(extra={"suite2p_labels": "none"}))
    table = curated_table(items.table, None, pd.DataFrame(columns=["item_id", "label", "source"]),
                          model_over_file_labels=True)
    with pytest.raises(InputError, match="neither a label nor a prediction"):
        write_back_curated(task, items, table)
    assert (plane / "iscell.npy").read_bytes() == before
    crops = SAMPLE / "celltype" / "jurkat_small"
    code = main(["export", "--data", str(crops), "--project", str(tmp_path / "p"),
                 "--write-back"])
    assert code == 2 and "export CSV or Parquet" in capsys.readouterr().err


def test_curated_table_rules():
    items = pd.DataFrame({"item_id": ["a", "b", "c", "d"], "label": ["x", None, None, "y"]})
    preds = pd.DataFrame({"item_id": ["a", "b", "d"], "prediction": ["y", "y", "x"],
                          "probability": [0.6, 0.9, 0.7]})
    journal = pd.DataFrame({"item_id": ["d"], "label": ["z"], "source": ["human"]})
    # expert labels in the files beat the model; a person's label beats everything
    out = curated_table(items, preds, journal).set_index("item_id")
    assert out.loc["d", "curated"] == "z" and out.loc["d", "curated_from"] == "label"
    assert out.loc["a", "curated"] == "x" and out.loc["a", "curated_from"] == "label"
    assert out.loc["b", "curated"] == "y" and out.loc["b", "curated_from"] == "model"
    assert pd.isna(out.loc["c", "curated"]) and pd.isna(out.loc["c", "curated_from"])
    # labels that are another classifier's output give way to the model
    pipeline = curated_table(items, preds, journal, model_over_file_labels=True)
    assert list(pipeline["curated"].fillna("-")) == ["y", "y", "-", "z"]
    assert list(pipeline["curated_from"].fillna("-")) == ["model", "model", "-", "label"]
    no_model = curated_table(items, None, journal, model_over_file_labels=True)
    assert list(no_model["curated"].fillna("-")) == ["x", "-", "-", "z"]
    # ...except rows an expert labelled in such a format (Allen ROI JSON)
    expert = items.assign(label_origin=["expert", None, None, "expert"])
    mixed = curated_table(expert, preds, journal, model_over_file_labels=True)
    assert list(mixed["curated"].fillna("-")) == ["x", "y", "-", "z"]
    assert list(mixed["curated_from"].fillna("-")) == ["label", "model", "-", "label"]


def test_allen_labels_are_marked_as_an_experts(shared_data):
    from napari_cellcurator.core.tasks import ReadOptions, get_task

    allen = shared_data / "cellness" / "allen_croissant" / "train_rois.json"
    table = get_task("cellness").read(allen, ReadOptions()).table
    labelled = table["label"].notna()
    assert labelled.any() and (table.loc[labelled, "label_origin"] == "expert").all()


def test_prediction_file_item_ids_stay_text(tmp_path):
    from napari_cellcurator.cli import _read_predictions

    path = tmp_path / "p.csv"
    pd.DataFrame({"item_id": ["007", "010"], "prediction": ["a", "b"]}).to_csv(path, index=False)
    assert list(_read_predictions(str(path))["item_id"]) == ["007", "010"]


def test_human_labels_feed_the_review_order():
    from napari_cellcurator.core.triage import human_labels

    merged = pd.DataFrame({"item_id": ["a", "b", "c", "d"], "label": ["x", "x", "y", "z"],
                           "label_source": ["human", "human", "file", "human"]})
    ids, counts = human_labels(merged)
    assert ids == {"a", "b", "d"} and counts == {"x": 2, "z": 1}


def test_labels_set_refuses_a_label_that_is_no_class(plane, tmp_path, capsys):
    common = ["--data", str(plane), "--project", str(tmp_path / "proj")]
    assert main(["labels", *common, "--set", "rec/plane0:0", "Cell"]) == 2
    assert "'Cell' is not a cellness class" in capsys.readouterr().err
    # cellness has two classes, always
    assert main(["labels", *common, "--set", "rec/plane0:0", "dendrite", "--new-class"]) == 2
    with LabelJournal(tmp_path / "proj" / "labels.sqlite") as journal:
        assert len(journal) == 0


def test_labels_set_new_celltype_class_needs_new_class(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("G1", "G2"):
        (tmp_path / "crops" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(
                tmp_path / "crops" / cls / f"{i}.png")
    common = ["--data", str(tmp_path / "crops"), "--project", str(tmp_path / "proj"),
              "--task", "celltype"]
    assert main(["labels", *common, "--export", str(tmp_path / "none.csv")]) == 0
    items = pd.read_csv(tmp_path / "none.csv")  # empty journal, but the ids come from a read
    assert len(items) == 0
    from napari_cellcurator.core.tasks import ReadOptions, get_task

    ids = get_task("celltype").read_many([tmp_path / "crops"], ReadOptions()).table["item_id"]
    first, second = str(ids.iloc[0]), str(ids.iloc[1])
    assert main(["labels", *common, "--set", first, " G2 "]) == 0  # stray spaces dropped
    assert main(["labels", *common, "--set", second, "g2"]) == 2  # a typo is refused
    assert "'g2' is not one of the classes ['G1', 'G2']" in capsys.readouterr().err
    assert main(["labels", *common, "--set", second, "Mitosis", "--new-class"]) == 0
    with LabelJournal(tmp_path / "proj" / "labels.sqlite") as journal:
        labels = journal.current_labels().set_index("item_id")["label"]
    assert labels.to_dict() == {first: "G2", second: "Mitosis"}
    # once in the journal, the new class is known
    assert main(["labels", *common, "--set", first, "Mitosis"]) == 0


def test_mixture_labels_are_proportions():
    from napari_cellcurator.core.errors import InputError
    from napari_cellcurator.core.tasks import get_task

    task = get_task("mixture")
    assert task.check_label("0.250", []) == "0.25"
    for bad in ("1.5", "-0.1", "nan", "T98G"):
        with pytest.raises(InputError, match="not a proportion"):
            task.check_label(bad, [])
    # a type's name marks a pure snippet (as the prediction column names the majority type)
    known = ["T98G", "C2C12", "0.5"]
    assert task.check_label("t98g", known) == "0" and task.check_label("C2C12 ", known) == "1"
    with pytest.raises(InputError, match="'T98G' \\(0\\) / 'C2C12' \\(1\\)"):
        task.check_label("HeLa", known)


def test_predict_evaluate_explain_default_to_the_project_model_then_the_shipped_one(
        plane, tmp_path, capsys):
    """Without --model: the data's project's current version (what the widgets trained),
    else the model shipped for the task; a task with neither says what to do."""
    import tifffile

    from napari_cellcurator.core.store.project import Project

    out = tmp_path / "p.csv"
    assert main(["predict", "--data", str(plane), "--out", str(out)]) == 0
    assert "shipped for cellness" in capsys.readouterr().err
    shipped = pd.read_csv(out)
    project = Project.for_data(plane)
    version = project.models.add_folder(PRETRAINED)  # as the Train widget registers one
    assert main(["evaluate", "--data", str(plane), "--json"]) == 0
    assert f"current version {project.models.path(version)}" in capsys.readouterr().err
    assert main(["explain", "--data", str(plane), "--item", "rec/plane0:0", "--method",
                 "occlusion", "--out", str(tmp_path / "x.npy")]) == 0
    assert np.load(tmp_path / "x.npy").ndim >= 2
    assert len(shipped) == len(pd.read_csv(out))
    crops = tmp_path / "crops"
    for cls in ("G1", "G2"):
        (crops / cls).mkdir(parents=True)
        tifffile.imwrite(crops / cls / "x.tif", np.zeros((8, 8), np.uint8))
    assert main(["predict", "--data", str(crops), "--out", str(out)]) == 2
    assert "has no model yet" in capsys.readouterr().err
