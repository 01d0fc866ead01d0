"""Curate's item table: refilling it for many items, model/view vs one Qt item per cell.

The Curate widget refills its table after every prediction, cluster run and undo. Measured in
one run on a shown table under Xvfb: the ``QTableWidget`` it used before (one
``QTableWidgetItem`` per cell, as ``fill_table`` did) against the ``ItemTable`` model/view now
used, for 5,000 / 20,000 / 50,000 items; plus a sort by probability. Target: a 50,000-item
refill under 100 ms (a freeze a user does not notice).

    python bench/item_table.py [--quick] [--out bench/results]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gui
import numpy as np
import pandas as pd
from common import RESULTS, show, write_result

COLUMNS = ("item_id", "label", "prediction", "probability", "label_source")
TARGET_MS = 100.0


def features(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"item_id": [f"crop:{i}" for i in range(n)],
                         "label": rng.choice(["G1", "G2", None], n),
                         "prediction": rng.choice(["G1", "G2", "S_phase"], n),
                         "probability": rng.random(n), "label_source": "file"})


def fill_widget_items(table, feats: pd.DataFrame) -> None:
    """The previous ``CurateWidget.fill_table``: one QTableWidgetItem per cell."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QTableWidgetItem

    table.setSortingEnabled(False)
    table.setRowCount(len(feats))
    for r, rec in enumerate(feats[list(COLUMNS)].itertuples(index=False)):
        for c, value in enumerate(rec):
            item = QTableWidgetItem()
            item.setData(Qt.ItemDataRole.DisplayRole,
                         round(value, 3) if isinstance(value, float) else str(value))
            if c == 0:
                item.setData(Qt.ItemDataRole.UserRole, r)
            table.setItem(r, c, item)
    table.setSortingEnabled(True)


def timed(app, func) -> float:
    t0 = time.perf_counter()
    func()
    app.processEvents()
    return (time.perf_counter() - t0) * 1e3


def main(quick: bool = False, out: Path = RESULTS) -> dict:
    with gui.virtual_display():
        from qtpy.QtCore import Qt
        from qtpy.QtWidgets import QApplication, QTableWidget

        from napari_cellcurator._qt.item_table import ItemTable

        app = QApplication.instance() or QApplication([])
        sizes = (2_000, 10_000) if quick else (5_000, 20_000, 50_000)
        rows = []
        for n in sizes:
            feats = features(n)
            old, new = QTableWidget(0, len(COLUMNS)), ItemTable(COLUMNS)
            old.show()
            new.show()
            old_ms = timed(app, lambda: fill_widget_items(old, feats))  # noqa: B023
            new_ms = timed(app, lambda: new.fill(feats))  # noqa: B023
            sort_ms = timed(app, lambda: new.sortByColumn(  # noqa: B023
                3, Qt.SortOrder.DescendingOrder))
            rows.append({"items": n, "qtablewidget_fill_ms": round(old_ms, 1),
                         "item_table_fill_ms": round(new_ms, 2),
                         "item_table_sort_ms": round(sort_ms, 2),
                         "speedup": round(old_ms / new_ms, 1)})
            show(f"{n:,} items: QTableWidget fill", old_ms, "ms")
            show(f"{n:,} items: ItemTable fill", new_ms, "ms", f"< {TARGET_MS:g} ms",
                 new_ms < TARGET_MS)
            show(f"{n:,} items: ItemTable sort", sort_ms, "ms")
            old.deleteLater()
            new.deleteLater()
        result = {"rows": rows, "target_ms": TARGET_MS, "quick": quick,
                  "largest_fill_under_target": rows[-1]["item_table_fill_ms"] < TARGET_MS}
        write_result("item_table", result, out)
        return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=RESULTS)
    a = p.parse_args()
    main(a.quick, a.out)
