"""The curation commands of ``cellcurator``: ``labels``, ``review`` and ``export``.

They share the napari widgets' project folder and label journal, so a curation started in the
GUI can be continued, audited or exported from a shell.
"""

from __future__ import annotations

import sys
from pathlib import Path

from napari_cellcurator._cli_args import task_name


def _open_curation(a, read_items: bool = True, predictions=None):
    """(task, items or None, project) of the curation commands' --data/--project/--task;
    items read with every cell kept, as napari's Load reads them — or, with --model, as that
    model reads data (its tiling, crop, channels), as ``predict`` did. Where none of the
    items so read are in ``predictions`` and the model that made them is still on disk (the
    table's ``model_dir``), the data are read as that model reads them, said on stderr."""
    from napari_cellcurator.core.store.project import Project
    from napari_cellcurator.core.tasks import get_task

    model = getattr(a, "model", None)
    config = _model_config(model) if model else None
    task = get_task(task_name(a.task or (config.task if config else None), a.data))
    _check_model_task(config, task, model)
    items = _curation_items(a.data, task, config) if read_items else None
    made_by = None if config is not None else _predicting_model(predictions)
    if items is not None and made_by and not _shares_items(items, predictions):
        config = _model_config(made_by)
        _check_model_task(config, task, made_by)
        print(f"cellcurator: the data are read as the model that made the predictions "
              f"reads them ({made_by})", file=sys.stderr)
        items = _curation_items(a.data, task, config)
    project = (Project(a.project, user=a.user) if a.project
               else Project.for_data(a.data, user=a.user))
    return task, items, project


def _curation_items(data, task, config):
    """Every item of ``data``: as ``config``'s model reads data, or with the defaults."""
    from napari_cellcurator.core.tasks import ReadOptions

    if config is None:
        return task.read_many([data], ReadOptions.every_item())
    from napari_cellcurator.core.pipeline import read_for_model

    return read_for_model(config, data, task, every_item=True)


def _check_model_task(config, task, model) -> None:
    if config is not None and config.task != task.name:
        from napari_cellcurator.core.errors import CellCuratorError

        raise CellCuratorError(f"model {model} is a {config.task} model; the data are "
                               f"curated as {task.name}")


def _model_config(model_dir):
    """The config of a model folder (torch is imported only then)."""
    from napari_cellcurator.core.store.modelio import read_config

    return read_config(model_dir)


def _predicting_model(predictions) -> str | None:
    """The model folder a ``predict`` table names (its ``model_dir``), if still on disk."""
    from napari_cellcurator.core.batch import MODEL_DIR
    from napari_cellcurator.core.store.modelio import CONFIG_NAME

    if predictions is None or MODEL_DIR not in predictions.columns:
        return None
    folders = predictions[MODEL_DIR].dropna().astype(str).unique()
    return folders[0] if len(folders) == 1 and (Path(folders[0]) / CONFIG_NAME).is_file() \
        else None


def _shares_items(items, predictions) -> bool:
    return bool(predictions["item_id"].astype(str).isin(
        set(items.table["item_id"].astype(str))).any())


def _safe_out(out: str | None, data: str) -> None:
    """Refuse an output path that would replace the input data or a file of it."""
    if out:
        from napari_cellcurator.core.batch import check_table_out

        check_table_out(Path(out), data)


def _read_predictions(path: str):
    """The prediction table of ``predict --out`` (``.csv``, ``.parquet`` or the ``.zarr``
    folder, whose table is its ``predictions.parquet``)."""
    import pandas as pd

    from napari_cellcurator.core.errors import InputError

    suffix = Path(path).suffix.lower()
    if suffix == ".zarr" and (Path(path) / "predictions.parquet").is_file():
        path, suffix = str(Path(path) / "predictions.parquet"), ".parquet"
    try:
        table = (pd.read_parquet(path) if suffix == ".parquet"  # ids stay text ("007")
                 else pd.read_csv(path, dtype={"item_id": str}))
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot read the prediction table ({exc})") from None
    if "item_id" not in table.columns:
        raise InputError(path, "has no item_id column", "a `cellcurator predict` output")
    return table.assign(item_id=table["item_id"].astype(str))


def _cmd_labels(a) -> int:
    from napari_cellcurator.core.anchors import item_anchors
    from napari_cellcurator.core.errors import InputError
    from napari_cellcurator.core.io.items import current_item_id

    task, items, project = _open_curation(a, read_items=a.set is not None)
    with project:
        journal = project.journal
        if a.export:
            _safe_out(a.export, a.data)
            print(f"wrote {journal.export(a.export)}: {len(journal.current_labels())} labels")
        elif a.set:
            named, label = a.set
            item = current_item_id(items.table, named)  # an id of an older version too
            if item is None:
                raise InputError(a.data, f"has no item {named!r}")
            journal_labels = journal.current_labels()["label"].astype(str)
            known = list(dict.fromkeys([*task.classes_from(items), *journal_labels]))
            label = task.check_label(label, known, new_class=a.new_class)
            row = items.table[items.table["item_id"].astype(str) == item]
            anchor = (item_anchors(row) or [None])[0]  # ROIs: where it is (labels follow)
            journal.set_label(item, label, source="human", anchor=anchor)
            print(f"{item}: {label}")
        elif a.undo:
            undone = journal.undo()
            print("nothing to undo" if not undone else
                  "undid " + ", ".join(f"{e.item_id} ({e.label})" for e in undone))
        else:
            history = journal.history(a.history or None)
            print(history.to_string(index=False) if len(history) else "no label events")
    return 0


def _cmd_review(a) -> int:
    from napari_cellcurator.core.curation import check_predictions_match, export_table
    from napari_cellcurator.core.triage import human_labels, merge_labels, review_order

    _safe_out(a.out, a.data)
    predictions = _read_predictions(a.predictions)
    task, items, project = _open_curation(a, predictions=predictions)
    check_predictions_match(items.table, predictions, a.predictions, a.data)
    with project:
        labelled, counts = human_labels(merge_labels(
            items.table, project.journal.current_labels(), task.kind == "proportion"))
    order = review_order(predictions, a.order, labelled=labelled, label_counts=counts,
                         exclude_labelled=not a.include_labelled)
    table = predictions.iloc[order[:a.top] if a.top else order].reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    if a.out:
        print(f"wrote {export_table(table, a.out)}: {len(table)} items")
    else:
        print(table.to_string(index=False, max_rows=60))
    return 0


#: help of ``export --model-decides``
MODEL_DECIDES_HELP = ("uncurated items take the model's prediction instead of the pipeline's "
                      "own label")


def add_model_decides_arg(p) -> None:
    """``--model-decides`` of ``cellcurator export`` (off: a write-back changes only what a
    person decided; Suite2p / CaImAn keep their own label for every other item)."""
    p.add_argument("--model-decides", action="store_true", help=MODEL_DECIDES_HELP)


def _cmd_export(a) -> int:
    from napari_cellcurator.core.curation import (
        check_predictions_match,
        curated_table,
        export_table,
        model_decides,
        write_back_curated,
        write_back_summary,
    )

    _safe_out(None if a.write_back else a.out, a.data)
    predictions = _read_predictions(a.predictions) if a.predictions else None
    task, items, project = _open_curation(a, predictions=predictions)
    if predictions is not None:
        check_predictions_match(items.table, predictions, a.predictions, a.data)
    model = model_decides(task, getattr(a, "model_decides", False))
    with project:
        table = curated_table(items.table, predictions, project.journal.current_labels(),
                              model_over_file_labels=model,
                              proportions=task.kind == "proportion")
    counts = table["curated_from"].value_counts().to_dict()
    if a.write_back:
        written = write_back_curated(task, items, table)
        print(f"{write_back_summary(items, written)}; decisions {counts}")
    else:
        print(f"wrote {export_table(table, a.out)}: {len(table)} items, decisions {counts}")
    note = _model_note(task, table, model, predictions is not None)
    if note:
        print(note)
    return 0


def _model_note(task, table, model: bool, predicted: bool) -> str:
    """What the model did to the pipeline's own labels, in words."""
    from napari_cellcurator.core.curation import model_changes

    if model:
        return (f"--model-decides: the model changed {model_changes(table)} of the "
                "pipeline's own labels")
    if predicted and getattr(task, "file_labels_are_predictions", False):
        return ("items nobody curated keep the pipeline's own label (--model-decides lets the "
                "model's prediction replace it)")
    return ""
