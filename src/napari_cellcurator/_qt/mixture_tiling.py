"""Mixture tiles cut the way a model's data were (its read options: tile, scale, length,
stride, t_stride, channel), so napari scores the snippets the CLI would."""

from __future__ import annotations

from pathlib import Path

from napari_cellcurator.core.io.items import ItemSet


def read_items(path: Path, task: str, channels: list[int] | None, progress=None) -> ItemSet:
    """Job: read items with the task's reader (numpy in, numpy out; ``progress`` for
    readers with long passes over a recording); mixture items record the channel read."""
    from napari_cellcurator.core.tasks import ReadOptions, get_task

    items = get_task(task).read_checked(path, ReadOptions(channels=channels,
                                                          progress=progress))
    if task == "mixture":
        items.meta.setdefault("channel", int(channels[0]) if channels else None)
    return items


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
    from napari_cellcurator.core.pipeline import model_snippet_options, tiling_mismatch

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
    coords = mixture_layer_data(new)[1][0]
    layer.selected_data = set()
    layer.data = coords
    session.items, session.predictions, session.scores = new, None, None
    session.order = session.current = None
    session.refresh_layer()
    hub_for(viewer).changed.emit("session")
    return f"tiles cut again as the model's data were ({problem}): {len(new)} tiles"


def fine_tune_read_extra(viewer, session, config) -> dict | None:
    """Read options for a model fine-tuned from ``config``'s model on the session's items.

    Mixture tiles are first cut again the way the parent's data were (as at Predict), so the
    session's snippets, the parent's original training data and the new model's recorded
    options agree; the new model then records the parent's snippet options (else it would
    claim the reader's defaults and refuse, when re-scoring, the very tiles it learnt from).
    None for other tasks and without a parent model (the reader's defaults hold).
    """
    from napari_cellcurator.core.pipeline import model_snippet_options

    if config is None or config.task != "mixture" or session.task_name != "mixture":
        return None
    retiled = tiles_for_model(viewer, session, config)
    if retiled:
        from napari.utils.notifications import show_info

        show_info(retiled)
    return model_snippet_options(config).as_extra()
