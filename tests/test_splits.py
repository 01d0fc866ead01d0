"""Hash-stable train/validation splits: groups never straddle the split."""

from __future__ import annotations

import numpy as np
import pandas as pd

from napari_cellcurator.core.data.splits import hash_split, stable_fraction


def _table(groups: list[str], per_group: int) -> pd.DataFrame:
    rows = [(f"{g}:{k}", g) for g in groups for k in range(per_group)]
    return pd.DataFrame(rows, columns=["item_id", "group"])


def _sides(table, train, val) -> dict[str, set[str]]:
    return {g: {"train" if i in set(train) else "val" for i in np.flatnonzero(
        table["group"].to_numpy() == g)} for g in set(table["group"])}


def test_many_groups_split_whole_and_stay_put_when_items_are_added():
    table = _table([f"smear{k}" for k in range(40)], 5)
    train, val = hash_split(table, 0.2)
    assert all(len(s) == 1 for s in _sides(table, train, val).values())
    assert 0.05 < len(val) / len(table) < 0.4
    bigger = pd.concat([table, _table([f"smear{k}" for k in range(40, 60)], 5)],
                       ignore_index=True)
    train2, val2 = hash_split(bigger, 0.2)
    assert set(val2[val2 < len(table)]) == set(val)  # nobody moved


def test_few_groups_on_one_side_fall_back_to_whole_groups():
    """Two images whose hashes both land on the training side (the review's case)."""
    groups = ["imgA", "imgB"]
    assert all(stable_fraction(g) >= 0.2 for g in groups)
    table = _table(groups, 10)
    train, val = hash_split(table, 0.2)
    sides = _sides(table, train, val)
    assert all(len(s) == 1 for s in sides.values()), sides  # no image on both sides
    assert len(val) == 10 and len(train) == 10  # one image validates, one trains


def test_every_group_hashed_to_validation_still_trains_on_one():
    groups = [g for g in (f"g{k}" for k in range(500)) if stable_fraction(g) < 0.5][:3]
    table = _table(groups, 4)
    train, val = hash_split(table, 0.5)
    sides = _sides(table, train, val)
    assert all(len(s) == 1 for s in sides.values())
    assert len(train) >= 4 and len(val) >= 4


def test_a_single_group_is_split_by_item():
    table = _table(["only"], 10)
    train, val = hash_split(table, 0.2)
    assert len(val) == 2 and len(train) == 8
    assert hash_split(table.iloc[:1], 0.2)[1].size == 0  # one item: it trains
