"""The Curate widget's sortable item table: a Qt view over the item layer's ``features``.

Model/view rather than one ``QTableWidgetItem`` per cell: refilling after a prediction, a
cluster run or an undo is one model reset whatever the number of items (a 50,000-row
``QTableWidget`` took 1.5 s of frozen GUI and 350,000 Qt calls), and Qt asks only for the
cells on screen.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from qtpy.QtCore import QAbstractTableModel, QModelIndex, Qt, Signal
from qtpy.QtWidgets import QAbstractItemView, QTableView


def display_value(value):
    """A cell as shown: probabilities to 3 significant digits, missing values empty."""
    if isinstance(value, float | np.floating):
        return "" if np.isnan(value) else f"{float(value):.3g}"
    return "" if value is None or value is pd.NA else str(value)


def sort_keys(column: pd.Series) -> np.ndarray:
    """Keys that order a column: numbers numerically (missing first), else as text."""
    numbers = pd.to_numeric(column, errors="coerce")
    if column.notna().any() and numbers.notna().sum() == column.notna().sum():
        return numbers.fillna(-np.inf).to_numpy(dtype=np.float64)
    return column.fillna("").astype(str).to_numpy()


class FeaturesModel(QAbstractTableModel):
    """``columns`` of a features table (read only). Sorting is a permutation computed with
    numpy (``sort``), so neither filling nor sorting makes a Python call per row."""

    def __init__(self, columns: tuple[str, ...]):
        super().__init__()
        self._columns = list(columns)
        self._frame = pd.DataFrame(columns=self._columns)
        self._order = np.zeros(0, np.int64)  # view row → item row
        self._base = np.zeros(0, np.int64)  # the unsorted order (the review order)
        self._sorted_by: tuple[int, Qt.SortOrder] | None = None

    @property
    def columns(self) -> list[str]:
        """The columns shown (in order)."""
        return list(self._columns)

    def set_frame(self, frame: pd.DataFrame, order=None) -> None:
        """Show ``frame`` (its ``columns``; missing ones empty) in one model reset; rows in
        ``order`` (row positions, e.g. the review order; items not in it follow) until a
        column is sorted."""
        self.beginResetModel()
        self._frame = frame.reindex(columns=self._columns).reset_index(drop=True).astype(object)
        n = len(self._frame)
        base = np.arange(n)
        if order is not None and len(order):
            order = np.asarray(order, dtype=np.int64)
            order = order[(order >= 0) & (order < n)]
            base = np.concatenate([order, np.setdiff1d(base, order)])
        self._base = base
        self._order = self._sorted_order()
        self.endResetModel()

    def sort(self, column: int, order=Qt.SortOrder.AscendingOrder) -> None:
        self.layoutAboutToBeChanged.emit()
        self._sorted_by = (column, order) if column >= 0 else None
        self._order = self._sorted_order()
        self.layoutChanged.emit()

    def _sorted_order(self) -> np.ndarray:
        if self._sorted_by is None or self._frame.empty:
            return self._base.copy()
        column, order = self._sorted_by
        order_of = np.argsort(sort_keys(self._frame.iloc[:, column]), kind="stable")
        return order_of[::-1].copy() if order == Qt.SortOrder.DescendingOrder else order_of

    def item_row(self, view_row: int) -> int:
        """The item shown in ``view_row``."""
        return int(self._order[view_row])

    def view_row(self, row: int) -> int | None:
        """The table row showing item ``row`` (None if not shown)."""
        at = np.flatnonzero(self._order == row)
        return int(at[0]) if len(at) else None

    def update_row(self, row: int, record: pd.Series) -> None:
        """Item ``row`` changed (a label was set): new values, one repaint of that row (it
        stays where it is until the next sort, rather than jumping away under the cursor)."""
        if not 0 <= row < len(self._frame):  # not shown yet: the next fill shows it
            return
        self._frame.iloc[row] = record.reindex(self._columns).astype(object).to_numpy()
        at = int(np.flatnonzero(self._order == row)[0])
        self.dataChanged.emit(self.index(at, 0), self.index(at, len(self._columns) - 1))

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802 (Qt's name)
        return 0 if parent.isValid() else len(self._frame)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802 (Qt's name)
        return 0 if parent.isValid() else len(self._columns)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or role != Qt.ItemDataRole.DisplayRole:
            return None
        return display_value(self._frame.iat[self._order[index.row()], index.column()])

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return self._columns[section]
        return str(section + 1)


class ItemTable(QTableView):
    """Sortable, read-only table of items; ``item_clicked`` gives the item's row."""

    item_clicked = Signal(int)

    def __init__(self, columns: tuple[str, ...]):
        super().__init__()
        self.source = FeaturesModel(columns)
        self.setModel(self.source)
        # no sort indicator: items in their own order until the user clicks a header
        self.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.setSortingEnabled(True)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setMinimumHeight(200)
        self.clicked.connect(lambda index: self.item_clicked.emit(
            self.source.item_row(index.row())))

    def rowCount(self) -> int:  # noqa: N802 (as QTableWidget's)
        """Number of items shown."""
        return self.source.rowCount()

    def fill(self, frame: pd.DataFrame, order=None) -> None:
        """Show every item of ``frame`` (sorting kept), in ``order`` until a header is
        clicked; columns ``frame`` lacks (``qc_flag`` outside celltype) are hidden."""
        self.source.set_frame(frame, order)
        for i, column in enumerate(self.source.columns):
            self.setColumnHidden(i, column not in frame.columns)

    def select_item(self, row: int) -> None:
        """Select item ``row``'s table row and scroll it into view (the current item)."""
        at = self.source.view_row(row)
        if at is None:
            self.clearSelection()
            return
        self.selectRow(at)
        self.scrollTo(self.source.index(at, 0), QAbstractItemView.ScrollHint.PositionAtCenter)

    def update_row(self, row: int, record: pd.Series) -> None:
        """Item ``row`` has new values."""
        self.source.update_row(row, record)

    def row_values(self, view_row: int) -> list[str]:
        """Displayed cells of the table's row ``view_row`` (tests, accessibility)."""
        return [self.source.data(self.source.index(view_row, c))
                for c in range(self.source.columnCount())]
