"""The curated result: model predictions with the journal's labels on top; export, write-back.

What a user means by "my curation" is one decision per item: their own label where they gave
one; else the label read from the data files — an expert's (celltype class folders, point
labels, Allen ROI JSON) or the pipeline's own classifier's (Suite2p ``iscell``, CaImAn
``idx_components``); else the model's prediction. Only on request (``model_decides``, for a
task whose file labels are another classifier's output: ``file_labels_are_predictions``) does
the model's prediction replace the pipeline's labels, never an expert's (``label_origin``).
By default, then, a write-back changes only what a person decided. This module builds
that table and writes it out (CSV/Parquet, or the task's native files such as Suite2p's
``iscell.npy``), so the GUI, the CLI and Python calls share one rule.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from napari_cellcurator.core.anchors import has_geometry, moved, reconcile_anchors
from napari_cellcurator.core.data.quality import QC_FLAG
from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.io.items import EXPERT, FORMER_ID, LABEL_ORIGIN, ItemSet
from napari_cellcurator.core.store.atomic import atomic_write
from napari_cellcurator.core.triage import merge_labels, with_current_ids

#: journal sources whose label is a person's decision (they beat the model's prediction)
DECIDING_SOURCES = ("human", "cluster", "import")
#: item-table columns carried into the export (when present)
_ITEM_COLUMNS = ("item_id", "source", "roi_index", "frame", "y", "x", QC_FLAG)


def curated_table(items_table: pd.DataFrame, predictions: pd.DataFrame | None,
                  journal_labels: pd.DataFrame | None, model_over_file_labels: bool = False,
                  proportions: bool | None = None) -> pd.DataFrame:
    """One row per item: the labels, the model's prediction and the curated decision.

    Parameters
    ----------
    items_table
        The item table (``item_id`` and usually ``label`` read from the files).
    predictions
        A prediction table (``item_id``, ``prediction``, ``probability``, ``prob_<class>``...)
        or None when no model has scored the items.
    journal_labels
        :meth:`LabelJournal.current_labels`, or None without a journal.
    model_over_file_labels
        True to let the prediction beat labels read from the files that are another
        classifier's output (pass the task's ``file_labels_are_predictions`` *and* the user's
        explicit opt-in, see :func:`model_decides`); expert labels (``label_origin``) still
        win. Default False: the files' labels stand for every item nobody curated.
    proportions
        Whether labels are proportions (mixture): the decision is then the predicted
        ``proportion`` (a number), not the majority class, and journal labels are numbers.

    Returns
    -------
    pandas.DataFrame
        ``item_id`` (+ source/position columns), ``label``, ``label_source`` (``human``,
        ``file``, ...), the prediction columns, ``curated`` (the decision) and
        ``curated_from`` (``label`` when a person's or the file's label decided, ``model``
        when the prediction did).
    """
    if journal_labels is None:
        journal_labels = pd.DataFrame(columns=["item_id", "label", "source"])
    # labels of renumbered ROIs follow their cell (warned once, here): not orphans
    journal_labels, _ = reconcile_anchors(items_table,
                                          with_current_ids(items_table, journal_labels))
    warn_orphan_labels(items_table, journal_labels)
    merged = merge_labels(items_table, journal_labels, proportions)
    keep = [c for c in _ITEM_COLUMNS if c in merged.columns]
    out = merged[[*keep, "label", "label_source"]].reset_index(drop=True)
    deciding = DECIDING_SOURCES if model_over_file_labels else (*DECIDING_SOURCES, "file")
    decided = out["label_source"].isin(deciding).to_numpy().copy()
    if LABEL_ORIGIN in merged.columns:  # annotators' labels among a classifier's formats
        expert = merged[LABEL_ORIGIN].eq(EXPERT).to_numpy()
        decided |= expert & out["label_source"].eq("file").to_numpy()
    curated = out["label"].astype(object).where(decided, None)
    curated_from = pd.Series(np.where(decided, "label", None), dtype=object)
    if predictions is not None and len(predictions):
        # the prediction table repeats item columns (source, y, x...): keep the items' own
        pred = predictions.drop(columns=[c for c in predictions.columns if c != "item_id" and
                                         (c in ("label", "label_source") or c in out.columns)])
        pred = pred.drop_duplicates("item_id", keep="last")
        pred = pred.assign(item_id=pred["item_id"].astype(str))
        out = out.assign(item_id=out["item_id"].astype(str)).merge(
            pred, on="item_id", how="left", suffixes=("", "_prediction"))
        # a mixture's table has both: the decision is the proportion, a number like the
        # labels, not the majority type
        column = "proportion" if "proportion" in out.columns else "prediction"
        if column in out.columns:
            use = ~decided & out[column].notna().to_numpy()
            curated[use] = out.loc[use, column].to_numpy(dtype=object)
            curated_from[use] = "model"
    rest = curated.isna().to_numpy() & out["label"].notna().to_numpy()
    curated[rest] = out.loc[rest, "label"].to_numpy(dtype=object)
    curated_from[rest] = "label"
    out["curated"] = curated.to_numpy(dtype=object)
    out["curated_from"] = curated_from.to_numpy(dtype=object)
    return out


def model_decides(task, requested: bool) -> bool:
    """Whether the model's prediction replaces the labels read from the files.

    Only when the user asked (``export --model-decides``, the Export widget's checkbox) and
    the task's file labels are another classifier's output (``file_labels_are_predictions``).
    """
    return bool(requested) and bool(getattr(task, "file_labels_are_predictions", False))


def model_changes(table: pd.DataFrame) -> int:
    """How many labels read from the files the model's prediction changed in a
    :func:`curated_table` (0 unless the model was allowed to decide over them)."""
    from_file = table["label_source"].astype(str).eq("file") & table["label"].notna()
    by_model = table["curated_from"].astype(str).eq("model")
    changed = table["curated"].astype(str).ne(table["label"].astype(str))
    return int((from_file & by_model & changed).sum())


def warn_orphan_labels(items_table: pd.DataFrame, journal_labels: pd.DataFrame) -> list[str]:
    """Warn about journal labels that belong to no item of the data (files renamed, moved or
    edited, cells deleted): the export would otherwise silently go without them.

    Returns the ids of those labels."""
    ids = set(items_table["item_id"].astype(str))
    if FORMER_ID in items_table.columns:  # labels saved under older ids still apply
        ids |= set(items_table[FORMER_ID].astype(str))
    # labels of the other planes of a Suite2p recording (one project, a plane read on its
    # own) are not orphans
    planes = {_plane(i) for i in ids} - {None}
    orphans = [i for i in journal_labels["item_id"].astype(str)
               if i not in ids and not _other_plane(_plane(i), planes)]
    if orphans:
        warnings.warn(f"{len(orphans)} label(s) in the project journal belong to no item of "
                      f"this data, e.g. {orphans[:3]} (data renamed, moved or edited?); they "
                      "stay in the journal (`cellcurator labels --history`)", InputWarning,
                      stacklevel=3)
    return orphans


def _plane(item_id: str) -> tuple[str, str] | None:
    """(recording, ``planeN``) of a Suite2p item id (``rec/suite2p/plane0:3``), else None."""
    head = item_id.rsplit(":", 1)[0]
    recording, _, last = head.rpartition("/")
    return (recording, last) if re.fullmatch(r"plane\d+", last) else None


def _other_plane(plane: tuple[str, str] | None, planes: set[tuple[str, str]]) -> bool:
    return plane is not None and plane not in planes and any(
        plane[0] == recording for recording, _ in planes)


def check_predictions_match(items_table: pd.DataFrame, predictions: pd.DataFrame,
                            where: str | Path | None = None,
                            data: str | Path | None = None) -> None:
    """Refuse a prediction table made for other data than ``items_table``'s.

    Two recordings laid out alike (``mouseA/day1/suite2p/plane0`` and ``mouseB/...``) share
    item ids, so ids alone cannot tell. ``predict`` records the data set it read
    (``data_root``), compared with ``data``'s; tables without it are judged by their
    absolute ``source`` paths (relative ones cannot be judged: they depend on the folder
    ``predict`` ran in).

    Raises
    ------
    InputError
        When no prediction id is an item of the data, or the predictions name other data.
    """
    from napari_cellcurator.core.batch import DATA_ROOT
    from napari_cellcurator.core.io.roots import dataset_root

    ids = set(items_table["item_id"].astype(str))
    if len(predictions) and not predictions["item_id"].astype(str).isin(ids).any():
        raise InputError(where, "predicts none of this data's items (made for other data, or "
                         "by a model that reads them otherwise?)",
                         "a `cellcurator predict` output of the same --data; for a model "
                         "that tiles or crops otherwise than the defaults, add --model "
                         "MODEL_DIR")
    _refuse_moved_rois(items_table, predictions, where)
    if data is not None and DATA_ROOT in predictions.columns:
        theirs = set(predictions[DATA_ROOT].dropna().astype(str))
        ours = str(dataset_root(data))
        if theirs and ours not in theirs:
            if _tail(ours) not in {_tail(t) for t in theirs if len(_tail(t)) == 3}:
                _refuse_other_data(where, theirs, {ours})
            warnings.warn(f"{where}: predicted for {sorted(theirs)[0]}, taken as this data "
                          f"({ours}): the same last three folders (another machine's path)",
                          InputWarning, stacklevel=2)
        return
    if "source" in predictions.columns and "source" in items_table.columns:
        theirs = _absolute(predictions["source"])
        ours = {os.path.normpath(os.path.abspath(s)) for s in _texts(items_table["source"])}
        if theirs and ours and not theirs & ours and not _same_files(theirs, ours):
            _refuse_other_data(where, theirs, ours)


def _refuse_moved_rois(items_table: pd.DataFrame, predictions: pd.DataFrame, where) -> None:
    """Refuse predictions of ROIs that are no longer under the same ids (the segmentation was
    run again and renumbered them): they would be written onto other cells."""
    if not (has_geometry(items_table) and has_geometry(predictions)):
        return
    pred = predictions.drop_duplicates("item_id", keep="last")
    pred = pred.assign(item_id=pred["item_id"].astype(str)).set_index("item_id")
    items = items_table.assign(item_id=items_table["item_id"].astype(str)).set_index("item_id")
    common = items.index.intersection(pred.index)
    if not len(common):
        return
    columns = ["y", "x", "npix"]
    now = items.loc[common, columns].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    then = pred.loc[common, columns].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    shifted = moved(then, now)
    if shifted.any():
        first = common[np.flatnonzero(shifted)[:3]].tolist()
        raise InputError(where, f"{int(shifted.sum())} of its ROIs are not where they are now "
                         f"(e.g. {first}): the segmentation was run again since `predict`",
                         "predictions of the ROIs as they are now: run `cellcurator predict` "
                         "again (labels follow their cells by themselves)")


def _tail(path: str, parts: int = 3) -> tuple[str, ...]:
    """The last three folders of a data set's path, case-folded, whatever the system wrote
    it: predictions made on a server (``/mnt/lab/mouseA/day1/suite2p``) fit the same
    recording seen from a laptop (``\\\\nas\\lab\\mouseA\\day1\\suite2p``), while
    ``mouseB/day1/suite2p`` stays another recording."""
    names = [n for n in path.replace("\\", "/").split("/") if n]
    return tuple(n.casefold() for n in names[-parts:])


def _texts(column: pd.Series) -> set[str]:
    return {str(s) for s in column.dropna().unique()} - {""}


def _absolute(column: pd.Series) -> set[str]:
    """The absolute paths among ``column``'s values, normalised (no file is touched)."""
    return {os.path.normpath(s) for s in _texts(column) if os.path.isabs(s)}


def _same_files(theirs: set[str], ours: set[str], sample: int = 20) -> bool:
    """Whether a few of the paths are the same files under other names (symbolic links):
    only a sample is resolved, a crop table can name 100,000 files."""
    resolved = {str(Path(p).resolve()) for p in sorted(ours)[:sample]}
    return any(str(Path(p).resolve()) in resolved for p in sorted(theirs)[:sample])


def _refuse_other_data(where, theirs: set[str], ours: set[str]) -> None:
    raise InputError(where, f"was predicted for {sorted(theirs)[:3]}, not for this data "
                     f"{sorted(ours)[:3]}", "a `cellcurator predict` output of the same --data")


def export_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a table to ``.csv`` or ``.parquet`` (by suffix), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise InputError(path, f"cannot export as {suffix or 'no suffix'!r}",
                         "a .csv or .parquet file name")
    if suffix == ".csv":
        return atomic_write(path, lambda p: table.to_csv(p, index=False))
    safe = table.copy()
    for column in [c for c in table.columns if table[c].dtype == object]:
        # Parquet needs one type per column: numbers stay numbers (a mixture's curated
        # proportions), anything else is text (ids like "007" included)
        values = table[column].dropna()
        numeric = len(values) and values.map(
            lambda v: isinstance(v, int | float | np.number) and not isinstance(v, bool)).all()
        safe[column] = (pd.to_numeric(table[column]) if numeric
                        else table[column].astype("string"))
    return atomic_write(path, lambda p: safe.to_parquet(p, index=False))


def curated_predictions(curated: pd.DataFrame) -> pd.DataFrame:
    """A prediction table whose ``prediction`` is the curated decision.

    Items a person decided (a journal label) get probability 1 for their class
    (``prob_<class>`` one-hot), so a writer that stores probabilities (Suite2p's second
    ``iscell`` column) records certainty. Items decided by the files' own label get no
    probability (NaN): the writer keeps the file's own (Suite2p's ``iscell`` probability).
    Items the model decided keep the model's probabilities.
    """
    out = curated.copy()
    by_label = (out["curated_from"] == "label").to_numpy()
    source = out["label_source"] if "label_source" in out.columns else None
    person = by_label if source is None else by_label & source.isin(DECIDING_SOURCES).to_numpy()
    out["prediction"] = out["curated"]
    probs = [c for c in out.columns if str(c).startswith("prob_")]
    if "probability" in out.columns:
        probs.append("probability")
    for column in probs:
        hit = (out["curated"].astype(str) == str(column)[len("prob_"):]).to_numpy()
        value = np.where(hit, 1.0, 0.0) if column != "probability" else np.ones(len(out))
        out[column] = np.where(person, value, np.where(
            by_label, np.nan, pd.to_numeric(out[column], errors="coerce")))
    return out


def write_back_curated(task, items: ItemSet, curated: pd.DataFrame,
                       target: str | Path | None = None) -> Path:
    """Write the curated decisions into the task's native files (e.g. Suite2p ``iscell.npy``).

    Every item must have a decision (a label or a prediction); the original file is backed up
    by the task's writer before it is replaced.
    """
    undecided = curated["curated"].isna()
    if undecided.any():
        first = curated.loc[undecided, "item_id"].astype(str).head(3).tolist()
        raise InputError(target, f"{int(undecided.sum())} items have neither a label nor a "
                         f"prediction (e.g. {first})", "predict first, or label them")
    try:
        return task.write_back(items, curated_predictions(curated),
                               None if target is None else Path(target))
    except NotImplementedError as exc:
        raise InputError(target, str(exc), "export CSV or Parquet instead") from None


#: formats whose write-back replaces the pipeline's own file (after a backup beside it); the
#: others write a new file (``movie_cells.tif``, ``rec_curated.nwb``, ``iscell_curated.zarr``)
IN_PLACE_FORMATS = ("suite2p", "caiman")


def write_back_summary(items: ItemSet, written: Path) -> str:
    """What a write-back did, in words: every source written to (a multi-plane Suite2p run
    writes each plane) and whether originals were backed up."""
    sources = sorted(set(items.table["source"].astype(str)))
    formats = {p.get("format") for p in items.meta.get("parts", [items.meta])}
    where = (str(written) if len(sources) < 2 else
             f"{len(sources)} sources ({', '.join(sources[:4])}{'...' if len(sources) > 4 else ''}"
             f"; the last file {written})")
    kept = (" (each original backed up beside it first, as *.bak-<time>)"
            if formats & set(IN_PLACE_FORMATS) else " (a new file; the originals untouched)")
    return f"wrote {where}{kept}"


__all__ = ["curated_predictions", "curated_table", "export_table", "model_changes",
           "model_decides", "write_back_curated", "write_back_summary"]
