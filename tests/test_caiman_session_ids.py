"""CaImAn sessions saved under one file name (``analysis_results.hdf5`` in every session
folder) read together keep distinct ids; labels and ids of the older ``<stem>:k`` form still
apply; recordings of different lengths get a hint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_formats_audit_caiman import plane, write_caiman_like  # noqa: F401 (fixture)

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.explain.api import find_item
from napari_cellcurator.core.io.items import FORMER_ID, ItemSet, concat_itemsets
from napari_cellcurator.core.tasks import ReadOptions, get_task
from napari_cellcurator.core.triage import merge_labels

TASK = get_task("cellness")


@pytest.fixture()
def two_sessions(tmp_path, plane) -> list[Path]:  # noqa: F811
    paths = []
    for session in ("day1", "day2"):
        (tmp_path / session).mkdir()
        paths.append(tmp_path / session / "analysis_results.hdf5")
        write_caiman_like(paths[-1], plane)
    return paths


def test_same_named_sessions_read_together_keep_distinct_ids(two_sessions):
    items = TASK.read_many(two_sessions, ReadOptions())
    ids = items.table["item_id"].astype(str)
    assert not ids.duplicated().any()
    assert ids.iloc[0] == "day1/analysis_results:0"
    assert ids.str.startswith("day2/analysis_results:").sum() == len(ids) // 2
    assert items.table[FORMER_ID].iloc[0] == "analysis_results:0"


def test_labels_journaled_under_the_old_ids_still_apply(two_sessions):
    items = TASK.read(two_sessions[0], ReadOptions())
    journal = pd.DataFrame({"item_id": ["analysis_results:1"], "label": ["not_cell"],
                            "source": ["human"]})
    merged = merge_labels(items.table, journal)
    row = merged[merged["item_id"] == "day1/analysis_results:1"].iloc[0]
    assert (row["label"], row["label_source"]) == ("not_cell", "human")
    assert find_item(items, "analysis_results:1", two_sessions[0]) == 1  # explain --item


def test_recordings_of_different_lengths_name_the_trace_length_option():
    def item_set(frames: int) -> ItemSet:
        table = pd.DataFrame({"item_id": [f"r{frames}:0"], "source": "r", "label": ["cell"]})
        return ItemSet(table,
                       {"image": np.zeros((1, 2, 8, 8), np.float32),
                        "trace": np.zeros((1, frames), np.float32)}, {})

    with pytest.raises(InputError, match="trace_length=N"):
        concat_itemsets([item_set(100), item_set(864)])


def test_labels_set_takes_an_old_id_and_journals_the_current_one(two_sessions, capsys):
    from napari_cellcurator.cli import main

    assert main(["labels", "--data", str(two_sessions[1]), "--set", "analysis_results:2",
                 "not_cell"]) == 0
    assert capsys.readouterr().out.strip() == "day2/analysis_results:2: not_cell"


def test_an_old_id_shared_by_two_sessions_moves_to_neither(two_sessions):
    from napari_cellcurator.core.io.items import current_item_id

    items = TASK.read_many(two_sessions, ReadOptions())
    journal = pd.DataFrame({"item_id": ["analysis_results:0"], "label": ["not_cell"],
                            "source": ["human"]})
    merged = merge_labels(items.table, journal)
    assert not merged["label_source"].eq("human").any()  # which session's? nobody can say
    assert current_item_id(items.table, "analysis_results:0") is None
