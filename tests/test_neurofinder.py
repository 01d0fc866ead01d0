"""Neurofinder data sets: ``images/`` (one TIFF per frame) + ``regions/regions.json``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_cellcurator._reader import detect_task
from napari_cellcurator.core.data.simulate_calcium import simulate_recording
from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.neurofinder import read_neurofinder
from napari_cellcurator.core.io.writeback import write_back
from napari_cellcurator.core.tasks import ReadOptions, get_task

TASK = get_task("cellness")


@pytest.fixture(scope="module")
def recording():
    return simulate_recording(seed=3, shape=(64, 64), n_frames=200, n_cells=8)


def _regions(sim) -> list[dict]:
    """The simulated somata as Neurofinder regions: ids and [row, col] pixel lists."""
    regions = []
    for k, weights in enumerate(sim.cell_weights):
        rows, cols = np.nonzero(weights > 0.3 * weights.max())
        regions.append({"id": 100 + k, "coordinates": np.stack([rows, cols], 1).tolist()})
    return regions


def _write(root: Path, sim, regions: list[dict] | None) -> Path:
    """The Neurofinder layout: 16-bit frames image00000.tiff… and regions/regions.json."""
    frames = root / "images"
    frames.mkdir(parents=True)
    movie = np.clip(sim.movie * 1000, 0, 65535).astype(np.uint16)
    for t, frame in enumerate(movie):
        tifffile.imwrite(frames / f"image{t:05d}.tiff", frame)
    if regions is not None:
        (root / "regions").mkdir()
        (root / "regions" / "regions.json").write_text(json.dumps(regions))
    return root


def test_regions_are_read_with_their_traces(tmp_path, recording):
    regions = _regions(recording)
    root = _write(tmp_path / "neurofinder.00.00", recording, regions)
    assert detect_task(root) == "cellness"
    assert detect_task(root / "regions" / "regions.json") == "cellness"
    rois = read_neurofinder(root)
    movie = np.clip(recording.movie * 1000, 0, 65535).astype(np.uint16).astype(np.float32)
    for k, region in enumerate(regions):
        rows, cols = np.asarray(region["coordinates"]).T
        np.testing.assert_allclose(rois.traces[k], movie[:, rows, cols].mean(axis=1),
                                   rtol=1e-5)
    items = TASK.read(root, ReadOptions())
    assert items.table["item_id"].tolist() == [f"neurofinder.00.00:region{r['id']}"
                                               for r in regions]
    assert items.table["label"].isna().all()  # candidates to curate
    # the regions file and the frame folder name the data set too, and its one project
    from napari_cellcurator.core.store.project import project_folder

    again = TASK.read(root / "regions" / "regions.json", ReadOptions())
    assert again.table["item_id"].tolist() == items.table["item_id"].tolist()
    assert {project_folder(p) for p in (root, root / "images",
                                        root / "regions" / "regions.json")} == {
        project_folder(root)}


def test_write_back_keeps_the_cells_regions_and_refuses_a_rewritten_file(tmp_path, recording):
    regions = _regions(recording)
    root = _write(tmp_path / "nf", recording, regions)
    regions_file = root / "regions" / "regions.json"
    original = regions_file.read_bytes()
    items = TASK.read(root, ReadOptions())
    decided = np.arange(len(items)) % 3 != 0
    predictions = pd.DataFrame({"item_id": items.table["item_id"],
                                "prediction": np.where(decided, "cell", "not_cell")})
    written = write_back(items, predictions)
    assert written == root / "regions" / "regions_cells.json"
    kept = json.loads(written.read_text())
    assert [r["id"] for r in kept] == [r["id"] for r, d in zip(regions, decided, strict=True)
                                       if d]
    assert regions_file.read_bytes() == original
    # the regions file rewritten (another annotation, other order) while the items were open
    regions_file.write_text(json.dumps(regions[::-1]))
    before = written.read_bytes()
    with pytest.raises(InputError, match=r"regions.json.*changed since it was read"):
        write_back(items, predictions)
    assert written.read_bytes() == before


def test_a_test_set_without_regions_gives_movie_candidates(tmp_path, recording):
    root = _write(tmp_path / "neurofinder.00.00.test", recording, None)
    for path in (root, root / "images"):  # the data set, or its frame folder
        items = TASK.read(path, ReadOptions())
        assert len(items) > 0
        assert items.meta.get("format") == "pcaica"


@pytest.mark.parametrize(("region", "problem"), [
    ({"coordinates": [[3, 4], [70, 5]]}, "outside the 64×64 frames"),
    ({"coordinates": []}, "has no pixels"),
    ({"pixels": [[3, 4]]}, "is not a list of regions"),
])
def test_bad_regions_are_one_clear_error(tmp_path, recording, region, problem):
    root = _write(tmp_path / "nf", recording, [_regions(recording)[0], region])
    with pytest.raises(InputError, match=rf"regions.json.*{problem}"):
        TASK.read(root, ReadOptions())


def test_napari_opens_a_neurofinder_data_set_as_cellness_layers(make_napari_viewer, tmp_path,
                                                                recording):
    """Drag-and-drop of the data set folder: the regions with their ids, not a class folder
    of crops called ``images``."""
    root = _write(tmp_path / "neurofinder.00.00", recording, _regions(recording))
    viewer = make_napari_viewer()
    layers = viewer.open(str(root), plugin="napari-cellcurator")
    with_ids = [lay for lay in layers if "item_id" in getattr(lay, "features", {})]
    assert with_ids and len(with_ids[0].features) == len(recording.cell_weights)
    assert with_ids[0].features["item_id"].iloc[0] == "neurofinder.00.00:region100"
