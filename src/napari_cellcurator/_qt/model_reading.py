"""Items read the way a model's data were (its recorded read options), so napari scores
what ``cellcurator predict`` scores: mixture tiles cut again (tile, scale, length, stride,
t_stride, channel); celltype / cellness items of a file or folder read again in the
prediction worker (crop size, point crop, quality filter, frame normalisation, channels,
ROI patch size, context, trace length, neuropil...), items made from layers refused where
they differ. Items record how they were read in ``meta["read_options"]``."""

from __future__ import annotations

from pathlib import Path

from napari_cellcurator.core.io.items import ItemSet


def read_items(path: Path, task: str, channels: list[int] | None, progress=None) -> ItemSet:
    """Job: read items with the task's reader (numpy in, numpy out; ``progress`` for
    readers with long passes over a recording); they record the options they were read
    with and the path (``read_from``: what Predict reads again for a model that reads
    otherwise); mixture items record the channel read."""
    from napari_cellcurator.core.pipeline import options_record
    from napari_cellcurator.core.tasks import ReadOptions, get_task

    options = ReadOptions.every_item(channels)  # cells QC would drop: shown, marked
    options.progress = progress
    items = get_task(task).read_checked(path, options)
    items.meta["read_options"] = options_record(options)
    items.meta["read_from"] = str(path)
    if task == "mixture":
        items.meta.setdefault("channel", int(channels[0]) if channels else None)
    return items


def record_layer_read(items: ItemSet, task: str, crop: int) -> ItemSet:
    """Record on items made from layers (Load → Use these layers) the read options that
    describe how they were made: celltype crops of ``crop`` px around every cell (no
    quality filter), cellness and mixture with the readers' defaults."""
    from napari_cellcurator.core.io.points import POINT_INPUT

    crop = items.meta.get("crop_size") or crop  # the crop the worker cut with
    extra = ({"point_crop": int(crop), "input_size": POINT_INPUT, "frame_norm": True,
              "qc": False} if task == "celltype" else {})
    items.meta["read_options"] = {"channels": None, "crop_size": None, "extra": extra}
    items.meta.pop("read_from", None)
    return items


def reread_for_model(session, config) -> tuple[str | None, str | None]:
    """Before a (celltype / cellness) prediction: ``(path, warning)``: the path to read
    again, the way ``config``'s model reads data, where the session's items were read
    otherwise, and for items made from layers (nothing to read again) a warning saying
    which option differs; ``(None, None)`` where they agree."""
    from napari_cellcurator.core.pipeline import read_mismatch

    if config.task == "mixture":  # tiles are cut again on the GUI side: tiles_for_model
        return None, None
    path = session.items.meta.get("read_from")
    # the cells a person placed are all items: which ones a quality filter would keep
    # does not change how each is cut
    problem = read_mismatch(config, None, session.items, () if path else ("qc",))
    if problem is None:
        return None, None
    if path:
        return str(path), None
    return None, (f"{problem}: these items were made from layers and are scored as they "
                  "are; for the scores `cellcurator predict` gives, make them again as the "
                  "model's data were (Load → crop size = the model's point crop) or predict "
                  "the data's file with `cellcurator predict`")


def items_for_model(config, path: str, items: ItemSet, progress=None
                    ) -> tuple[ItemSet, str | None]:
    """Worker body: ``path`` read as ``config``'s model reads data (as the CLI does), rows
    in the order of ``items`` (the session's, by item id), and a note of items the model's
    read has that the session lacks (or None). Raises where some of ``items`` are not among
    them (another crop size or id scheme...): nothing is scored then. Every cell is read
    (ones the model's quality filter would drop are marked in ``qc_flag``), as the session's
    were."""
    import pandas as pd

    from napari_cellcurator.core.pipeline import read_for_model, read_mismatch

    problem = read_mismatch(config, None, items)
    new = read_for_model(config, path, progress=progress, every_item=True)
    index = pd.Index(new.table["item_id"].astype(str))
    ids = items.table["item_id"].astype(str).tolist()
    rows = index.get_indexer(ids) if index.is_unique else None
    if rows is None or (rows < 0).any():
        missing = len(ids) if rows is None else int((rows < 0).sum())
        raise RuntimeError(f"{problem}; read as the model's data were, {missing} of the "
                           f"{len(ids)} loaded items are not among its items: load {path} "
                           "again with the model's read options, or predict it with "
                           "`cellcurator predict`")
    out = new.subset(rows)
    for key, value in items.meta.items():  # the session's own keys (classes...) stay
        out.meta.setdefault(key, value)
    extra = len(new) - len(ids)
    note = (f"{extra} items the model's reading of {Path(path).name} has are not among the "
            "loaded ones and were not scored" if extra else None)
    return out, note


def tiles_for_model(viewer, session, config) -> str | None:
    """Before a prediction: re-tile a mixture session's movie the way ``config``'s model
    reads movies where the session's tiles were cut otherwise (the item layer's points
    follow; predictions and the review order start again). Raises, saying what differs and
    what to do, where the tiles cannot be cut again here (a manifest, another channel).
    Returns what was changed, or None."""
    from napari.layers import Points

    from napari_cellcurator._qt.common import hub_for
    from napari_cellcurator._qt.task_layers import mixture_layer_data
    from napari_cellcurator.core.io.mixture_readers import movie_items
    from napari_cellcurator.core.io.movies import movie_from_array
    from napari_cellcurator.core.pipeline import (
        model_snippet_options,
        options_record,
        tiling_mismatch,
    )
    from napari_cellcurator.core.tasks import get_task

    items = session.items
    problem = tiling_mismatch(config, items)
    if problem is None:
        return None
    opts = model_snippet_options(config)
    layer = session.layer
    if "channel" in items.meta and items.meta["channel"] != opts.channel:
        raise RuntimeError(f"{problem}: type channel {opts.channel} in Load → channels and "
                           "load the data again")
    if items.meta.get("movie") is None or "t_stride" not in items.meta \
            or not isinstance(layer, Points):
        raise RuntimeError(f"{problem}: predict these data with `cellcurator predict`, "
                           "which reads them as the model's data were read")
    movie = movie_from_array(items.meta["movie"], str(items.meta.get("path") or "movie"),
                             False, opts.length)
    new = movie_items(movie, opts)
    for key, value in items.meta.items():  # the session's own keys (channels...) stay
        new.meta.setdefault(key, value)
    new.meta["read_options"] = options_record(
        get_task(config.task).read_options_from(config.preprocessing))
    new.meta.pop("read_from", None)  # tiles of a movie in memory now, not of the file's read
    coords = mixture_layer_data(new)[1][0]
    layer.selected_data = set()
    layer.data = coords
    stranded = _labels_off_the_tiles(session, items, new)
    session.items, session.predictions, session.scores = new, None, None
    session.order = session.current = None
    session.refresh_layer()
    hub_for(viewer).changed.emit("session")
    kept = (f"; {stranded} label(s) of the earlier tiles are on no new tile: kept in the "
            "journal, shown again when the movie is loaded with the earlier tiling"
            if stranded else "")
    return f"tiles cut again as the model's data were ({problem}): {len(new)} tiles{kept}"


def _labels_off_the_tiles(session, old: ItemSet, new: ItemSet) -> int:
    """How many journal labels are on tiles of ``old`` that ``new`` does not have."""
    if session.journal is None:
        return 0
    labelled = set(session.journal.current_labels()["item_id"].astype(str))
    gone = set(old.table["item_id"].astype(str)) - set(new.table["item_id"].astype(str))
    return len(labelled & gone)


def fine_tune_read_extra(viewer, session, config) -> dict | None:
    """Read options for a model fine-tuned from ``config``'s model on the session's items.

    Other tasks: the options the session's items were read with (items made from layers:
    their crop), so the new model reads data as it was trained. Mixture tiles are first cut
    again the way the parent's data were (as at Predict), so the
    session's snippets, the parent's original training data and the new model's recorded
    options agree; the new model then records the parent's snippet options (else it would
    claim the reader's defaults and refuse, when re-scoring, the very tiles it learnt from).
    None for other tasks and without a parent model (the reader's defaults hold).
    """
    from napari_cellcurator.core.pipeline import model_snippet_options

    if session.task_name != "mixture":
        read = session.items.meta.get("read_options") or {}
        return dict(read.get("extra") or {}) or None
    if config is None or config.task != "mixture":
        return None
    retiled = tiles_for_model(viewer, session, config)
    if retiled:
        from napari.utils.notifications import show_info

        show_info(retiled)
    return model_snippet_options(config).as_extra()
