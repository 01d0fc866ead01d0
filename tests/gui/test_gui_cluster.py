"""Cluster widget: cluster real Jurkat crops, link scatter and layer, accept a cluster, undo."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


@pytest.fixture
def loaded_plain(make_napari_viewer, qtbot, jurkat_copy):
    from conftest import load_jurkat

    return load_jurkat(make_napari_viewer(), qtbot, jurkat_copy)


def test_cluster_link_accept_undo(loaded_plain, qtbot):
    from napari_cellcurator._qt.cluster_widget import ClusterWidget

    viewer, session = loaded_plain
    layer = session.layer
    widget = ClusterWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget._k.value = 3
    widget._epochs.value = 2
    worker = widget.run()
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    qtbot.waitUntil(lambda: widget.table is not None, timeout=10_000)
    n = len(session.items)
    assert widget.result["k"] == 3 and len(widget.table) == n
    clusters = widget.table["cluster"].to_numpy()
    assert (layer.features["cluster"].to_numpy() == clusters).all()
    assert len(widget._scatter.get_offsets()) == n
    # the embedding plot looks like the plugin's other plots: dark, not a white square
    from matplotlib.colors import to_rgb

    assert max(to_rgb(widget.figure.get_facecolor())) < 0.3
    assert max(to_rgb(widget.ax.get_facecolor())) < 0.3
    # faces are coloured by cluster: items of different clusters differ
    a, b = np.flatnonzero(clusters == 0)[0], np.flatnonzero(clusters != 0)[0]
    assert not np.allclose(layer.face_color[a], layer.face_color[b])

    # choosing a cluster selects its items in the layer ...
    widget._cluster.value = 1
    rows = set(np.flatnonzero(clusters == 1).tolist())
    assert set(layer.selected_data) == rows
    # ... and selecting in the layer highlights in the scatter
    layer.selected_data = {0, 2}
    assert widget.selected.tolist() == [0, 2]
    assert widget._scatter.get_linewidths()[0] > 0
    assert min(widget._scatter.get_edgecolors()[0][:3]) > 0.7  # light rings on the dark plot

    # accept cluster 1 as "bulk" in one journal action
    widget._cluster.value = 1
    widget._name.value = "bulk"
    action = widget.accept_cluster()
    assert action is not None
    current = session.journal.current_labels()
    got = current.loc[current["label"] == "bulk"]
    ids = set(session.items.table["item_id"].to_numpy()[sorted(rows)])
    assert set(got["item_id"]) == ids and (got["source"] == "cluster").all()
    assert (layer.features.loc[sorted(rows), "label"] == "bulk").all()
    assert "cluster" in layer.features.columns

    # one undo removes the whole bulk action
    widget.undo()
    current = session.journal.current_labels()
    assert not (current["label"] == "bulk").any()
    assert not (layer.features["label"] == "bulk").any()


def test_cluster_labels_are_checked_by_the_task(make_napari_viewer, tmp_path, monkeypatch):
    """A mixture session takes proportions: a class name typed into the Cluster widget is
    refused with a notification (it would break every later merge of the journal)."""
    import pandas as pd

    from napari_cellcurator._qt import cluster_widget
    from napari_cellcurator._qt.common import Session, hub_for
    from napari_cellcurator.core.io.items import ItemSet
    from napari_cellcurator.core.store.project import Project

    errors = []
    monkeypatch.setattr(cluster_widget, "notify_error", lambda e: errors.append(str(e)))
    viewer = make_napari_viewer()
    table = pd.DataFrame({"item_id": [f"tile{k}" for k in range(4)], "source": "movie.tif",
                          "label": [None] * 4})
    items = ItemSet(table, {"frames": np.zeros((4, 5, 8, 8), np.float32)},
                    meta={"classes": ["T98G", "C2C12"]})
    session = Session("mixture", items, tmp_path / "movie.tif", Project(tmp_path / "p"))
    session.layer = viewer.add_points(np.arange(8).reshape(4, 2) * 10.0)
    hub_for(viewer).set_session(session)
    widget = cluster_widget.ClusterWidget(viewer)
    widget._name.value = "neuron"
    assert widget._label_rows([0, 1]) is None
    assert errors and "not a proportion" in errors[0]
    assert len(session.journal.current_labels()) == 0
    widget._name.value = "C2C12"  # a pure snippet of the second type: proportion 1
    assert widget._label_rows([2]) is not None
    labels = session.merged_table()["label"]
    assert labels.dtype == float and labels.iloc[2] == 1.0
    assert session.classes == ["T98G", "C2C12"]
