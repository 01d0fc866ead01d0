"""Small helpers of the Curate, Train and Load widgets: what they show, kept out of the
widget modules (class choices, key help, metric texts, hiding the previous data's layers)."""

from __future__ import annotations

from napari_cellcurator.core.triage import CELL_NAMES, NOT_CELL_NAMES

#: roles of the layers the plugin itself makes (the user's own layers never get these,
#: except "items" when Load → *Use these layers* curates them: see :func:`plugin_made`)
PLUGIN_ROLES = ("image", "items", "proportion_map", "explanation")
#: metadata key of the layers Load adds itself (a Labels layer of shapes or ROIs)
MADE = "cellcurator_made"
#: the Curate table's rows, unless a header was clicked
TABLE_ORDER_NOTE = "table: rows in review order (click a column header to sort)"


def class_names(session) -> list[str]:
    """The classes "label as" offers: the current model's (its config names them, e.g. a
    mixture's two cell types) once a model is loaded, then any other class of the session."""
    if session is None:
        return []
    config = getattr(session, "config", None)
    names = list(getattr(config, "classes", None) or []) if config is not None else []
    if names and session.proportions:  # the two types of proportions 0 and 1: the model's
        return names
    return names + [c for c in session.classes if c not in names]


def class_choices(session) -> list[tuple[str, str]]:
    """``("k: name", name)`` per class: the digit keys' map, on screen (the 10th class and
    later have no digit key)."""
    return [(f"{k + 1}: {c}" if k < 9 else c, c) for k, c in enumerate(class_names(session))]


def key_help(session) -> str:
    """The Curate widget's key line, for the session's task and classes."""
    tail = "l label as, n/p next/prev, u undo, Space overlay"
    if session is None:
        return f"1-9 class, {tail}"
    names = class_names(session)
    lower = [c.lower() for c in names]
    digits = f"1-{min(len(names), 9)} class" if names else "1-9 class"
    if session.proportions:
        return f"c accept proportion, {digits} (pure snippet), {tail}"
    if any(c in CELL_NAMES for c in lower) and any(c in NOT_CELL_NAMES for c in lower):
        return f"c cell, x not cell, {digits}, {tail}"
    return f"c accept prediction, x runner-up, {digits}, {tail}"


def plugin_made(layer) -> bool:
    """Whether the plugin made ``layer`` (a data set's image/items layers, proportion map,
    explanation, a Labels layer Load drew from shapes): never a layer the user made."""
    meta = layer.metadata
    role = meta.get("cellcurator_role")
    if meta.get(MADE) or role in ("image", "proportion_map", "explanation"):
        return True
    return role == "items" and "cellcurator_path" in meta  # the user's: role only


def hide_previous_layers(viewer, keep=()) -> list:
    """Hide (not delete) the layers the plugin made for the data shown so far, so other
    data loaded now are not covered by them; ``keep``: layers of the new data. Returns the
    layers hidden."""
    kept = {id(ly) for ly in keep}
    hidden = [ly for ly in viewer.layers
              if ly.visible and id(ly) not in kept and plugin_made(ly)]
    for ly in hidden:
        ly.visible = False
    return hidden


def metric_name(task_name: str) -> str:
    """The validation metric training reports for ``task_name``, as a plot title says it."""
    from napari_cellcurator.core.tasks import get_task

    return {"macro_f1": "macro F1", "A": "A = 1 − MAE"}.get(
        get_task(task_name).primary_metric(), get_task(task_name).primary_metric())


def epoch_metric(task_name: str, val_metrics: dict):
    """The value of :func:`metric_name` in an epoch's validation metrics (None if absent)."""
    from napari_cellcurator.core.tasks import get_task

    return val_metrics.get(get_task(task_name).primary_metric())


def metrics_text(m: dict | None, proportions: bool) -> str:
    """One line of metrics: A and MAE for proportions, accuracy and macro F1 otherwise."""
    if not m or not m.get("n", 1):
        return "—"
    if proportions:
        a = m.get("A", float("nan"))
        return f"A {a:.3f}, MAE {m.get('mae', 1 - a):.3f}"
    return f"acc {m.get('accuracy', float('nan')):.3f}, macro F1 {m.get('macro_f1', 0):.3f}"


def before_after_text(before, after, version: str, proportions: bool) -> str:
    """Before → after on the labelled items, said to be the items just trained on."""
    n = (after or before or {}).get("n")
    items = f"your {n} labelled items" if n else "your labelled items"
    return (f"on {items} (trained on them, not held out): before "
            f"{metrics_text(before, proportions)} → {version} "
            f"{metrics_text(after, proportions)}")


def publish_session(viewer, session) -> None:
    """Make ``session`` the viewer's current data (the widgets follow); a mixture movie's
    tiles show on every frame of their snippet from the start, not only after Predict."""
    from napari_cellcurator._qt.common import hub_for
    from napari_cellcurator._qt.task_layers import show_tiles_on_their_frames

    hub_for(viewer).set_session(session)
    if session.task_name == "mixture":
        show_tiles_on_their_frames(viewer, session)
