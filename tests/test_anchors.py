"""Labels follow cells, not ROI numbers: a segmentation run again (Suite2p with other settings)
renumbers its ROIs, and a label saved under ``plane0:3`` must not land on the cell that is now
number 3 — not in the view, not in training and not in ``iscell.npy``."""

from __future__ import annotations

import sqlite3
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_cellcurator.cli import main
from napari_cellcurator.core.anchors import item_anchors, reconcile_anchors, same_place
from napari_cellcurator.core.errors import InputWarning
from napari_cellcurator.core.store.journal import LabelJournal, read_current_labels

sys.path.insert(0, str(Path(__file__).parent / "reliability"))
from _reliability_helpers import roi_stat  # noqa: E402


def _square(y0: int, x0: int, side: int = 5) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.meshgrid(np.arange(side) + y0, np.arange(side) + x0, indexing="ij")
    return yy.ravel(), xx.ravel()


#: six ROIs of a first Suite2p run: (top, left) of 5×5 squares, far apart
FIRST_RUN = [(4, 4), (4, 30), (4, 50), (30, 4), (30, 30), (50, 50)]


def _write_plane(plane: Path, corners: list[tuple[int, int]], is_cell: list[bool]) -> None:
    """A Suite2p plane with these ROIs; traces tell the ROIs apart (ROI at (y0, x0) has a
    transient at frame y0 + x0)."""
    plane.mkdir(parents=True, exist_ok=True)
    n, t = len(corners), 120
    f = np.full((n, t), 100.0, np.float32)
    for i, (y0, x0) in enumerate(corners):
        f[i, y0 + x0:y0 + x0 + 4] += 50
    np.save(plane / "stat.npy", roi_stat([_square(*c) for c in corners]), allow_pickle=True)
    np.save(plane / "F.npy", f)
    np.save(plane / "Fneu.npy", 0.3 * f)
    np.save(plane / "iscell.npy", np.c_[is_cell, np.where(is_cell, 0.9, 0.1)].astype(float))
    np.save(plane / "ops.npy", np.array({"Ly": 64, "Lx": 64}, dtype=object), allow_pickle=True)


def test_same_place_allows_a_small_shift_and_size_change_only():
    a = np.array([[10.0, 10.0, 80]])
    assert same_place(a, np.array([[11.5, 10.0, 70]]))[0]      # re-run jitter
    assert not same_place(a, np.array([[16.0, 10.0, 80]]))[0]  # the neighbour
    assert not same_place(a, np.array([[10.0, 10.0, 300]]))[0]  # merged with others


def test_anchors_only_for_roi_tables():
    rois = pd.DataFrame({"item_id": ["p:0", "p:1"], "y": [3.0, np.nan], "x": [4.25, 1.0],
                         "npix": [25, 9]})
    assert item_anchors(rois) == ["3.0 4.2 25", None]
    assert item_anchors(pd.DataFrame({"item_id": ["a.tif"], "label": ["G1"]})) is None


def test_journal_records_anchors_and_old_journals_read_and_upgrade(tmp_path):
    path = tmp_path / "labels.sqlite"
    with LabelJournal(path, user="ana") as journal:
        journal.set_labels(["p:0", "p:1"], ["cell", "not_cell"], anchors=["1.0 2.0 9", None])
        journal.set_label("p:2", "cell")
        current = journal.current_labels().set_index("item_id")["anchor"]
        assert current["p:0"] == "1.0 2.0 9" and current[["p:1", "p:2"]].isna().all()
        assert journal.history("p:0")["anchor"].tolist() == ["1.0 2.0 9"]
    # a journal written before anchors existed: no anchors table
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE anchors")
    conn.close()
    before = path.read_bytes()
    old = read_current_labels(path)  # read-only: the file stays as it was
    assert old["anchor"].isna().all() and len(old) == 3 and path.read_bytes() == before
    with LabelJournal(path, user="ana") as journal:  # opened for writing: upgraded
        journal.set_label("p:3", "cell", anchor="5.0 5.0 25")
        assert journal.label_of("p:0") == "cell"
        assert journal.current_labels_of(["p:3"])["anchor"].tolist() == ["5.0 5.0 25"]


def test_reconcile_moves_labels_with_their_roi_and_drops_vanished_ones():
    now = pd.DataFrame({"item_id": ["p:0", "p:1", "p:2"], "y": [50.0, 6.0, 30.0],
                        "x": [50.0, 6.0, 6.0], "npix": [25, 25, 25]})
    labels = pd.DataFrame({"item_id": ["p:0", "p:1", "p:2", "q:9"],
                           "label": ["a", "b", "c", "d"], "source": "human",
                           "anchor": ["6.0 6.0 25", "6.0 32.0 25", "30.0 6.0 25", "1 1 1"]})
    with pytest.warns(InputWarning, match="2 label.*follow their cell.*match no ROI"):
        out, report = reconcile_anchors(now, labels)
    assert report == {"moved": {"p:0": "p:1"}, "unplaced": ["p:1"], "superseded": [],
                      "edited": []}
    assert dict(zip(out["item_id"], out["label"], strict=True)) == {
        "p:2": "c", "q:9": "d", "p:1": "a"}  # other data's labels are left as they are
    # labels without anchors (an older journal) are taken as they were
    same, report = reconcile_anchors(now, labels.assign(anchor=None))
    assert same is not None and report == {"moved": {}, "unplaced": [], "superseded": [],
                                           "edited": []}
    # the moved ROI labelled again under its new id: that label stands, quietly
    relabelled = pd.DataFrame({"item_id": ["p:1"], "label": ["e"], "source": "human",
                               "anchor": ["6.0 6.0 25"]})
    again = pd.concat([labels.iloc[[0, 2, 3]], relabelled], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, report = reconcile_anchors(now, again)
    assert report["superseded"] == ["p:0"] and not report["moved"]
    assert dict(zip(out["item_id"], out["label"], strict=True)) == {
        "p:1": "e", "p:2": "c", "q:9": "d"}


def test_a_roi_reshaped_under_its_id_keeps_its_label_quietly():
    """A person paints an ROI bigger in napari (same id, centroid 2.5 px off, 1.8× the
    pixels; no other ROI there): the label stays. A far-off ROI under the id does not get
    it."""
    labels = pd.DataFrame({"item_id": ["p:0", "p:1"], "label": ["cell", "not_cell"],
                           "source": "human", "anchor": ["20.0 20.0 40", "40.0 40.0 40"]})
    now = pd.DataFrame({"item_id": ["p:0", "p:1"], "y": [22.5, 12.0], "x": [20.0, 50.0],
                        "npix": [72, 40]})
    with pytest.warns(InputWarning, match="1 label.*match no ROI now.*'p:1'"):
        out, report = reconcile_anchors(now, labels)
    assert report["edited"] == ["p:0"] and report["unplaced"] == ["p:1"]
    assert dict(zip(out["item_id"], out["label"], strict=True)) == {"p:0": "cell"}


def test_labels_follow_cells_when_suite2p_is_run_again(tmp_path, capsys):
    """Label two ROIs, re-run 'Suite2p' (ROIs in another order, one gone, one new), export
    and write back: each person's label lands on its own cell, the vanished ROI's label on
    none, and the journal keeps what was said."""
    plane = tmp_path / "rec" / "plane0"
    _write_plane(plane, FIRST_RUN, [True, False, True, False, True, False])
    common = ["--data", str(plane), "--project", str(tmp_path / "proj")]
    assert main(["labels", *common, "--set", "rec/plane0:0", "not_cell"]) == 0  # was cell
    assert main(["labels", *common, "--set", "rec/plane0:3", "cell"]) == 0  # was not cell
    assert main(["labels", *common, "--set", "rec/plane0:5", "cell"]) == 0  # was not cell

    # the second run: reversed order, ROI (30, 4) gone, a new ROI, the rest shifted by 1 px
    second = [(50, 51), (30, 31), (4, 51), (4, 31), (20, 20), (4, 5)]
    _write_plane(plane, second, [False, True, True, False, False, True])
    with pytest.warns(InputWarning, match=r"follow their cell.*match no ROI now"):
        assert main(["export", *common, "--out", str(tmp_path / "curated.csv")]) == 0
    table = pd.read_csv(tmp_path / "curated.csv", dtype={"item_id": str}).set_index("item_id")
    assert table.loc["rec/plane0:5", "curated"] == "not_cell"  # the cell first labelled at 0
    assert table.loc["rec/plane0:5", "label_source"] == "human"
    assert table.loc["rec/plane0:0", "curated"] == "cell"  # first labelled at 5
    # nobody labelled the ROIs now numbered 3 and 0 as they are: Suite2p's own decisions stand
    assert table.loc["rec/plane0:3", "label_source"] == "file"
    assert (table["label_source"] == "human").sum() == 2

    with pytest.warns(InputWarning, match="follow their cell"):
        assert main(["export", *common, "--write-back"]) == 0
    iscell = np.load(plane / "iscell.npy")
    np.testing.assert_array_equal(iscell[:, 0], [1, 1, 1, 0, 0, 0])
    with LabelJournal(tmp_path / "proj" / "labels.sqlite") as journal:
        assert len(journal) == 3  # nothing rewritten
        assert journal.label_of("rec/plane0:3") == "cell"


def test_predictions_of_the_earlier_rois_are_refused(tmp_path, capsys):
    """A prediction table made before the re-run would put ROI 0's prediction on another
    cell: `export` says so (one line, exit 2) and writes nothing."""
    plane = tmp_path / "rec" / "plane0"
    _write_plane(plane, FIRST_RUN, [True, False, True, False, True, False])
    model = (Path(__file__).resolve().parents[1] / "src" / "napari_cellcurator" / "core"
             / "pretrained" / "cellness_twobranch")
    preds = tmp_path / "preds.csv"
    assert main(["predict", "--model", str(model), "--data", str(plane), "--out",
                 str(preds)]) == 0
    common = ["--data", str(plane), "--project", str(tmp_path / "proj")]
    assert main(["export", *common, "--predictions", str(preds), "--out",
                 str(tmp_path / "ok.csv")]) == 0
    _write_plane(plane, FIRST_RUN[::-1], [False, True, False, True, False, True])
    capsys.readouterr()
    before = np.load(plane / "iscell.npy")
    assert main(["export", *common, "--predictions", str(preds), "--write-back"]) == 2
    err = capsys.readouterr().err
    assert "preds.csv" in err and "not where they are now" in err and "predict" in err
    np.testing.assert_array_equal(np.load(plane / "iscell.npy"), before)


def test_write_back_refuses_a_plane_segmented_again_since_it_was_read(tmp_path):
    """Items read (napari open), Suite2p run again, then Write back: iscell.npy would get the
    decisions of other cells, so nothing is written and the error names stat.npy."""
    from napari_cellcurator.core.errors import InputError
    from napari_cellcurator.core.tasks import ReadOptions, get_task

    task = get_task("cellness")
    plane = tmp_path / "rec" / "plane0"
    _write_plane(plane, FIRST_RUN, [True] * 6)
    items = task.read_many([str(plane)], ReadOptions())
    preds = pd.DataFrame({"item_id": items.table["item_id"], "prediction": "not_cell",
                          "probability": 0.9, "prob_cell": 0.1, "prob_not_cell": 0.9})
    _write_plane(plane, FIRST_RUN[::-1], [True] * 6)
    before = np.load(plane / "iscell.npy")
    with pytest.raises(InputError, match=r"stat\.npy.*changed since it was read"):
        task.write_back(items, preds, plane)
    np.testing.assert_array_equal(np.load(plane / "iscell.npy"), before)
    assert not list(plane.glob("iscell.bak-*"))
    # the same ROIs written again by Suite2p (same places): written as usual
    _write_plane(plane, FIRST_RUN, [True] * 6)
    task.write_back(items, preds, plane)
    assert (np.load(plane / "iscell.npy")[:, 0] == 0).all()
