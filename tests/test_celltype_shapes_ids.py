"""Celltype crops of napari Shapes: ids from the shapes' centres (deleting a shape leaves the
other cells' labels where they were), and a shape hidden under later ones is reported."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellcurator.core.errors import InputWarning


def _rect(y0, x0, y1, x1) -> np.ndarray:
    return np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]], float)


def _items(shapes, classes=None):
    from napari_cellcurator._qt.layer_items import celltype_from_shapes

    image = np.random.default_rng(0).random((240, 320)).astype(np.float32)
    return celltype_from_shapes(image, False, shapes, ["rectangle"] * len(shapes), "S",
                                classes, 48)[0]


def test_deleting_a_shape_keeps_the_other_shapes_ids():
    shapes = [_rect(10, 10, 30, 30), _rect(50, 100, 70, 120), _rect(120, 200, 140, 220)]
    before = _items(shapes, ["a", "b", "c"]).table
    after = _items(shapes[1:], ["b", "c"]).table
    assert list(after["item_id"]) == list(before["item_id"])[1:]
    assert list(after["label"]) == ["b", "c"]
    assert before["item_id"].is_unique


def test_a_shape_wholly_under_a_later_one_is_reported():
    shapes = [_rect(20, 20, 25, 25), _rect(10, 10, 40, 40)]
    with pytest.warns(InputWarning, match="1 shape.*under later ones"):
        items = _items(shapes, ["a", "b"])
    assert list(items.table["label"]) == ["b"]


def test_a_label_in_separate_pieces_is_cut_around_its_largest_piece():
    from napari_cellcurator.core.io.label_crops import items_from_labels_layer

    image = np.random.default_rng(1).random((100, 300)).astype(np.float32)
    lab = np.zeros((100, 300), np.int32)
    lab[40:60, 10:20] = 9  # small piece
    lab[40:60, 250:280] = 9  # large piece
    lab[10:20, 100:110] = 3
    with pytest.warns(InputWarning, match=r"\[9\].*separate pieces"):
        items = items_from_labels_layer(image, lab, crop_size=32)
    row = items.table.set_index("label_id").loc[9]
    assert lab[int(round(row["y"])), int(round(row["x"]))] == 9  # on the label, not between


def test_a_label_image_of_another_size_is_refused():
    from napari_cellcurator.core.errors import InputError
    from napari_cellcurator.core.io.label_crops import items_from_labels_layer

    image = np.zeros((100, 100), np.float32)
    lab = np.zeros((200, 200), np.int32)
    lab[150:170, 150:170] = 1
    with pytest.raises(InputError, match="does not match the image"):
        items_from_labels_layer(image, lab)


def test_a_shape_drawn_over_another_leaves_its_id():
    shapes = [_rect(10, 10, 70, 70), _rect(150, 150, 170, 170)]
    before = _items(shapes).table
    after = _items([*shapes, _rect(40, 40, 90, 90)]).table  # over part of the first
    assert list(after["item_id"])[:2] == list(before["item_id"])
