"""Minian results folders (A.zarr, C.zarr… written as Minian's save_minian writes them)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_cellcurator._reader import detect_task
from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.minian import read_minian
from napari_cellcurator.core.tasks import ReadOptions, get_task

xr = pytest.importorskip("xarray")


def save_minian(var, dpath: Path, zarr_format: int = 2) -> None:
    """What ``minian.utilities.save_minian`` does: the variable as a dataset of its own,
    with the session/animal taken from the path as scalar coordinates, in ``<name>.zarr``."""
    ds = var.to_dataset().assign_coords(session="session1", animal="mouse7")
    with warnings.catch_warnings():  # zarr v3's notes on string scalars and consolidation
        warnings.simplefilter("ignore")
        ds.to_zarr(dpath / f"{var.name}.zarr", mode="w", zarr_format=zarr_format)


def open_minian(dpath: Path):
    """What ``minian.utilities.open_minian`` does with a folder: every store's first
    variable, merged on the shared coordinates."""
    arrays = []
    for d in sorted(os.listdir(dpath)):
        if (dpath / d).is_dir() and not d.startswith("."):
            arrays.append(list(xr.open_zarr(dpath / d).values())[0])
    return xr.merge(arrays, compat="no_conflicts")


@pytest.fixture(scope="module")
def simulated():
    from napari_cellcurator.core.data.simulate_calcium import simulate_candidates

    return simulate_candidates(6, shape=(64, 64), n_frames=150, n_cells=10)


def _write(folder: Path, rois, zarr_format: int = 2, residuals: bool = True,
           c_order: np.ndarray | None = None) -> np.ndarray:
    """Minian's layout for PCA/ICA candidates: unit ids not 0..n-1; C stored in
    ``c_order`` (another unit order than A's). Returns the unit ids."""
    folder.mkdir(parents=True, exist_ok=True)
    n, (h, w) = len(rois.footprints), rois.fov_shape
    units = np.arange(n) * 3 + 5
    a = np.zeros((n, h, w), np.float32)
    for k, (ypix, xpix, lam) in enumerate(rois.footprints):
        a[k, ypix, xpix] = np.clip(lam, 1e-3, None)
    coords = {"unit_id": units, "height": np.arange(h), "width": np.arange(w)}
    save_minian(xr.DataArray(a, dims=("unit_id", "height", "width"), coords=coords,
                             name="A"), folder, zarr_format)
    order = np.arange(n) if c_order is None else c_order
    frames = {"frame": np.arange(rois.traces.shape[1])}
    c = xr.DataArray(rois.traces[order] * 0.9, dims=("unit_id", "frame"),
                     coords={"unit_id": units[order], **frames}, name="C")
    save_minian(c, folder, zarr_format)
    if residuals:
        yra = xr.DataArray(rois.traces[order] * 0.1, dims=("unit_id", "frame"),
                           coords={"unit_id": units[order], **frames}, name="YrA")
        save_minian(yra, folder, zarr_format)
    save_minian(xr.DataArray(rois.mean_image, dims=("height", "width"),
                             coords={"height": np.arange(h), "width": np.arange(w)},
                             name="max_proj"), folder, zarr_format)
    save_minian(xr.DataArray(np.ones(len(frames["frame"])), dims=("frame",), coords=frames,
                             name="f"), folder, zarr_format)
    return units


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_minian_folder_reads_every_unit_aligned(tmp_path, simulated, zarr_format):
    _, rois = simulated
    folder = tmp_path / "minian"
    units = _write(folder, rois, zarr_format, c_order=np.arange(len(rois.footprints))[::-1])
    read = read_minian(folder)
    items = get_task("cellness").read(folder, ReadOptions())
    assert len(items) == len(rois.footprints) > 3
    assert items.table["item_id"].tolist() == [f"{tmp_path.name}/minian:unit{u}" for u in units]
    assert items.table["unit_id"].tolist() == units.tolist()
    assert not items.labelled.any()  # Minian has no cell / not-cell decisions
    # C (stored in reverse unit order) + YrA, each row with its own unit
    np.testing.assert_allclose(read.traces, rois.traces, rtol=1e-5, atol=1e-6)
    for (ypix, xpix, _), (y2, x2, _) in zip(read.footprints, rois.footprints, strict=True):
        assert sorted(zip(ypix, xpix, strict=True)) == sorted(zip(y2, x2, strict=True))
    np.testing.assert_allclose(read.mean_image, rois.mean_image)


def test_any_store_of_the_folder_names_it(tmp_path, simulated):
    folder = tmp_path / "minian"
    _write(folder, simulated[1])
    for path in (folder, folder / "A.zarr", folder / "C.zarr"):
        assert detect_task(path) == "cellness"
        assert len(get_task("cellness").read(path, ReadOptions())) == len(
            simulated[1].footprints)
    assert detect_task(tmp_path) is None  # the folder above is not Minian's


def test_two_sessions_read_together_keep_their_units_apart(tmp_path, simulated):
    """Minian names every output folder ``minian``: the session folder above tells them apart."""
    for session in ("day1", "day2"):
        _write(tmp_path / session / "minian", simulated[1])
    items = get_task("cellness").read_many([tmp_path / "day1" / "minian",
                                            tmp_path / "day2" / "minian"], ReadOptions())
    assert len(items) == 2 * len(simulated[1].footprints)
    assert items.table["item_id"].iloc[0].startswith("day1/minian:unit")


def test_denoised_traces_without_residuals(tmp_path, simulated):
    folder = tmp_path / "minian"
    _write(folder, simulated[1], residuals=False)
    np.testing.assert_allclose(read_minian(folder).traces, simulated[1].traces * 0.9,
                               rtol=1e-5, atol=1e-6)


def test_shipped_model_scores_minian_units(tmp_path, simulated):
    """The units go through the shipped cellness model like any candidates; with the
    simulation's truth the decisions are mostly right."""
    from napari_cellcurator.core.pipeline import predict
    from napari_cellcurator.core.tasks.cellness import CellnessTask

    _, rois = simulated
    folder = tmp_path / "minian"
    _write(folder, rois)
    table = predict(CellnessTask().shipped_model(), str(folder), device="cpu")
    assert len(table) == len(rois.footprints) and table["prediction"].notna().all()
    truth = np.asarray(rois.labels)
    accuracy = (table["prediction"].to_numpy() == truth).mean()
    assert accuracy >= 0.7, accuracy


def test_write_back_adds_a_variable_minian_opens(tmp_path, simulated):
    from napari_cellcurator.core.io.writeback import write_back

    _, rois = simulated
    folder = tmp_path / "minian"
    units = _write(folder, rois)
    items = get_task("cellness").read(folder, ReadOptions())
    decided = np.arange(len(items)) % 2 == 0
    predictions = pd.DataFrame({"item_id": items.table["item_id"],
                                "prediction": np.where(decided, "cell", "not_cell")})
    written = write_back(items, predictions)
    assert written == folder / "iscell_curated.zarr"
    ds = open_minian(folder)
    curated = ds["iscell_curated"].sel(unit_id=units).to_numpy()
    assert curated.tolist() == decided.tolist()
    assert ds["A"].shape[0] == len(units)  # the user's variables are untouched
    # a second write-back replaces the first
    predictions["prediction"] = "cell"
    write_back(items, predictions)
    assert open_minian(folder)["iscell_curated"].to_numpy().all()
    assert not list(folder.glob(".iscell_curated*"))
    # and reading the folder again ignores the added store
    assert len(get_task("cellness").read(folder, ReadOptions())) == len(units)


def test_write_back_refuses_units_renumbered_since_read(tmp_path, simulated):
    """Minian run again while the units were open numbers them anew: writing the decisions
    by unit id would put them on other cells, so nothing is written."""
    import shutil

    from napari_cellcurator.core.io.writeback import write_back

    _, rois = simulated
    folder = tmp_path / "minian"
    _write(folder, rois)
    items = get_task("cellness").read(folder, ReadOptions())
    predictions = pd.DataFrame({"item_id": items.table["item_id"], "prediction": "cell"})
    for store in folder.glob("*.zarr"):
        shutil.rmtree(store)
    rois.footprints = rois.footprints[::-1]  # the same cells, found in the other order
    try:
        _write(folder, rois)
    finally:
        rois.footprints = rois.footprints[::-1]
    with pytest.raises(InputError, match=r"A.zarr.*changed since it was read.*Minian"):
        write_back(items, predictions)
    assert not (folder / "iscell_curated.zarr").exists()


def test_bad_minian_stores_name_the_store(tmp_path, simulated):
    folder = tmp_path / "minian"
    _write(folder, simulated[1])
    c = xr.open_zarr(folder / "C.zarr")["C"].load()
    save_minian(c.rename({"frame": "time"}).rename("C"), folder)
    with pytest.raises(InputError, match=r"C\.zarr.*dimensions"):
        read_minian(folder)
    _write(folder, simulated[1])
    c = xr.open_zarr(folder / "C.zarr")["C"].load()
    save_minian(c.isel(unit_id=slice(1, None)), folder)  # one unit's trace missing
    with pytest.raises(InputError, match="no rows for units"):
        read_minian(folder)


def test_unit_ids_do_not_depend_on_the_working_folder(tmp_path, simulated, monkeypatch):
    # typed as "minian" inside the session folder, the ids must still name the session, or
    # the journal's labels (made with the full path) match no unit
    _write(tmp_path / "day1" / "minian", simulated[1])
    task = get_task("cellness")
    absolute = task.read(tmp_path / "day1" / "minian", ReadOptions()).table["item_id"]
    monkeypatch.chdir(tmp_path / "day1")
    relative = task.read(Path("minian"), ReadOptions()).table["item_id"]
    assert list(relative) == list(absolute) and absolute.iloc[0].startswith("day1/minian:")
