"""Celltype: frames annotated in other tools' formats (QuPath, LabelMe, CVAT, Cellpose masks)
read as the same cells as the real Chula point files they were converted from."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from _celltype_helpers import chula_subset_at, expert_points, reads_as_the_points

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.tasks import ReadOptions, get_task


@pytest.fixture(scope="module")
def chula_subset(shared_data, tmp_path_factory) -> Path:
    return chula_subset_at(shared_data / "celltype" / "chula_rbc12",
                           tmp_path_factory.mktemp("chula") / "chula3")


def _octagon(x: float, y: float, r: float) -> list[list[float]]:
    """A closed ring around pixel (x, y) as QuPath writes outlines (pixel centres at +0.5)."""
    angles = np.linspace(0, 2 * np.pi, 9)
    return [[x + 0.5 + r * np.cos(a), y + 0.5 + r * np.sin(a)] for a in angles]


def test_qupath_geojson_objects_read_as_cells(chula_subset, tmp_path):
    """The Chula frames as QuPath exports them: detections with a classification (areas and
    tiles around them are not cells), or the Points tool's MultiPoint annotations, one per
    class, in a plain list (older QuPath) named <image name>.geojson."""
    import json

    from napari_cellcurator._reader import detect_task
    from napari_cellcurator.core.io.points import CHULA_NAMES

    qp = tmp_path / "qupath"
    qp.mkdir()
    for image in (chula_subset / "images").iterdir():
        shutil.copy(image, qp)
    region = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
        [[0, 0], [640, 0], [640, 480], [0, 480], [0, 0]]]},
        "properties": {"objectType": "annotation", "classification": {"name": "Region*"}}}
    tile = {**region, "properties": {"objectType": "tile"}}
    for stem, points in expert_points(chula_subset).items():
        if stem == "103":  # the Points tool: a MultiPoint per class, a list of features
            by_class: dict[int, list] = {}
            for x, y, cls in points:
                by_class.setdefault(cls, []).append([x + 0.5, y + 0.5])
            features = [{"type": "Feature", "geometry": {"type": "MultiPoint",
                                                         "coordinates": pts},
                         "properties": {"objectType": "annotation",
                                        "classification": {"name": CHULA_NAMES[c]}}}
                        for c, pts in by_class.items()]
            (qp / "103.jpg.geojson").write_text(json.dumps(features))
            continue
        cells = [{"type": "Feature", "geometry": {"type": "Polygon",
                                                  "coordinates": [_octagon(x, y, 18)]},
                  "properties": {"objectType": "detection",
                                 "classification": {"name": CHULA_NAMES[cls]}}}
                 for x, y, cls in points]
        (qp / f"{stem}.geojson").write_text(json.dumps(
            {"type": "FeatureCollection", "features": [region, tile, *cells]}))
    ours = get_task("celltype").read(chula_subset, ReadOptions(extra={"qc": False}))
    theirs = get_task("celltype").read(qp, ReadOptions(extra={"qc": False}))
    assert detect_task(qp) == "celltype"
    order = np.argsort(theirs.table["item_id"].to_numpy())
    expected = np.argsort(ours.table["item_id"].to_numpy())
    assert list(theirs.table["item_id"].iloc[order]) == list(ours.table["item_id"].iloc[expected])
    assert list(theirs.table["label"].iloc[order]) == list(ours.table["label"].iloc[expected])
    np.testing.assert_array_equal(theirs.arrays["image"][order], ours.arrays["image"][expected])
    (qp / "12.geojson").write_text('{"type": "FeatureCollection", "features": [')
    with pytest.raises(InputError, match="12.geojson: is not readable GeoJSON"):
        get_task("celltype").read(qp, ReadOptions())


def test_labelme_shapes_read_as_cells(chula_subset, tmp_path):
    """The Chula frames annotated in LabelMe (<stem>.json beside each image): polygons,
    rectangles, circles and points, each a cell at its centre; a line is not a cell."""
    import json

    from napari_cellcurator.core.io.points import CHULA_NAMES

    lm = tmp_path / "labelme"
    lm.mkdir()
    for image in (chula_subset / "images").iterdir():
        shutil.copy(image, lm)
    kinds = ("polygon", "rectangle", "circle", "point")
    for stem, points in expert_points(chula_subset).items():
        shapes = [{"label": "scale bar", "points": [[5, 5], [60, 5]], "shape_type": "line"}]
        for k, (x, y, cls) in enumerate(points):
            kind = kinds[k % 4]
            corners = {"polygon": [p[:] for p in _octagon(x - 0.5, y - 0.5, 15)[:-1]],
                       "rectangle": [[x - 16, y - 12], [x + 16, y + 12]],
                       "circle": [[x, y], [x + 17, y]], "point": [[x, y]]}[kind]
            shapes.append({"label": CHULA_NAMES[cls], "points": corners, "shape_type": kind})
        (lm / f"{stem}.json").write_text(json.dumps(
            {"version": "5.4.1", "shapes": shapes, "imagePath": f"{stem}.jpg"}))
    reads_as_the_points(chula_subset, lm)
    (lm / "12.json").write_text('{"shapes": [{"label": "normal"}]}')
    with pytest.raises(InputError, match="12.json: shape 1 has no"):
        get_task("celltype").read(lm, ReadOptions())


def test_frames_with_cellpose_masks_give_one_unlabelled_cell_per_label(chula_subset,
                                                                        tmp_path):
    """Cellpose run on each smear (field_cp_masks.png, or the GUI's field_seg.npy): a cell
    per label at its centre, unlabelled, to predict and curate; the masks are no frames."""
    from PIL import Image

    from napari_cellcurator._reader import detect_task
    from napari_cellcurator.core.io.label_crops import items_from_labels_layer

    cp = tmp_path / "cellpose"
    cp.mkdir()
    yy, xx = np.mgrid[:480, :640]
    expected = {}
    for k, (stem, points) in enumerate(expert_points(chula_subset).items()):
        shutil.copy(chula_subset / "images" / f"{stem}.jpg", cp)
        labels = np.zeros((480, 640), np.uint16)
        for n, (x, y, _cls) in enumerate(points[:12], 1):
            labels[(yy - y) ** 2 + (xx - x) ** 2 <= 14 ** 2] = n
        if k == 0:
            np.save(cp / f"{stem}_seg.npy", {"masks": labels, "filename": f"{stem}.jpg"},
                    allow_pickle=True)
        else:
            Image.fromarray(labels.astype(np.uint8)).save(cp / f"{stem}_cp_masks.png")
        image = np.asarray(Image.open(cp / f"{stem}.jpg"))
        expected[stem] = items_from_labels_layer(image, labels)
    assert detect_task(cp) == "celltype"
    items = get_task("celltype").read(cp, ReadOptions(extra={"qc": False}))
    assert items.table["label"].isna().all()
    for stem, ours in expected.items():
        mine = items.table["source"].astype(str).str.endswith(f"/{stem}.jpg").to_numpy()
        np.testing.assert_allclose(items.table.loc[mine, ["y", "x"]].to_numpy(dtype=float),
                                   ours.table[["y", "x"]].to_numpy(dtype=float))
        np.testing.assert_array_equal(items.arrays["image"][mine], ours.arrays["image"])
    one_cell = np.zeros((10, 12), np.uint8)
    one_cell[4:7, 4:7] = 1
    Image.fromarray(one_cell).save(cp / "12_cp_masks.png")
    with pytest.raises(InputError, match=r"12_cp_masks.png: annotates 12.jpg as 12×10 px "
                                         r"\(width × height\) but the image is 640×480 px"):
        get_task("celltype").read(cp, ReadOptions())


def test_cvat_export_shapes_read_as_cells(chula_subset, tmp_path):
    """The Chula frames as a "CVAT for images 1.1" export (annotations.xml + images/): boxes,
    polygons, ellipses and points, each a cell at its centre; tags are not cells."""
    from napari_cellcurator.core.io.points import CHULA_NAMES

    cv = tmp_path / "cvat"
    shutil.copytree(chula_subset / "images", cv / "images")
    images = []
    for k, (stem, points) in enumerate(expert_points(chula_subset).items()):
        shapes = ['<tag label="smear" source="manual"></tag>']
        for n, (x, y, cls) in enumerate(points):
            cx, cy, name = x + 0.5, y + 0.5, CHULA_NAMES[cls]  # pixel centres at +0.5
            kind = n % 4
            if kind == 0:
                shapes.append(f'<box label="{name}" xtl="{cx - 17}" ytl="{cy - 20}" '
                              f'xbr="{cx + 17}" ybr="{cy + 20}" z_order="0"></box>')
            elif kind == 1:
                ring = ";".join(f"{px:.4f},{py:.4f}" for px, py in _octagon(x, y, 15)[:-1])
                shapes.append(f'<polygon label="{name}" points="{ring}"></polygon>')
            elif kind == 2:
                shapes.append(f'<ellipse label="{name}" cx="{cx}" cy="{cy}" rx="16" '
                              'ry="14"></ellipse>')
            else:
                shapes.append(f'<points label="{name}" points="{cx},{cy}"></points>')
        images.append(f'<image id="{k}" name="{stem}.jpg" width="640" height="480">'
                      f'{"".join(shapes)}</image>')
    (cv / "annotations.xml").write_text('<?xml version="1.0" encoding="utf-8"?>\n<annotations>'
                                        f'<version>1.1</version>{"".join(images)}'
                                        '</annotations>')
    reads_as_the_points(chula_subset, cv)
    (cv / "annotations.xml").write_text('<annotations><image name="1.jpg"><box label="x" '
                                        'xtl="3"></box></image></annotations>')
    with pytest.raises(InputError, match="annotations.xml: image '1.jpg': a <box> has no"):
        get_task("celltype").read(cv, ReadOptions())
