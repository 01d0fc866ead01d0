"""Cellness candidates from NWB 2.x ophys files, written by the real pynwb library.

The files follow the two conventions met in the wild: Suite2p's NWB export (pixel masks with
the row in ``x``, ``Fluorescence`` / ``Neuropil`` / ``Deconvolved`` containers,
``Backgrounds_0`` images, an ``iscell`` (N, 2) column) and the NWB schema as NeuroConv and the
Allen SDK write it (``image_mask`` (N, H, W), pixel ``x`` = column, ``DfOverF``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

pynwb = pytest.importorskip("pynwb")
from pynwb import NWBHDF5IO, NWBFile  # noqa: E402
from pynwb.base import Images  # noqa: E402
from pynwb.image import GrayscaleImage  # noqa: E402
from pynwb.ophys import DfOverF, Fluorescence, ImageSegmentation, OpticalChannel  # noqa: E402

from napari_cellcurator.core.data.simulate_calcium import (  # noqa: E402
    save_suite2p_like,
    simulate_candidates,
)
from napari_cellcurator.core.errors import InputError  # noqa: E402
from napari_cellcurator.core.io.nwb import read_nwb  # noqa: E402
from napari_cellcurator.core.tasks import get_task  # noqa: E402

TASK = get_task("cellness")


def _nwb_file() -> tuple[NWBFile, object, object]:
    nwb = NWBFile(session_description="test", identifier="rec",
                  session_start_time=datetime(2026, 1, 1, tzinfo=UTC))
    device = nwb.create_device(name="scope")
    channel = OpticalChannel(name="green", description="", emission_lambda=510.0)
    plane = nwb.create_imaging_plane(
        name="plane0", optical_channel=channel, description="", device=device,
        excitation_lambda=920.0, imaging_rate=30.0, indicator="GCaMP6f", location="V1")
    module = nwb.create_processing_module("ophys", "optical physiology")
    segmentation = ImageSegmentation()
    module.add(segmentation)
    return nwb, plane, module


def write_suite2p_nwb(path: Path, rois, planes: int = 1) -> Path:
    """As Suite2p's ``save_nwb`` writes: pixel masks [ypix, xpix, lam] (voxel masks with the
    plane for several planes), iscell (N, 2), F / Fneu / spks in three Fluorescence
    containers, meanImg / Vcorr / max_proj in ``Backgrounds_<plane>``."""
    nwb, plane, module = _nwb_file()
    table = module["ImageSegmentation"].create_plane_segmentation(
        name="PlaneSegmentation", description="suite2p output", imaging_plane=plane)
    n = len(rois.footprints)
    for k, (ypix, xpix, lam) in enumerate(rois.footprints):
        if planes > 1:
            z = np.full(len(ypix), k % planes)
            table.add_roi(voxel_mask=np.array([ypix, xpix, z, lam]).T.tolist())
        else:
            table.add_roi(pixel_mask=np.array([ypix, xpix, lam]).T.tolist())
    cell = np.array([lab == "cell" for lab in rois.labels], float)
    table.add_column("iscell", "two columns - iscell & probcell", np.stack([cell, cell], 1))
    region = table.create_roi_table_region(region=list(range(n)), description="all ROIs")
    neuropil = rois.neuropil
    for name, data in (("Fluorescence", rois.traces), ("Neuropil", neuropil),
                       ("Deconvolved", np.maximum(rois.traces - neuropil, 0) * 7)):
        container = Fluorescence(name=name)
        module.add(container)  # in the file before its series link to the table
        container.create_roi_response_series(name=name, data=np.asarray(data).T, rois=region,
                                             unit="lumens", rate=30.0)
    for p in range(planes):
        images = Images(name=f"Backgrounds_{p}")
        for name, img in (("meanImg", rois.mean_image), ("Vcorr", rois.mean_image * 0),
                          ("max_proj", rois.mean_image)):
            images.add_image(GrayscaleImage(name=name, data=img))
        module.add(images)
    with NWBHDF5IO(path, "w") as io:
        io.write(nwb)
    return path


def write_schema_nwb(path: Path, masks: np.ndarray, traces: np.ndarray, mean: np.ndarray,
                     layout: str = "image", dff: bool = False) -> Path:
    """As the NWB schema says: image masks (N, H, W) (``image``), or pixel masks with
    x = column (``pixel``); or against it, as some writers do: image masks transposed
    (``image_T``), the row in x (``pixel_rowx``). Traces in DfOverF or Fluorescence; the
    mean image (H, W) among the module's images."""
    nwb, plane, module = _nwb_file()
    table = module["ImageSegmentation"].create_plane_segmentation(
        name="cell_specimen_table", description="", imaging_plane=plane)
    for mask in masks:
        ys, xs = np.nonzero(mask)
        if layout.startswith("pixel"):
            first, second = (ys, xs) if layout == "pixel_rowx" else (xs, ys)
            table.add_roi(pixel_mask=[(int(a), int(b), float(mask[y, x])) for a, b, y, x
                                      in zip(first, second, ys, xs, strict=True)])
        else:
            table.add_roi(image_mask=mask.T if layout == "image_T" else mask)
    table.add_column("valid_roi", "passes filters", [True, False] * (len(masks) // 2))
    region = table.create_roi_table_region(region=list(range(len(masks))), description="all")
    container = DfOverF() if dff else Fluorescence()
    module.add(container)
    container.create_roi_response_series(name="traces", data=traces.T, rois=region,
                                         unit="lumens", rate=30.0)
    module.add(Images(name="reference", images=[GrayscaleImage(name="average_projection",
                                                          data=mean)]))
    with NWBHDF5IO(path, "w") as io:
        io.write(nwb)
    return path


@pytest.fixture(scope="module")
def simulated():
    _sim, rois = simulate_candidates(seed=5, shape=(64, 64), n_frames=150)
    rois.mean_image = _sim.movie.mean(axis=0).astype(np.float32)
    return rois


def test_suite2p_nwb_export_reads_as_its_suite2p_folder(simulated, tmp_path):
    """The same recording as a Suite2p folder and as Suite2p's NWB export: same items."""
    from napari_cellcurator.core.data.simulate_calcium import simulate_recording

    plane = save_suite2p_like(simulate_recording(5, shape=(64, 64), n_frames=150), simulated,
                              tmp_path / "s2p")
    nwb = write_suite2p_nwb(tmp_path / "rec.nwb", simulated)
    from_folder, from_nwb = TASK.read_many([plane]), TASK.read_many([nwb])
    assert from_nwb.meta["format"] == "nwb" and len(from_nwb) == len(simulated.footprints)
    for key in ("image", "trace"):  # footprints rows/cols and F - 0.7 Fneu (not spks)
        np.testing.assert_allclose(np.asarray(from_nwb.arrays[key]),
                                   np.asarray(from_folder.arrays[key]), rtol=1e-5, atol=1e-5)
    assert list(from_nwb.table["label"]) == list(from_folder.table["label"])
    assert from_nwb.table["item_id"].iloc[3] == "rec:3"
    assert from_nwb.meta["fov_shape"] == (64, 64)


@pytest.mark.parametrize("layout", ["image", "pixel", "image_T", "pixel_rowx"])
def test_masks_on_a_non_square_field_of_view(tmp_path, layout):
    """Rows and columns come out right whichever way the writer stored them; weights kept."""
    rng = np.random.default_rng(0)
    masks = np.zeros((4, 30, 50), np.float32)
    for k, (y, x) in enumerate([(3, 40), (25, 5), (15, 25), (5, 5)]):
        masks[k, y:y + 3, x:x + 4] = rng.uniform(0.2, 1, (3, 4))
    traces = rng.normal(size=(4, 80)).astype(np.float32)
    mean = rng.uniform(size=(30, 50)).astype(np.float32)
    (rois,) = read_nwb(write_schema_nwb(tmp_path / "rec.nwb", masks, traces, mean, layout))
    assert tuple(rois.fov_shape) == (30, 50)
    for k, (ypix, xpix, lam) in enumerate(rois.footprints):
        drawn = np.zeros((30, 50), np.float32)
        drawn[ypix, xpix] = lam
        np.testing.assert_allclose(drawn, masks[k], rtol=1e-6)
    np.testing.assert_allclose(rois.traces, traces, rtol=1e-6)
    np.testing.assert_allclose(rois.mean_image, mean)
    assert rois.labels == ["cell", "not_cell"] * 2  # Allen SDK's valid_roi column
    assert rois.neuropil is None


def test_allen_sdk_series_pick_the_corrected_fluorescence(tmp_path):
    """The Allen SDK writes corrected, demixed, neuropil, ΔF/F and event series: the
    corrected fluorescence is read, without subtracting the neuropil a second time."""
    nwb, plane, module = _nwb_file()
    table = module["ImageSegmentation"].create_plane_segmentation(
        name="cell_specimen_table", description="", imaging_plane=plane)
    for k in range(2):
        mask = np.zeros((16, 16), bool)
        mask[k * 5:k * 5 + 4, 3:7] = True
        table.add_roi(image_mask=mask)
    region = table.create_roi_table_region(region=[0, 1], description="all")
    for k, name in enumerate(["corrected_fluorescence", "demixed_trace", "neuropil_trace",
                              "dff", "events"]):
        container = (DfOverF if name == "dff" else Fluorescence)(name=name)
        module.add(container)
        container.create_roi_response_series(name="traces", data=np.full((30, 2), k + 1.0),
                                             rois=region, unit="lumens", rate=30.0)
    with NWBHDF5IO(tmp_path / "allen.nwb", "w") as io:
        io.write(nwb)
    (rois,) = read_nwb(tmp_path / "allen.nwb")
    assert rois.neuropil is None and np.all(rois.traces == 1.0)


def test_a_neuropil_series_that_does_not_fit_is_left_out_with_a_warning(tmp_path):
    nwb, plane, module = _nwb_file()
    table = module["ImageSegmentation"].create_plane_segmentation(
        name="PlaneSegmentation", description="", imaging_plane=plane)
    for k in range(2):
        mask = np.zeros((12, 12))
        mask[k * 5:k * 5 + 3, 2:5] = 1
        table.add_roi(image_mask=mask)
    region = table.create_roi_table_region(region=[0, 1], description="all")
    for name, frames in (("Fluorescence", 40), ("Neuropil", 39)):  # one frame short
        container = Fluorescence(name=name)
        module.add(container)
        container.create_roi_response_series(name=name, data=np.ones((frames, 2)),
                                             rois=region, unit="lumens", rate=30.0)
    with NWBHDF5IO(tmp_path / "np.nwb", "w") as io:
        io.write(nwb)
    with pytest.warns(UserWarning, match="without neuropil subtraction"):
        (rois,) = read_nwb(tmp_path / "np.nwb")
    assert rois.neuropil is None and rois.traces.shape == (2, 40)


def test_dff_only_file_and_several_planes(simulated, tmp_path):
    masks = np.zeros((2, 20, 20), np.float32)
    masks[0, 2:5, 2:5] = masks[1, 10:14, 10:14] = 1
    path = write_schema_nwb(tmp_path / "dff.nwb", masks, np.ones((2, 40), np.float32),
                            np.zeros((20, 20), np.float32), dff=True)
    items = TASK.read_many([path])
    assert len(items) == 2 and items.arrays["trace"].shape == (2, 40)
    two = write_suite2p_nwb(tmp_path / "planes.nwb", simulated, planes=2)
    sets = read_nwb(two)
    assert len(sets) == 2
    assert sum(len(s.footprints) for s in sets) == len(simulated.footprints)
    items = TASK.read_many([two])
    assert items.table["item_id"].str.startswith("planes:plane1:").sum() == len(sets[1].footprints)
    assert items.table["item_id"].is_unique


def test_napari_and_cli_find_the_task(simulated, tmp_path):
    from napari_cellcurator._reader import detect_task

    path = write_suite2p_nwb(tmp_path / "rec.nwb", simulated)
    assert detect_task(path) == "cellness"


def test_a_trace_region_naming_missing_rows_is_one_clear_error(tmp_path):
    import h5py

    masks = np.zeros((2, 10, 10), np.float32)
    masks[0, 1:3, 1:3] = masks[1, 5:8, 5:8] = 1
    path = write_schema_nwb(tmp_path / "broken.nwb", masks, np.ones((2, 20), np.float32),
                            np.zeros((10, 10), np.float32))
    with h5py.File(path, "r+") as fh:
        fh["processing/ophys/Fluorescence/traces/rois"][1] = 7  # row 7 of a 2-ROI table
    with pytest.raises(InputError, match="broken.nwb.*distinct rows"):
        read_nwb(path)


@pytest.mark.filterwarnings("ignore::UserWarning")  # pynwb: an empty ImageSegmentation
@pytest.mark.parametrize("content", ["no segmentation", "not hdf5"])
def test_bad_files_get_one_clear_error(tmp_path, content):
    path = tmp_path / "bad.nwb"
    if content == "not hdf5":
        path.write_text("hello")
    else:
        nwb, _plane, _module = _nwb_file()
        with NWBHDF5IO(path, "w") as io:
            io.write(nwb)
    with pytest.raises(InputError, match="bad.nwb") as err:
        TASK.read_many([path])
    assert ("PlaneSegmentation" if content == "no segmentation" else "HDF5") in str(err.value)


def test_predict_with_the_shipped_model_from_the_cli(simulated, tmp_path):
    import pandas as pd

    from napari_cellcurator.cli import main

    path = write_suite2p_nwb(tmp_path / "rec.nwb", simulated)
    out = tmp_path / "pred.csv"
    main(["predict", "--model", "shipped:cellness", "--data", str(path), "--out", str(out)])
    pred = pd.read_csv(out)
    assert len(pred) == len(simulated.footprints)
    truth = np.array(simulated.labels)
    accuracy = float(np.mean(pred["prediction"].to_numpy() == truth))
    assert accuracy >= 0.8, accuracy


@pytest.mark.gui
def test_napari_opens_an_nwb_file_as_cellness_layers(make_napari_viewer, tmp_path):
    """Drag-and-drop of a Suite2p NWB export: a mean image and the ROIs with their ids."""
    sim, rois = simulate_candidates(seed=3, shape=(48, 48), n_frames=80)
    rois.mean_image = sim.movie.mean(axis=0).astype(np.float32)
    path = write_suite2p_nwb(tmp_path / "rec.nwb", rois)
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-cellcurator")
    with_ids = [lay for lay in layers if "item_id" in getattr(lay, "features", {})]
    assert with_ids and len(with_ids[0].features) == len(rois.footprints)
    assert with_ids[0].features["item_id"].iloc[0] == "rec:0"


def test_write_back_makes_a_curated_copy_that_pynwb_and_we_read(simulated, tmp_path):
    """export --write-back on an NWB file: the original untouched, a *_curated.nwb copy with
    the decisions per ROI table (a person's label beating the model), valid for pynwb and
    read back here with the curated labels."""
    from napari_cellcurator.cli import main

    path = write_suite2p_nwb(tmp_path / "rec.nwb", simulated, planes=2)
    original = path.read_bytes()
    preds = tmp_path / "preds.csv"
    assert main(["predict", "--model", "shipped:cellness", "--data", str(path), "--out",
                 str(preds)]) == 0
    import pandas as pd

    pred = pd.read_csv(preds, dtype={"item_id": str})
    flip = pred.iloc[0]
    human = "not_cell" if flip["prediction"] == "cell" else "cell"
    project = ["--data", str(path), "--project", str(tmp_path / "proj")]
    assert main(["labels", *project, "--set", flip["item_id"], human]) == 0
    assert main(["export", *project, "--predictions", str(preds), "--write-back"]) == 0
    assert path.read_bytes() == original
    curated = tmp_path / "rec_curated.nwb"
    with NWBHDF5IO(curated, "r") as io:
        table = io.read().processing["ophys"]["ImageSegmentation"]["PlaneSegmentation"]
        flags = np.asarray(table["iscell_curated"].data[:])
        probs = np.asarray(table["prob_cell_curated"].data[:])
    # ROIs nobody curated keep the file's own iscell (the model decides only the unlabelled
    # ones, unless `--model-decides`)
    own = TASK.read_many([path]).table.set_index("item_id")["label"]
    decided = own.reindex(pred["item_id"]).fillna(pred.set_index("item_id")["prediction"])
    expected = (decided == "cell").astype(int)
    expected[flip["item_id"]] = int(human == "cell")
    rows = pred.set_index("item_id")["nwb_row"]
    np.testing.assert_array_equal(flags[rows.loc[expected.index].to_numpy()],
                                  expected.to_numpy())
    assert probs[int(rows[flip["item_id"]])] == float(human == "cell")
    again = TASK.read_many([curated])  # the curated labels come back as the file's labels
    assert list(again.table["label"]) == ["cell" if v else "not_cell" for v in
                                          expected.loc[again.table["item_id"]
                                                       .str.replace("rec_curated", "rec")]]


def test_write_back_refuses_an_nwb_file_re_exported_with_other_rois(simulated, tmp_path):
    """The NWB file rewritten (another segmentation exported over it) after the items were
    read: decisions by table row would land on other cells; no curated copy is made."""
    import pandas as pd

    from napari_cellcurator.core.io.writeback import write_back

    path = write_suite2p_nwb(tmp_path / "rec.nwb", simulated)
    items = TASK.read_many([path])
    predictions = pd.DataFrame({"item_id": items.table["item_id"], "prediction": "cell"})
    simulated.footprints = simulated.footprints[::-1]
    try:
        write_suite2p_nwb(path, simulated)
    finally:
        simulated.footprints = simulated.footprints[::-1]
    with pytest.raises(InputError, match=r"rec.nwb.*changed since it was read.*NWB"):
        write_back(items, predictions)
    assert not (tmp_path / "rec_curated.nwb").exists()
    again = TASK.read_many([path])  # read again: the write-back goes through
    write_back(again, pd.DataFrame({"item_id": again.table["item_id"], "prediction": "cell"}))
    assert (tmp_path / "rec_curated.nwb").exists()


def test_a_raw_recording_nwb_is_a_movie(shared_data, tmp_path):
    """An NWB with only its TwoPhotonSeries (how DANDI holds raw recordings): the movie, read
    lazily; cellness finds the candidates the TIFF gives; napari opens it as an image."""
    import tifffile
    from pynwb.ophys import TwoPhotonSeries

    from napari_cellcurator._reader import detect_task, get_reader
    from napari_cellcurator.core.io.movies import open_movie
    from napari_cellcurator.core.tasks import ReadOptions

    movie = tifffile.imread(shared_data / "calcium" / "miniscope_1p" / "miniscope_1p.tif")
    movie = np.ascontiguousarray(movie[:, :, :90])
    nwb, plane, _ = _nwb_file()
    nwb.add_acquisition(TwoPhotonSeries(name="raw", data=movie, imaging_plane=plane,
                                        rate=20.0, unit="a.u."))
    path = tmp_path / "sub-01_ses-01_ophys.nwb"
    with NWBHDF5IO(path, "w") as io:
        io.write(nwb)
    opened = open_movie(path)
    assert opened.shape == movie.shape
    np.testing.assert_array_equal(opened.read(4, 9, 0, 100, 0, 90), movie[4:9])
    tif = tmp_path / "movie.tif"
    tifffile.imwrite(tif, movie)
    from_nwb, from_tif = TASK.read(path, ReadOptions()), TASK.read(tif, ReadOptions())
    assert len(from_nwb) == len(from_tif) > 0
    np.testing.assert_allclose(from_nwb.arrays["trace"], from_tif.arrays["trace"], rtol=1e-5)
    assert detect_task(path) is None
    (data, _, kind), = get_reader(str(path))(str(path))
    assert kind == "image" and data.shape == movie.shape
    empty = tmp_path / "empty.nwb"
    with NWBHDF5IO(empty, "w") as io:
        io.write(_nwb_file()[0])
    with pytest.raises(InputError, match="no imaging data"):
        TASK.read(empty, ReadOptions())
