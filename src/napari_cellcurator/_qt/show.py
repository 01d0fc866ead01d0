"""Show a task's items, predictions and one explanation map in a viewer (demo screenshots)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from napari_cellcurator._qt.common import Session, add_layer_data, hub_for
from napari_cellcurator._qt.layers import layer_data_for
from napari_cellcurator.core.io.items import ItemSet


def show_task_results(viewer, task_name: str, items: ItemSet,
                      predictions: pd.DataFrame | None,
                      heatmap: np.ndarray | None = None,
                      heatmap_item: int | str | None = None,
                      classes: list[str] | None = None) -> list:
    """Add layers for ``items`` coloured by ``predictions`` (+ a heatmap over one item).

    Parameters
    ----------
    viewer
        A napari viewer.
    task_name
        ``celltype``, ``cellness`` or ``mixture``.
    items
        The items (as the task's reader returned them).
    predictions
        Prediction table in item order (``prediction``, ``probability``, ``uncertainty``...).
    heatmap
        A 2-D explanation map of one item (model-input shape), shown over that item.
    heatmap_item
        Row position or ``item_id`` of the item the heatmap belongs to.
    classes
        The model's class names (else the reader's: a mixture's ``type_a``/``type_b``).

    Returns
    -------
    list
        The layers added. The viewer's session is set, so the widgets work on them.
    """
    session = Session(task_name, items, items.meta.get("path") or ".", project=None)
    if classes:  # the model's names (a mixture's cell types: the reader only says type_a/b)
        session.classes = list(classes)
    if predictions is not None:
        if "item_id" in predictions.columns:  # e.g. read back from a CSV: align by id
            ids = items.table["item_id"].astype(str)
            predictions = (predictions.assign(item_id=predictions["item_id"].astype(str))
                           .drop_duplicates("item_id").set_index("item_id")
                           .reindex(ids).reset_index())
        session.predictions = predictions.reset_index(drop=True)
        probs = [c for c in predictions.columns if c.startswith("prob_")]
        if probs:
            session.scores = predictions[probs].to_numpy(dtype=float)
    layers = add_layer_data(viewer, layer_data_for(task_name, items, session.predictions,
                                                   session.classes))
    session.layer = next(ly for ly in layers if ly.metadata.get("cellcurator_role") == "items")
    session.refresh_layer()
    hub_for(viewer).set_session(session)
    if task_name == "mixture" and predictions is not None:
        from napari_cellcurator._qt.task_layers import add_proportion_map

        add_proportion_map(viewer, session)
    if heatmap is not None:
        from napari_cellcurator._qt.explain_widget import (
            item_scale_translate,
            signed_map_colormap,
        )

        row = heatmap_item if heatmap_item is not None else 0
        if isinstance(row, str):
            row = int(np.flatnonzero(items.table["item_id"].to_numpy() == row)[0])
        heat = np.asarray(heatmap, dtype=np.float32)
        scale, translate = item_scale_translate(session, int(row), heat.shape)
        if heat.ndim == 3:  # a stack of maps (activations): one slider axis more
            scale, translate = (1.0, *scale), (0.0, *translate)
        lim = float(np.abs(heat).max()) or 1.0
        layers.append(viewer.add_image(
            heat, name="explanation", scale=scale, translate=translate,
            colormap=signed_map_colormap(), contrast_limits=(-lim, lim), opacity=0.8,
            metadata={"cellcurator_role": "explanation"}))
        centre = session.centre_of(int(row))
        from napari_cellcurator._qt.common import camera_of

        camera_of(viewer).center = tuple(centre)
    return layers
