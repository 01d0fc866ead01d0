"""Review order (balanced / uncertain / entropy / random / class) and merging journal labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.store.journal import LabelJournal
from napari_cellcurator.core.triage import merge_labels, review_order


def _preds() -> pd.DataFrame:
    probs = np.array([
        [0.90, 0.05, 0.05],  # 0: a, certain
        [0.40, 0.35, 0.25],  # 1: a, margin 0.05 (most uncertain by margin)
        [0.10, 0.80, 0.10],  # 2: b
        [0.34, 0.33, 0.33],  # 3: a, margin 0.01, highest entropy
        [0.05, 0.50, 0.45],  # 4: b, margin 0.05... -> 0.05 exactly ties row 1
        [0.20, 0.20, 0.60],  # 5: c
    ])
    df = pd.DataFrame({"item_id": [f"i{k}" for k in range(6)],
                       "prediction": np.array(["a", "b", "c"])[probs.argmax(1)]})
    for k, c in enumerate("abc"):
        df[f"prob_{c}"] = probs[:, k]
    top = np.sort(probs, 1)
    df["uncertainty"] = 1 - (top[:, -1] - top[:, -2])
    return df


def test_uncertain_margin_order():
    df = _preds()
    order = review_order(df, "uncertain")
    assert order.dtype == np.int64 and sorted(order) == list(range(6))
    assert order[0] == 3
    assert set(order[1:3]) == {1, 4}  # tie at margin 0.05
    assert list(order[3:]) == [5, 2, 0]


def test_uncertain_from_uncertainty_column_only():
    df = pd.DataFrame({"item_id": ["a", "b", "c"], "uncertainty": [0.1, 0.9, 0.5]})
    assert list(review_order(df)) == [1, 2, 0]


def test_entropy_order():
    df = _preds()
    order = review_order(df, "entropy")
    assert order[0] == 3 and order[1] == 1 and order[-1] == 0
    with pytest.raises(InputError):
        review_order(df[["item_id", "uncertainty"]], "entropy")


def test_random_is_seeded_permutation():
    df = pd.DataFrame({"item_id": [str(i) for i in range(100)], "uncertainty": 0.5})
    a, b, c = (review_order(df, "random", seed=s) for s in (1, 1, 2))
    assert sorted(a) == list(range(100))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_class_mode_groups_uncertain_first():
    df = _preds()
    order = review_order(df, "class")
    classes = df["prediction"].to_numpy()[order]
    assert list(classes) == ["a", "a", "a", "b", "b", "c"]
    assert list(order[:3]) == [3, 1, 0]  # within class a: most uncertain first
    assert list(order[3:5]) == [4, 2]


def test_balanced_puts_classes_with_few_labels_first():
    df = _preds()
    # class a has 100 labels, b none: b's uncertain row 4 (margin 0.05, weight 1) comes before
    # a's rows 3 and 1 (uncertainty 0.99 / 0.95, weight 1/10)
    order = review_order(df, "balanced", label_counts={"a": 100, "c": 9})
    # scores: row 4 0.95, row 2 0.3 (b, weight 1); row 5 0.6 / 3 (c); rows 3, 1, 0 ≤ 0.099 (a)
    assert list(order) == [4, 2, 5, 3, 1, 0]
    # equal counts: the same order as plain margin uncertainty
    even = review_order(df, "balanced", label_counts=dict.fromkeys("abc", 9))
    assert list(even) == list(review_order(df, "uncertain"))
    assert sorted(review_order(df, "balanced")) == list(range(6))  # no counts: all weight 1


def test_balanced_without_classes_is_uncertain():
    df = pd.DataFrame({"item_id": ["a", "b", "c"], "proportion": [0.95, 0.5, 0.2]})
    assert list(review_order(df, "balanced", label_counts={"x": 3})) == [1, 2, 0]
    bare = pd.DataFrame({"item_id": ["a", "b", "c"], "uncertainty": [0.1, 0.9, 0.5]})
    assert list(review_order(bare, "balanced")) == [1, 2, 0]


def test_labelled_go_last_or_are_excluded():
    df = _preds()
    order = review_order(df, "uncertain", labelled={"i3", "i5"})
    assert list(order[-2:]) == [3, 5]  # same relative order among labelled items
    assert set(order[:4]) == {0, 1, 2, 4}
    kept = review_order(df, "uncertain", labelled={"i3", "i5"}, exclude_labelled=True)
    assert list(kept) == list(order[:4])


def test_cells_the_quality_filter_marks_come_after_the_others_before_the_labelled():
    df = _preds().assign(qc_flag=["", "", "", "border", "", "defocus"])
    order = review_order(df, "uncertain", labelled={"i1"})
    # i3 is the most uncertain, but cut by the border: not trained on, so reviewed late
    good = df.drop(index=[1, 3, 5]).reset_index(drop=True)
    assert list(df["item_id"].iloc[order[:3]]) == list(
        good["item_id"].iloc[review_order(good, "uncertain")])
    assert list(order[3:5]) == [3, 5] and order[-1] == 1
    explicit = review_order(_preds(), "uncertain", deferred=np.array([0, 0, 0, 1, 0, 0], bool))
    assert explicit[-1] == 3


def test_nan_scores_after_scored_items_and_row_positions():
    df = pd.DataFrame({"item_id": ["a", "b", "c"], "uncertainty": [np.nan, 0.2, 0.7]},
                      index=[10, 20, 30])
    assert list(review_order(df)) == [2, 1, 0]  # positions, not index labels


def test_proportion_table_and_explicit_columns():
    df = pd.DataFrame({"item_id": ["a", "b", "c"], "proportion": [0.95, 0.5, 0.2]})
    assert list(review_order(df, "uncertain")) == [1, 2, 0]
    assert list(review_order(df, "entropy")) == [1, 2, 0]
    preds = _preds()
    # only a and b considered: row 5 (0.2 vs 0.2) becomes the closest call, then row 3
    order = review_order(preds, prob_columns=["prob_a", "prob_b"])
    assert list(order[:2]) == [5, 3]
    with pytest.raises(InputError):
        review_order(preds, prob_columns=["prob_zzz"])
    with pytest.raises(ValueError):
        review_order(preds, "smart")


def test_merge_labels_human_overrides_file():
    table = pd.DataFrame({"item_id": ["a", "b", "c", "d"], "label": ["x", None, "y", None]})
    journal = pd.DataFrame({"item_id": ["a", "b", "c", "zz"],
                            "label": ["h", "h2", "m", "ghost"],
                            "source": ["human", "cluster", "model", "human"]})
    before = table.copy()
    out = merge_labels(table, journal)
    assert out["label"].tolist() == ["h", "h2", "y", None]  # model does not beat a file label
    assert out["label_source"].tolist() == ["human", "cluster", "file", None]
    pd.testing.assert_frame_equal(table, before)  # input untouched
    filled = merge_labels(table.iloc[[3]], pd.DataFrame(
        {"item_id": ["d"], "label": ["m"], "source": ["model"]}))
    assert filled["label"].tolist() == ["m"] and filled["label_source"].tolist() == ["model"]


def test_merge_labels_proportions_from_real_journal(tmp_path):
    table = pd.DataFrame({"item_id": ["p", "q", "r"], "label": [0.5, np.nan, np.nan]})
    with LabelJournal(tmp_path / "l.sqlite", user="u") as j:
        j.set_label("q", 0.1 + 0.2)
        j.set_label("p", 0.75)
        out = merge_labels(table, j.current_labels())
    assert out["label"].dtype == float
    assert out["label"].iloc[0] == 0.75 and out["label"].iloc[1] == 0.1 + 0.2
    assert np.isnan(out["label"].iloc[2])
    assert out["label_source"].tolist() == ["human", "human", None]
    with pytest.raises(InputError, match="not a proportion"):
        merge_labels(table, pd.DataFrame({"item_id": ["q"], "label": ["neuron"],
                                          "source": ["human"]}))


def test_merge_labels_without_label_column_or_journal():
    table = pd.DataFrame({"item_id": [1, 2]})
    out = merge_labels(table, pd.DataFrame(columns=["item_id", "label", "source"]))
    assert out["label"].isna().all() and out["label_source"].isna().all()
    out = merge_labels(table, pd.DataFrame({"item_id": ["2"], "label": ["x"],
                                            "source": ["human"]}))
    assert out["label"].tolist() == [None, "x"]  # int ids match their string form


def test_mixture_curation_of_a_movie_without_file_labels(tmp_path):
    """A movie read for mixture has no labels: the journal's proportions are numbers, and
    the curated decision of every other tile is its predicted proportion, not the majority
    type's name (the review's case)."""
    from napari_cellcurator.core.curation import curated_table
    from napari_cellcurator.core.tasks import get_task

    task = get_task("mixture")
    items = pd.DataFrame({"item_id": ["t0", "t1", "t2"], "label": [None, None, None]})
    scores = np.array([0.4, 0.8, 0.6])
    predictions = task.prediction_table(items, scores, ["type_a", "type_b"])
    with LabelJournal(tmp_path / "l.sqlite", user="u") as j:
        j.set_label("t0", 0.25)
        labels = j.current_labels()
    merged = merge_labels(items, labels, proportions=True)
    assert merged["label"].dtype == float and merged["label"].iloc[0] == 0.25
    table = curated_table(items, predictions, labels, proportions=True)
    np.testing.assert_allclose(table["curated"].astype(float), [0.25, 0.8, 0.6])
    assert table["curated_from"].tolist() == ["label", "model", "model"]


def test_c_and_x_keys():
    """cell / not cell only for classes so named (Chula's "0" / "1" are cell types), accept
    or runner-up otherwise, the predicted proportion for mixture."""
    from napari_cellcurator.core.triage import key_label

    assert key_label("c", ["not_cell", "cell"], None) == "cell"
    assert key_label("x", ["not_cell", "cell"], None) == "not_cell"
    chula = ["0", "1", "6"]
    scores = np.array([0.7, 0.2, 0.1])
    assert key_label("c", chula, scores) == "0" and key_label("x", chula, scores) == "1"
    assert key_label("c", ["T98G", "C2C12"], np.array([0.734]), proportions=True) == "0.73"
    with pytest.raises(ValueError, match="no runner-up"):
        key_label("x", ["T98G", "C2C12"], np.array([0.7]), proportions=True)
    with pytest.raises(ValueError, match="predict first"):
        key_label("c", chula, None)
