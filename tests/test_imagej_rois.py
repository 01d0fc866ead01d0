"""Cellness candidates from a movie + an ImageJ/Fiji ROI Manager set (``RoiSet.zip``)."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from roifile import ROI_TYPE, ImagejRoi, roiread, roiwrite

from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.io.imagej_rois import rois_from_imagej
from napari_cellcurator.core.io.roi_masks import mask_file_for, read_movie_with_masks
from napari_cellcurator.core.tasks import get_task

TASK = get_task("cellness")
SHAPE = (96, 96)
OVAL = (10, 20, 30, 32)  # left, top, right, bottom: semi-axes 10 (x) and 6 (y)


def _rect(name: str, left: int, top: int, right: int, bottom: int, **kw) -> ImagejRoi:
    return ImagejRoi(roitype=kw.pop("roitype", ROI_TYPE.RECT), left=left, top=top,
                     right=right, bottom=bottom, name=name, **kw)


def _donut() -> ImagejRoi:
    """A composite ROI: a 20 px square with a 10 px square hole."""
    path = np.array([0, 50, 50, 1, 70, 50, 1, 70, 70, 1, 50, 70, 4,
                     0, 55, 55, 1, 65, 55, 1, 65, 65, 1, 55, 65, 4], np.float32)
    return _rect("donut", 50, 50, 70, 70, multi_coordinates=path, shape_roi_size=len(path))


def _roi_set() -> list[ImagejRoi]:
    """Every kind of ROI a Fiji user saves, in the zip's order (positions 0..8)."""
    return [
        _rect("oval", *OVAL, roitype=ROI_TYPE.OVAL),
        _rect("rect", 40, 5, 50, 11),  # 10 × 6 pixels
        ImagejRoi.frompoints([[10, 50], [30, 50], [30, 70], [10, 70]], name="a"),
        ImagejRoi.frompoints([[20, 60], [40, 60], [40, 80], [20, 80]], name="b"),  # overlaps a
        ImagejRoi(roitype=ROI_TYPE.LINE, x1=1, y1=2, x2=40, y2=30, name="line"),
        ImagejRoi.frompoints([[200, 200], [220, 200], [220, 220]], name="outside"),
        _donut(),
        _unnamed([[80, 80], [90, 80], [90, 90]]),  # named after its file, as ImageJ does
        _points("pt", [[5, 5], [8, 9], [6, 12]]),  # a multi-point ROI (3 points)
    ]


def _unnamed(xy: list) -> ImagejRoi:
    roi = ImagejRoi.frompoints(xy)
    roi.name = ""  # roifile names new ROIs; ImageJ's may have no name in the record
    return roi


def _points(name: str, xy: list) -> ImagejRoi:
    roi = ImagejRoi.frompoints(xy, name=name)
    roi.roitype = ROI_TYPE.POINT
    return roi


@pytest.fixture(scope="module")
def movie() -> np.ndarray:
    from napari_cellcurator.core.data.simulate_calcium import simulate_recording

    return simulate_recording(3, shape=SHAPE, n_frames=60).movie


def _read(movie: np.ndarray, zip_path: Path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rois = rois_from_imagej(movie, zip_path, zip_path.with_name("rec.tif"))
    return rois, [str(w.message) for w in caught if issubclass(w.category, InputWarning)]


@pytest.fixture
def roi_zip(tmp_path) -> Path:
    roiwrite(tmp_path / "RoiSet.zip", _roi_set(),
             name=[f"m{k}" for k in range(len(_roi_set()))])  # member names m0.roi, ...
    return tmp_path / "RoiSet.zip"


def _masks(rois) -> dict[str, np.ndarray]:
    out = {}
    for name, (ys, xs, lam) in zip(rois.columns["roi_name"], rois.footprints, strict=True):
        mask = np.zeros(SHAPE, bool)
        mask[ys, xs] = True
        assert len(ys) == mask.sum() and np.all(lam == 1)  # every pixel once, unit weight
        out[name] = mask
    return out


def test_every_area_roi_is_rasterised_on_its_own(movie, roi_zip):
    rois, _ = _read(movie, roi_zip)
    masks = _masks(rois)
    assert list(masks) == ["oval", "rect", "a", "b", "donut", "m7"]
    oval = masks["oval"]
    assert abs(oval.sum() - np.pi * 10 * 6) < 0.03 * np.pi * 10 * 6  # an ellipse, not a box
    ys, xs = np.nonzero(oval)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (20, 31, 10, 29)
    assert not oval[20, 10] and oval[26, 20]  # corner out, centre in
    rect = np.zeros(SHAPE, bool)
    rect[5:11, 40:50] = True
    np.testing.assert_array_equal(masks["rect"], rect)
    # polygons cover the pixels whose centres are inside (ImageJ's rule): x 10..29, y 50..69
    assert masks["a"].sum() == 400 and masks["a"][50:70, 10:30].all()
    overlap = np.zeros(SHAPE, bool)
    overlap[60:70, 20:30] = True
    np.testing.assert_array_equal(masks["a"] & masks["b"], overlap)  # both keep the overlap
    assert masks["donut"].sum() == 400 - 100 and not masks["donut"][60, 60]  # hole stays
    assert rois.fmt == "imagej_rois" and rois.meta["mask_path"] == str(roi_zip)


def test_traces_are_the_movie_mean_inside_each_roi(movie, roi_zip):
    rois, _ = _read(movie, roi_zip)
    for k, mask in enumerate(_masks(rois).values()):
        np.testing.assert_allclose(rois.traces[k], movie[:, mask].mean(axis=1),
                                   rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rois.mean_image, movie.mean(axis=0), rtol=1e-5, atol=1e-6)
    assert rois.neuropil.shape == rois.traces.shape


def test_lines_points_and_rois_off_the_frame_are_skipped_with_one_warning_each(
        movie, roi_zip):
    rois, messages = _read(movie, roi_zip)
    assert len(messages) == 2 and all(str(roi_zip) in m for m in messages)
    assert "2 line/point ROI(s) skipped" in messages[0]
    assert "1 ROI(s) with no pixel inside" in messages[1] and "outside" in messages[1]
    # positions in the zip and names survive; ids come from the names
    assert list(rois.columns["zip_index"]) == [0, 1, 2, 3, 6, 7]
    assert rois.columns["item_id"][:2] == ["rec:roioval", "rec:roirect"]
    assert rois.columns["item_id"][-1] == "rec:roim7"


def test_partly_outside_rois_are_clipped_and_repeated_names_stay_apart(movie, tmp_path):
    with warnings.catch_warnings():  # zipfile warns of the repeated member name
        warnings.simplefilter("ignore", UserWarning)
        roiwrite(tmp_path / "RoiSet.zip", [_rect("c", 90, 90, 110, 100),
                                           _rect("c", 0, 0, 4, 4)])
    rois, messages = _read(movie, tmp_path / "RoiSet.zip")
    assert not messages
    assert [len(fp[0]) for fp in rois.footprints] == [36, 16]  # 6 × 6 inside the frame
    assert rois.columns["item_id"] == ["rec:roic", "rec:roic@1"]


def _write_movie(folder: Path, movie: np.ndarray, name: str = "rec.tif") -> Path:
    tifffile.imwrite(folder / name, movie)
    return folder / name


def test_detection_order_beside_the_movie(movie, tmp_path):
    from napari_cellcurator._reader import detect_task, get_reader

    rec = _write_movie(tmp_path, movie)
    assert mask_file_for(rec) is None and detect_task(rec) is None
    with zipfile.ZipFile(tmp_path / "rec.zip", "w") as zf:  # an archive, not a ROI set
        zf.writestr("notes.txt", "not ROIs")
    assert mask_file_for(rec) is None
    for name in ("RoiSet.zip", "rec.zip", "rec_rois.zip", "rec_RoiSet.zip"):
        roiwrite(tmp_path / name, _roi_set()[:2], mode="w")
        assert mask_file_for(rec) == tmp_path / name  # each later one takes precedence
    assert detect_task(rec) == "cellness"
    assert detect_task(tmp_path / "RoiSet.zip") is None  # napari opens the movie, not the zip
    assert get_reader(str(tmp_path / "RoiSet.zip")) is None
    tifffile.imwrite(tmp_path / "rec_masks.tif", np.ones(SHAPE, np.uint16))
    assert mask_file_for(rec) == tmp_path / "rec_masks.tif"  # label images come first


def test_read_rois_reads_the_movie_with_its_roi_set(movie, roi_zip):
    rec = _write_movie(roi_zip.parent, movie)
    with pytest.warns(InputWarning):
        items = TASK.read_many([rec])
    assert items.meta["format"] == "imagej_rois" and len(items) == 6
    assert list(items.table["roi_name"]) == ["oval", "rect", "a", "b", "donut", "m7"]
    assert list(items.table["zip_index"]) == [0, 1, 2, 3, 6, 7]
    assert list(items.table["roi_index"]) == list(range(6))  # rows of the footprints
    assert items.table["item_id"].is_unique and items.arrays["trace"].shape == (6, 60)


def test_a_single_roi_file(movie, tmp_path):
    _roi_set()[0].tofile(tmp_path / "cell.roi")
    rois = read_movie_with_masks(_write_movie(tmp_path, movie), tmp_path / "cell.roi")
    assert rois.columns["item_id"] == ["rec:roioval"] and rois.fmt == "imagej_rois"


@pytest.mark.parametrize(("content", "message"), [
    (b"PK\x03\x04 this is not really a zip", "cannot be read as an ImageJ ROI set"),
    ({"readme.txt": b"hello"}, "holds no ImageJ .roi files"),
    ({"bad.roi": b"x" * 80}, "bad.roi is not an ImageJ ROI"),
    ([ImagejRoi(roitype=ROI_TYPE.LINE, x1=1, y1=2, x2=9, y2=9, name="l")], "no area ROI"),
])
def test_bad_roi_sets_are_one_error_naming_the_zip(movie, tmp_path, content, message):
    zip_path = tmp_path / "rec_RoiSet.zip"
    if isinstance(content, bytes):
        zip_path.write_bytes(content)
    elif isinstance(content, dict):
        with zipfile.ZipFile(zip_path, "w") as zf:
            for name, data in content.items():
                zf.writestr(name, data)
    else:
        roiwrite(zip_path, content)
    rec = _write_movie(tmp_path, movie)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        with pytest.raises(InputError, match=message) as err:
            TASK.read_many([rec])
    assert str(zip_path) in str(err.value) and "\n" not in str(err.value)


def test_cli_bad_zip_is_one_line_and_status_2(movie, tmp_path, capsys):
    from napari_cellcurator.cli import main

    (tmp_path / "RoiSet.zip").write_bytes(b"garbage")
    rec = _write_movie(tmp_path, movie)
    assert main(["predict", "--model", "shipped:cellness", "--data", str(rec),
                 "--out", str(tmp_path / "p.csv"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "RoiSet.zip" in err and "Traceback" not in err and len(err.splitlines()) == 1


def _traced(name: str, mask: np.ndarray) -> ImagejRoi:
    """A wand-like outline of ``mask``: contour through the pixel borders (ImageJ x, y)."""
    from skimage.measure import find_contours

    contour = max(find_contours(np.pad(mask, 1).astype(float), 0.5), key=len) - 1
    return ImagejRoi.frompoints(contour[:, ::-1] + 0.5, name=name)


def _sim_roi_zip(folder: Path, seed: int) -> tuple[Path, dict[str, str]]:
    """A simulated recording + a RoiSet.zip of its somata and dendrites (overlaps kept)."""
    from napari_cellcurator.core.data.simulate_calcium import simulate_recording

    sim = simulate_recording(seed)
    rois, truth = [], {}
    for kind, masks in (("cell", [w > 0.25 for w in sim.cell_weights]),
                        ("not_cell", sim.dendrite_masks)):
        for m in masks:
            if m.sum() >= 10:
                rois.append(_traced(f"{kind}{len(rois)}", m))
                truth[rois[-1].name] = kind
    roiwrite(folder / "RoiSet.zip", rois)
    return _write_movie(folder, sim.movie), truth


def test_traced_outlines_give_back_the_masks(tmp_path):
    mask = np.zeros(SHAPE, bool)
    yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
    mask[(yy - 40) ** 2 + ((xx - 30) / 1.5) ** 2 <= 49] = True
    roiwrite(tmp_path / "r.zip", [_traced("blob", mask)])
    rois, _ = _read(np.zeros((2, *SHAPE), np.float32), tmp_path / "r.zip")
    np.testing.assert_array_equal(_masks(rois)["blob"], mask)


def test_shipped_model_predict_then_write_back_the_cells(tmp_path):
    """predict on a movie + RoiSet.zip of unseen simulated ROIs → a person overrides one →
    export --write-back: ``rec_cells.zip`` holds the cells' records unchanged; the user's zip
    is untouched."""
    from napari_cellcurator.cli import main

    rec, truth = _sim_roi_zip(tmp_path, 101)
    roi_zip = tmp_path / "RoiSet.zip"
    before = roi_zip.read_bytes()
    pred_csv = tmp_path / "p.csv"
    assert main(["predict", "--model", "shipped:cellness", "--data", str(rec), "--out",
                 str(pred_csv), "--device", "cpu"]) == 0
    pred = pd.read_csv(pred_csv).set_index("roi_name")
    assert len(pred) == len(truth)
    correct = (pred["prediction"] == pred.index.map(truth)).mean()
    assert correct >= 0.85  # measured 1.0 (27 of 27; seed 102: 25 of 26)
    overridden = pred.index[0]  # a soma the person says is not a cell
    assert main(["labels", "--data", str(rec), "--task", "cellness",
                 "--set", f"rec:roi{overridden}", "not_cell"]) == 0
    assert main(["export", "--data", str(rec), "--predictions", str(pred_csv),
                 "--write-back"]) == 0
    expected = [n for n in pred.index if pred.loc[n, "prediction"] == "cell"
                and n != overridden]
    cells = roiread(tmp_path / "rec_cells.zip")
    assert [r.name for r in cells] == expected  # the zip's order
    with zipfile.ZipFile(roi_zip) as src, zipfile.ZipFile(tmp_path / "rec_cells.zip") as out:
        for name in out.namelist():
            assert out.read(name) == src.read(name)  # records byte for byte
    assert roi_zip.read_bytes() == before
    # a second write-back keeps the first one as a backup
    assert main(["export", "--data", str(rec), "--predictions", str(pred_csv),
                 "--write-back"]) == 0
    assert len(list(tmp_path.glob("rec_cells.bak-*.zip"))) == 1


def test_write_back_refuses_a_roi_set_edited_since_it_was_read(movie, roi_zip):
    from napari_cellcurator.core.io.writeback import write_back

    rec = _write_movie(roi_zip.parent, movie)
    with pytest.warns(InputWarning):
        items = TASK.read_many([rec])
    pred = pd.DataFrame({"item_id": items.table["item_id"], "prediction": "cell"})
    roiwrite(roi_zip, list(reversed(_roi_set())), mode="w")
    with pytest.raises(InputError, match="changed since"):
        write_back(items, pred)
    assert not (roi_zip.parent / "rec_cells.zip").exists()
