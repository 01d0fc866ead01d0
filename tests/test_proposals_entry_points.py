"""Cell proposals for frames without positions: polarity on dense smears, single cells,
channel choice on fluorescence stacks, and the entry points (napari Find cells, `cellcurator
propose` → `predict`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from skimage.draw import disk

from napari_cellcurator.core.data.proposals import match_points, propose_cells
from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.io.images import read_image_chw
from napari_cellcurator.core.io.points import read_points_file


@pytest.fixture(scope="module")
def chula(shared_data) -> Path:
    return shared_data / "celltype" / "chula_rbc12"


@pytest.mark.parametrize("stem", ["259", "263"])
def test_dense_smear_cells_are_not_taken_for_background(chula, stem):
    """Cells cover more than half of these frames: polarity by area found 0–1 % of them."""
    img = read_image_chw(chula / "images" / f"{stem}.jpg")
    truth, _ = read_points_file(chula / "labels" / f"{stem}.txt")
    centres, _ = propose_cells(img, 40)
    assert match_points(centres, truth, 10).mean() > 0.6


def test_dense_smear_normalised_by_its_background(chula):
    """normalise_frame scales the background (not the cells) to the common grey level."""
    from napari_cellcurator.core.io.point_crops import BACKGROUND_LEVEL, normalise_frame

    img = read_image_chw(chula / "images" / "263.jpg")
    truth, _ = read_points_file(chula / "labels" / "263.txt")
    green = normalise_frame(img)[1].astype(float)
    rows, cols = np.round(truth).astype(int).T
    assert np.median(green[rows, cols]) < BACKGROUND_LEVEL - 20  # cells darker than it
    assert np.percentile(green, 90) == pytest.approx(BACKGROUND_LEVEL, abs=15)


def _dense_fluorescence() -> tuple[np.ndarray, np.ndarray]:
    """Bright cells covering ~60 % of a dark frame (uint16)."""
    rng = np.random.default_rng(1)
    frame = rng.normal(100, 10, (400, 400))
    truth = [(y, x) for y in range(20, 400, 40) for x in range(20, 400, 40)]
    for y, x in truth:
        rr, cc = disk((y, x), 18, shape=frame.shape)
        frame[rr, cc] += 900
    return frame.clip(0).astype(np.uint16), np.array(truth, dtype=float)


@pytest.mark.parametrize("method", ["watershed", "log"])
def test_dense_fluorescence_bright_cells(method):
    frame, truth = _dense_fluorescence()
    assert frame.mean() > 500  # cells are the majority
    centres, _ = propose_cells(frame, 36, method)
    assert match_points(centres, truth, 5).mean() > 0.9
    assert len(centres) < 1.2 * len(truth)


@pytest.mark.parametrize("method", ["watershed", "log"])
def test_single_cell_is_not_a_flat_image(method):
    frame = np.full((480, 640), 200, dtype=np.uint8)
    rr, cc = disk((240, 320), 20)
    frame[rr, cc] = 100
    centres, labels = propose_cells(frame, 40, method)
    assert len(centres) == 1 and np.abs(centres[0] - (240, 320)).max() < 3
    assert labels[240, 320] == 1 and labels[10, 10] == 0
    with pytest.raises(InputError, match="flat"):
        propose_cells(np.full((50, 50), 7, dtype=np.uint8))


def _nuclei_stack() -> tuple[np.ndarray, np.ndarray]:
    """uint16 (3, 300, 300): five nuclei in channel 0, noise in channels 1 and 2."""
    rng = np.random.default_rng(0)
    stack = rng.normal(1000, 50, (3, 300, 300)).clip(0).astype(np.uint16)
    truth = np.array([[60, 60], [60, 220], [150, 150], [240, 70], [230, 230]], dtype=float)
    for y, x in truth:
        rr, cc = disk((y, x), 12, shape=(300, 300))
        stack[0, rr, cc] += 3000
    return stack, truth


@pytest.mark.parametrize("method", ["watershed", "log"])
def test_fluorescence_stack_uses_the_channel_with_cells(method):
    stack, truth = _nuclei_stack()
    centres, _ = propose_cells(stack, 24, method)  # auto: the channel with most contrast
    assert len(centres) == 5 and match_points(centres, truth, 4).all()
    explicit, _ = propose_cells(stack, 24, method, channel=0)
    np.testing.assert_allclose(np.sort(explicit, axis=0), np.sort(centres, axis=0))
    with pytest.raises(InputError, match="channel 3 does not exist"):
        propose_cells(stack, 24, method, channel=3)


# --- napari: the Find cells widget --------------------------------------------------------

@pytest.mark.gui
@pytest.mark.parametrize("output", ["Points", "Labels"])
def test_find_cells_widget_on_a_chula_crop(make_napari_viewer, qtbot, chula, output):
    from napari_cellcurator._qt.propose_widget import ProposeWidget

    rgb = np.moveaxis(read_image_chw(chula / "images" / "1.jpg"), 0, -1)[:240, :320]
    truth, _ = read_points_file(chula / "labels" / "1.txt")
    truth = truth[(truth[:, 0] < 230) & (truth[:, 1] < 310)]  # whole cells of the crop
    viewer = make_napari_viewer()
    image = viewer.add_image(rgb, name="smear", rgb=True, scale=(0.5, 0.5), translate=(7, 3))
    widget = ProposeWidget(viewer)
    assert widget._image.value == "smear" and widget._channel.value == "auto"
    widget._output.value = output
    worker = widget.run()
    with qtbot.waitSignal(worker.finished, timeout=20_000):
        pass
    qtbot.waitUntil(lambda: "smear cells" in viewer.layers, timeout=5_000)
    cells = viewer.layers["smear cells"]
    assert cells._type_string == output.lower()
    np.testing.assert_allclose(cells.scale, image.scale)
    np.testing.assert_allclose(cells.translate, image.translate)
    if output == "Points":
        centres = np.asarray(cells.data)
    else:
        from scipy import ndimage

        ids = np.unique(cells.data)[1:]
        centres = np.array(ndimage.center_of_mass(cells.data > 0, cells.data, ids))
    assert match_points(centres, truth, 10).mean() > 0.8
    assert len(centres) < 2 * len(truth) + 5
    if output == "Points":  # ready for Load → "Use these layers": unlabelled crops
        from napari_cellcurator._qt.common import hub_for
        from napari_cellcurator._qt.load_widget import LoadWidget

        load = LoadWidget(viewer)
        load._task.value = "celltype"
        worker = load.load_layers(image, cells)
        with qtbot.waitSignal(worker.finished, timeout=20_000):
            pass
        qtbot.waitUntil(lambda: hub_for(viewer).session is not None, timeout=5_000)
        items = hub_for(viewer).session.items
        assert len(items) == len(centres) and items.table["label"].isna().all()


@pytest.mark.gui
def test_find_cells_on_an_empty_field_of_view_says_none(make_napari_viewer, qtbot):
    from napari_cellcurator._qt.propose_widget import ProposeWidget

    viewer = make_napari_viewer()
    noise = np.random.default_rng(0).normal(1000, 30, (200, 200)).astype(np.uint16)
    viewer.add_image(noise, name="empty")
    widget = ProposeWidget(viewer)
    worker = widget.run()
    with qtbot.waitSignal(worker.finished, timeout=20_000):
        pass
    qtbot.waitUntil(lambda: widget._status.value == "no cells found", timeout=5_000)
    assert [layer.name for layer in viewer.layers] == ["empty"]


# --- CLI: propose, then predict the proposed cells -----------------------------------------

def test_cli_propose_then_predict(chula, tmp_path, capsys):
    import pandas as pd

    from napari_cellcurator.cli import main

    train = tmp_path / "train"
    for sub in ("images", "labels"):
        (train / sub).mkdir(parents=True)
    for stem in ("1", "103"):
        shutil.copy(chula / "images" / f"{stem}.jpg", train / "images")
        shutil.copy(chula / "labels" / f"{stem}.txt", train / "labels")
    model = tmp_path / "model"
    assert main(["train", "--task", "celltype", "--data", str(train), "--out", str(model),
                 "--arch", "seedcnn", "--epochs", "1"]) == 0

    new = tmp_path / "new"
    (new / "images").mkdir(parents=True)
    shutil.copy(chula / "images" / "12.jpg", new / "images")
    shutil.copy(chula / "images" / "263.jpg", new / "images")
    args = ["propose", "--data", str(new), "--out", str(new / "labels"), "--diameter", "40"]
    assert main(args) == 0
    files = sorted(p.name for p in (new / "labels").iterdir())
    assert files == ["12.txt", "263.txt"]
    pts, classes = read_points_file(new / "labels" / "263.txt")
    truth, _ = read_points_file(chula / "labels" / "263.txt")
    assert set(classes) == {None} and match_points(pts, truth, 10).mean() > 0.6
    assert main(args) == 0  # its own files may be replaced by a second run

    out = tmp_path / "pred.csv"
    assert main(["predict", "--model", str(model), "--data", str(new), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    n = sum(len(read_points_file(new / "labels" / f)[0]) for f in files)
    assert 0.8 * n <= len(table) <= n and table["prediction"].notna().all()


def test_cli_propose_never_replaces_user_files(chula, tmp_path, capsys):
    from napari_cellcurator.cli import main

    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    shutil.copy(chula / "images" / "12.jpg", root / "images")
    (root / "labels" / "12.txt").write_text("100 100 3\n")  # the user's own labels
    assert main(["propose", "--data", str(root), "--out", str(root / "labels")]) == 2
    assert "already has point files" in capsys.readouterr().err
    assert (root / "labels" / "12.txt").read_text() == "100 100 3\n"
    for out in (root / "images", root):  # the input itself, a folder holding it
        assert main(["propose", "--data", str(root / "images"), "--out", str(out)]) == 2
        assert "could destroy" in capsys.readouterr().err
    assert sorted(p.name for p in (root / "images").iterdir()) == ["12.jpg"]
    assert main(["propose", "--data", str(root / "images" / "12.jpg"), "--out",
                 str(tmp_path / "props"), "--channel", "5"]) == 2
    assert "12.jpg: channel 5 does not exist" in capsys.readouterr().err


def test_cli_propose_refuses_frames_sharing_a_name(tmp_path):
    import tifffile
    from PIL import Image

    from napari_cellcurator.cli import main

    frames = tmp_path / "images"
    frames.mkdir()
    frame = np.full((64, 64), 200, np.uint8)
    frame[20:40, 20:40] = 60
    tifffile.imwrite(frames / "a.tif", frame)
    Image.fromarray(frame).save(frames / "a.png")
    assert main(["propose", "--data", str(frames), "--out", str(tmp_path / "labels")]) == 2
    assert not (tmp_path / "labels").exists() or not any((tmp_path / "labels").iterdir())


def test_find_cells_on_an_8bit_three_channel_stack_uses_the_channel_with_cells():
    from napari_cellcurator._qt.propose_widget import find_cells

    rng = np.random.default_rng(0)
    stack = rng.integers(0, 40, (3, 200, 200)).astype(np.uint8)  # noise in every channel
    yy, xx = np.mgrid[:200, :200]
    for y, x in ((50, 50), (50, 150), (150, 100)):
        stack[0][(yy - y) ** 2 + (xx - x) ** 2 < 15 ** 2] = 220  # nuclei in channel 0 only
    centres, _ = find_cells(stack, False, 30, "watershed", None)
    assert len(centres) == 3


@pytest.mark.parametrize("method", ["watershed", "log"])
def test_an_empty_field_of_view_proposes_no_cells(method):
    """Noise alone is not cells (it gave dozens of proposals); cells one noise deviation
    brighter than the background are still found."""
    from napari_cellcurator.core.data.proposals import EmptyFrameError

    rng = np.random.default_rng(0)
    for noise in (rng.normal(1000, 30, (300, 300)).astype(np.uint16),
                  rng.integers(0, 256, (240, 320, 3)).astype(np.uint8)):
        with pytest.raises(EmptyFrameError, match="no cells stand out from the noise"):
            propose_cells(noise, 20, method)
    faint = rng.normal(0, 1, (256, 256))
    truth = np.array([[60, 60], [60, 190], [190, 60], [190, 190], [128, 128]], dtype=float)
    for y, x in truth:
        faint[disk((y, x), 10, shape=faint.shape)] += 1.0
    centres, _ = propose_cells(faint, 20, method)
    assert match_points(centres, truth, 8).mean() >= 0.8


def test_cli_propose_skips_an_empty_frame_among_others(chula, tmp_path, capsys):
    import tifffile

    from napari_cellcurator.cli import main

    frames = tmp_path / "images"
    frames.mkdir()
    shutil.copy(chula / "images" / "12.jpg", frames)
    empty = np.random.default_rng(0).normal(120, 10, (480, 640)).clip(0, 255).astype(np.uint8)
    tifffile.imwrite(frames / "empty.tif", empty)
    with pytest.warns(InputWarning, match="empty.tif: no cells stand out"):
        assert main(["propose", "--data", str(frames), "--out", str(tmp_path / "labels")]) == 0
    assert read_points_file(tmp_path / "labels" / "empty.txt")[0].shape[0] == 0
    assert len(read_points_file(tmp_path / "labels" / "12.txt")[0]) > 10
    # one empty frame alone: the error, naming it
    assert main(["propose", "--data", str(frames / "empty.tif"), "--out",
                 str(tmp_path / "alone")]) == 2
    assert "empty.tif: no cells stand out from the noise" in capsys.readouterr().err
