"""Which items to review first, and merging journal labels into an item table."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from napari_cellcurator.core.anchors import reconcile_anchors
from napari_cellcurator.core.data.quality import passes_qc
from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.items import FORMER_ID

MODES = ("balanced", "uncertain", "entropy", "random", "class")
#: ``merge_labels(...).attrs`` key: how many labels were made on ROIs since renumbered
ANCHOR_CHANGES = "labels_of_moved_rois"
#: journal sources that override a label read from the data files
_OVERRIDING_SOURCES = ("human", "cluster", "import")


def review_order(predictions: pd.DataFrame, mode: str = "uncertain", seed: int = 0,
                 labelled: set[str] | None = None, prob_columns: list[str] | None = None,
                 exclude_labelled: bool = False,
                 label_counts: Mapping[str, int] | None = None,
                 deferred: np.ndarray | None = None) -> np.ndarray:
    """Row positions of ``predictions`` in the order a human should review them.

    Parameters
    ----------
    predictions
        A prediction table (``item_id``, ``prediction``, ``uncertainty``, ``prob_<class>``...).
    mode
        ``"uncertain"``: smallest margin between the two most probable classes first
        (1 − (p1 − p2) from the probability columns, else the ``uncertainty`` column);
        ``"balanced"``: margin uncertainty weighted by 1/√n of the predicted class, n = the
        class's human labels so far (``label_counts``; at least 1), so uncertain items of rare
        or never-labelled classes come first — for macro-F1 it needs fewer corrections than
        plain margin (``bench/active_learning.py``); without class probabilities it is
        ``"uncertain"``;
        ``"entropy"``: highest normalised entropy of the probabilities first;
        ``"random"``: a seeded shuffle; ``"class"``: grouped by predicted class, most
        uncertain first within each class.
    seed
        Seeds the shuffle of ``"random"`` and the tie-breaking of the other modes.
    labelled
        Item ids already labelled by a human: they go last (in the same order among themselves).
    prob_columns
        Probability columns to use (default: every ``prob_*`` column, or ``proportion``).
    exclude_labelled
        Drop labelled items instead of putting them last.
    label_counts
        Labels per class so far (class name → count), used by ``"balanced"``; classes not in
        it count as 0.
    deferred
        Boolean per row: items to review after the others (still before labelled ones).
        Default: the rows a ``qc_flag`` column marks — cells the quality filter would drop
        (cut by the border, defocused, empty) are not trained on, so labelling them first
        would not help the model.

    Returns
    -------
    numpy.ndarray
        int64 row positions (not index labels). Items without a score come after scored ones.
    """
    if mode not in MODES:
        raise ValueError(f"unknown review mode {mode!r}; choose one of {MODES}")
    n = len(predictions)
    rng = np.random.default_rng(seed)
    tiebreak = rng.permutation(n)
    if mode == "random":
        keys = [tiebreak]
    elif mode == "class":
        group = _class_groups(predictions, prob_columns)
        keys = [tiebreak, -_uncertainty(predictions, prob_columns), group]
    elif mode == "entropy":
        keys = [tiebreak, -_entropy(predictions, prob_columns)]
    elif mode == "balanced":
        keys = [tiebreak, -_balanced_uncertainty(predictions, prob_columns, label_counts)]
    else:
        keys = [tiebreak, -_uncertainty(predictions, prob_columns)]
    done = np.zeros(n, dtype=bool)
    if labelled:
        done = predictions["item_id"].astype(str).isin(labelled).to_numpy()
    if deferred is None:
        deferred = ~passes_qc(predictions)
    # np.lexsort sorts by the last key first; NaN scores (-nan) sort after every number
    order = np.lexsort([*keys, np.asarray(deferred, dtype=bool), done]).astype(np.int64)
    if exclude_labelled:
        order = order[~done[order]]
    return order


def _probabilities(predictions: pd.DataFrame, prob_columns: list[str] | None) -> np.ndarray | None:
    """(N, K) probabilities, or None when the table has none."""
    if prob_columns is None:
        prob_columns = [c for c in predictions.columns if str(c).startswith("prob_")]
    if prob_columns:
        missing = [c for c in prob_columns if c not in predictions.columns]
        if missing:
            raise InputError(None, f"prediction table lacks columns {missing}")
        return predictions[prob_columns].to_numpy(dtype=float)
    if "proportion" in predictions.columns:  # a proportion p is a two-class (1 - p, p)
        p = predictions["proportion"].to_numpy(dtype=float)
        return np.stack([1.0 - p, p], axis=1)
    return None


def _uncertainty(predictions: pd.DataFrame, prob_columns: list[str] | None) -> np.ndarray:
    probs = _probabilities(predictions, prob_columns)
    if probs is not None:
        if probs.shape[1] == 1:
            return 1.0 - probs[:, 0]
        top = np.sort(probs, axis=1)
        return 1.0 - (top[:, -1] - top[:, -2])
    if "uncertainty" in predictions.columns:
        return predictions["uncertainty"].to_numpy(dtype=float)
    raise InputError(None, "prediction table has no probability or uncertainty columns",
                     "prob_<class> columns or an 'uncertainty' column")


def _balanced_uncertainty(predictions: pd.DataFrame, prob_columns: list[str] | None,
                          label_counts: Mapping[str, int] | None) -> np.ndarray:
    """Margin uncertainty / √(labels of the predicted class), or plain margin without classes."""
    if prob_columns is None:
        prob_columns = [c for c in predictions.columns if str(c).startswith("prob_")]
    uncertainty = _uncertainty(predictions, prob_columns)
    if not prob_columns:  # proportions or a bare uncertainty column: no classes to balance
        return uncertainty
    probs = np.nan_to_num(_probabilities(predictions, prob_columns), nan=-1.0)
    counts = dict(label_counts or {})
    per_class = np.array([counts.get(str(c)[len("prob_"):], 0) for c in prob_columns], float)
    weight = 1.0 / np.sqrt(np.maximum(per_class, 1.0))
    return uncertainty * weight[probs.argmax(axis=1)]


def _entropy(predictions: pd.DataFrame, prob_columns: list[str] | None) -> np.ndarray:
    probs = _probabilities(predictions, prob_columns)
    if probs is None:
        raise InputError(None, "entropy ordering needs probability columns",
                         "prob_<class> columns or a 'proportion' column")
    if probs.shape[1] < 2:
        return np.zeros(len(probs))
    p = np.clip(probs, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1) / np.log(probs.shape[1])


def _class_groups(predictions: pd.DataFrame, prob_columns: list[str] | None) -> np.ndarray:
    """Group number of each row's predicted class (probability-column order if known)."""
    probs = _probabilities(predictions, prob_columns)
    if "prediction" in predictions.columns:
        predicted = predictions["prediction"].astype(object).to_numpy()
        cols = prob_columns or [c for c in predictions.columns if str(c).startswith("prob_")]
        known = [str(c)[len("prob_"):] if str(c).startswith("prob_") else str(c) for c in cols]
        others = sorted({str(v) for v in predicted if not pd.isna(v)} - set(known))
        rank = {c: i for i, c in enumerate([*known, *others])}
        return np.array([len(rank) if pd.isna(v) else rank[str(v)] for v in predicted])
    if probs is not None:
        return np.nan_to_num(probs, nan=-1.0).argmax(axis=1)
    raise InputError(None, "class ordering needs a 'prediction' or probability columns")


#: journal sources of a person's own labels: set here, or imported from a project of an
#: earlier version (cluster labels were given to whole groups: still worth a look)
PERSON_SOURCES = ("human", "import")


def human_labels(merged: pd.DataFrame) -> tuple[set[str], dict[str, int]]:
    """Item ids a person labelled and their count per class, from a :func:`merge_labels` table
    (what :func:`review_order` takes as ``labelled`` and ``label_counts``)."""
    human = merged[merged["label_source"].isin(PERSON_SOURCES)]
    return (set(human["item_id"].astype(str)),
            human["label"].astype(str).value_counts().to_dict())


def with_current_ids(table: pd.DataFrame, journal_labels: pd.DataFrame) -> pd.DataFrame:
    """``journal_labels`` with labels saved under an item's former id (``FORMER_ID`` column
    of ``table``) moved to its current id; a label saved under the current id wins."""
    if FORMER_ID not in table.columns or not len(journal_labels):
        return journal_labels
    ids = table["item_id"].astype(str)
    former = table[FORMER_ID].astype(str)
    unique = ~former.duplicated(keep=False)  # a former id of several items (two sessions'
    # analysis_results:0 read together) belongs to neither: its labels stay as they were
    current = dict(zip(former[unique], ids[unique], strict=True))
    j_ids = journal_labels["item_id"].astype(str)
    old = (~j_ids.isin(set(ids)) & j_ids.isin(current.keys())).to_numpy()
    if not old.any():
        return journal_labels
    moved = journal_labels[old].assign(item_id=j_ids[old].map(current))
    return pd.concat([moved, journal_labels[~old]], ignore_index=True)  # current ids last


def merge_labels(table: pd.DataFrame, journal_labels: pd.DataFrame,
                 proportions: bool | None = None) -> pd.DataFrame:
    """Fill ``label`` and ``label_source`` of an item table from the journal's current labels.

    Human (and cluster / import) labels override labels read from the files; a model label
    from the journal only fills items without any other label. Labels of a numeric ``label``
    column (mixture proportions) are parsed back to float.

    Parameters
    ----------
    table
        Item table with ``item_id`` (and usually ``label``).
    journal_labels
        :meth:`LabelJournal.current_labels` (``item_id``, ``label``, ``source``).
    proportions
        Whether labels are proportions (the task's ``kind == "proportion"``); None guesses
        from the file labels, which fails for a movie read without any.

    Returns
    -------
    pandas.DataFrame
        A copy of ``table``; ``label_source`` is ``"file"``, a journal source, or None.
        Journal labels of ROIs renumbered since they were made follow their cell
        (:func:`napari_cellcurator.core.anchors.reconcile_anchors`, with a warning);
        ``attrs[ANCHOR_CHANGES]`` counts them.
    """
    out = table.copy()
    ids = out["item_id"].astype(str)
    if "label" not in out.columns:
        out["label"] = None
    numeric = _is_numeric_labels(out["label"]) if proportions is None else proportions
    file_label = out["label"].notna()
    labels = out["label"].astype(object).where(file_label, None)
    source = pd.Series(np.where(file_label, "file", None), index=out.index, dtype=object)
    moved = 0
    if len(journal_labels):
        journal_labels = with_current_ids(out, journal_labels)
        # labels of ROIs renumbered since (segmentation run again) follow their cell
        journal_labels, report = reconcile_anchors(out, journal_labels)
        moved = sum(len(report[k]) for k in ("moved", "unplaced", "superseded", "edited"))
        jl = journal_labels.drop_duplicates("item_id", keep="last").set_index("item_id")
        j_label = ids.map(jl["label"])
        j_source = ids.map(jl["source"]) if "source" in jl else pd.Series("human", index=ids.index)
        has = j_label.notna().to_numpy()
        overrides = j_source.isin(_OVERRIDING_SOURCES).to_numpy()
        take = has & (overrides | ~file_label.to_numpy())
        values = j_label[take]
        if numeric:
            values = _as_proportions(values)
        labels = labels.astype(object)
        labels[take] = values.to_numpy(dtype=object)
        source[take] = j_source[take].to_numpy(dtype=object)
    out["label"] = labels.astype(float) if numeric else labels
    out["label_source"] = source
    out.attrs[ANCHOR_CHANGES] = moved
    return out


def _is_numeric_labels(labels: pd.Series) -> bool:
    present = labels.dropna()
    if pd.api.types.is_numeric_dtype(labels) and not pd.api.types.is_bool_dtype(labels):
        return len(present) > 0 or labels.dtype.kind == "f"
    return len(present) > 0 and all(
        isinstance(v, (float, int, np.floating, np.integer)) and not isinstance(v, bool)
        for v in present)


def _as_proportions(values: pd.Series) -> pd.Series:
    try:
        return values.astype(float)
    except (TypeError, ValueError):
        bad = next(v for v in values if not _is_float(v))
        raise InputError(None, f"journal label {bad!r} is not a proportion",
                         "a number between 0 and 1") from None


def _is_float(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


#: class names the ``c`` / ``x`` keys mean as "cell" / "not cell" (never "1" / "0": Chula's
#: classes 0 and 1 are normal cells and macrocytes)
CELL_NAMES, NOT_CELL_NAMES = ("cell", "is_cell"), ("not_cell", "notcell")


def key_label(key: str, classes: list[str], scores: np.ndarray | None,
              proportions: bool = False) -> str:
    """The label the Curate widget's ``c`` / ``x`` key gives an item.

    Classes named cell / not cell: those. Otherwise ``c`` accepts the model's class and
    ``x`` takes the runner-up (``scores``: the item's class probabilities); for proportions
    ``c`` accepts the predicted proportion. Raises :class:`ValueError` (a message for the
    user) when the key means nothing here.
    """
    pos = next((c for c in classes if c.lower() in CELL_NAMES), None)
    neg = next((c for c in classes if c.lower() in NOT_CELL_NAMES), None)
    if pos is not None and neg is not None:
        return pos if key == "c" else neg
    if scores is None:
        raise ValueError("predict first: c/x accept or reject the model's class")
    if proportions:
        if key == "c":
            return f"{float(scores[0]):.2f}"
        raise ValueError("x has no runner-up for a proportion: keys 1 / 2 label a pure "
                         "snippet, 'label as' any proportion")
    ranked = np.argsort(-np.asarray(scores, dtype=float))
    return classes[int(ranked[0] if key == "c" or len(ranked) < 2 else ranked[1])]
