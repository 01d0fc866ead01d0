"""The Curate widget's item table: model/view over the features, sorted with numpy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from qtpy.QtCore import Qt

pytestmark = pytest.mark.gui

COLUMNS = ("item_id", "label", "prediction", "probability", "label_source")


@pytest.fixture
def table(qtbot):
    from napari_cellcurator._qt.item_table import ItemTable

    view = ItemTable(COLUMNS)
    qtbot.addWidget(view)
    view.fill(pd.DataFrame({"item_id": ["a", "b", "c", "d"],
                            "label": ["G1", None, "G2", None],
                            "prediction": ["G1", "G2", "G2", "G1"],
                            "probability": [0.5, np.nan, 0.91234, 0.2],
                            "label_source": ["human", None, "file", None],
                            "extra": [1, 2, 3, 4]}))
    return view


def test_cells_are_shown_in_item_order(table):
    assert table.rowCount() == 4
    assert table.row_values(0) == ["a", "G1", "G1", "0.5", "human"]
    assert table.row_values(1) == ["b", "", "G2", "", ""]  # missing values empty
    assert table.row_values(2)[3] == "0.912"


def test_columns_the_items_lack_are_hidden(qtbot):
    """The quality flag column shows for celltype items, not for ROIs or tiles."""
    from napari_cellcurator._qt.item_table import ItemTable

    view = ItemTable(("item_id", "label", "qc_flag"))
    qtbot.addWidget(view)
    view.fill(pd.DataFrame({"item_id": ["a"], "label": ["G1"], "qc_flag": ["border"]}))
    assert not view.isColumnHidden(2) and view.row_values(0) == ["a", "G1", "border"]
    view.fill(pd.DataFrame({"item_id": ["roi0"], "label": ["cell"]}))
    assert view.isColumnHidden(2) and not view.isColumnHidden(1)


def test_sorting_is_numeric_and_clicks_give_the_item_row(table, qtbot):
    table.sortByColumn(3, Qt.SortOrder.DescendingOrder)  # probability, high first
    assert [table.row_values(r)[0] for r in range(4)] == ["c", "a", "d", "b"]
    with qtbot.waitSignal(table.item_clicked) as clicked:
        table.clicked.emit(table.model().index(0, 1))
    assert clicked.args == [2]  # the view's first row is item 2 ("c")
    table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
    assert [table.row_values(r)[0] for r in range(4)] == ["a", "b", "c", "d"]


def test_a_label_updates_its_row_where_it_stands(table):
    table.sortByColumn(3, Qt.SortOrder.DescendingOrder)
    record = pd.Series({"item_id": "d", "label": "G2", "prediction": "G1",
                        "probability": 0.2, "label_source": "human"})
    table.update_row(3, record)
    assert table.row_values(2) == ["d", "G2", "G1", "0.2", "human"]
    table.update_row(9, record)  # not in the table (yet): nothing happens
    assert table.rowCount() == 4


def test_fifty_thousand_items_fill_in_one_reset(qtbot):
    """A refill is one model reset: no Qt call per cell (the old table made 350,000)."""
    from napari_cellcurator._qt.item_table import ItemTable

    view = ItemTable(COLUMNS)
    qtbot.addWidget(view)
    n = 50_000
    resets = []
    view.source.modelReset.connect(lambda: resets.append(1))
    view.fill(pd.DataFrame({"item_id": [f"i{k}" for k in range(n)],
                            "probability": np.linspace(0, 1, n)}))
    view.sortByColumn(1, Qt.SortOrder.DescendingOrder)
    assert resets == [1] and view.rowCount() == n
    assert view.row_values(0)[0] == f"i{n - 1}"
