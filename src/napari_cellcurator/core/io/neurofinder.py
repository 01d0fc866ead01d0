"""Neurofinder data sets (CodeNeuro's calcium-imaging benchmark layout) → cellness candidates.

A Neurofinder data set is a folder (``neurofinder.00.00/``) holding the recording as one TIFF
per frame in ``images/`` (``image00000.tiff``…) and, for the training sets, the annotated
regions in ``regions/regions.json``: a JSON list of ``{"id": …, "coordinates": [[row, col],
…]}``, one per region (Neurofinder's own loader sets ``mask[row, col]`` from each pair). Other
tools write the same region lists (the ``regional`` / ``thunder-extraction`` format).

The regions are read as candidates with their traces in the movie (as a label image beside a
movie is), ids ``<data set folder>:region<id>``; without ``regions/`` (the test sets) the
cellness reader finds the PCA/ICA candidates of ``images/``. Write-back writes
``regions/regions_cells.json``: the regions decided cells, entries unchanged, in
Neurofinder's format.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.jsonfiles import read_json
from napari_cellcurator.core.io.rois import RoiSet
from napari_cellcurator.core.progress import ProgressFn

#: the frame folder and the regions file of a data set, relative to its folder
FRAMES = "images"
REGIONS = Path("regions") / "regions.json"
#: the curated copy written beside the regions file
CELLS_NAME = "regions_cells.json"


def neurofinder_root(path: Path) -> Path | None:
    """The Neurofinder data set ``path`` is (its folder, ``images/`` or ``regions.json``)."""
    path = Path(path)
    for root in (path, path.parent, path.parent.parent):
        frames = root / FRAMES
        if (frames.is_dir() and (root / REGIONS).is_file()
                and (path in (root, frames) or path == root / REGIONS)):
            return root
    return None


def read_regions(path: Path, shape: tuple[int, int] | None
                 ) -> tuple[list[tuple], list[dict]]:
    """Footprints ``(ypix, xpix, lam)`` of the regions in ``path`` and their JSON entries
    (pixels checked against the frame ``shape`` unless None).

    Raises
    ------
    InputError
        Not JSON, not a list of regions with ``coordinates``, an empty region, or a pixel
        outside the ``shape`` frames.
    """
    path = Path(path)
    regions = read_json(path)
    if isinstance(regions, dict) and isinstance(regions.get("regions"), list):
        regions = regions["regions"]  # one data set of a results file
    if not isinstance(regions, list) or not all(
            isinstance(r, dict) and "coordinates" in r for r in regions):
        raise InputError(path, "is not a list of regions", 'a JSON list of {"coordinates": '
                         "[[row, col], ...]} as Neurofinder's regions.json")
    if not regions:
        raise InputError(path, "holds no regions")
    footprints = [_footprint(r["coordinates"], k, shape, path) for k, r in enumerate(regions)]
    return footprints, regions


def _footprint(coordinates, k: int, shape: tuple[int, int] | None, path: Path) -> tuple:
    try:
        pixels = np.asarray(coordinates, dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError):
        raise InputError(path, f"region {k}: coordinates are not [row, col] pairs") from None
    if not len(pixels) or not np.all(np.isfinite(pixels)):
        raise InputError(path, f"region {k} has no pixels (or non-numeric ones)")
    pixels = np.unique(np.round(pixels).astype(np.int64), axis=0)  # a pixel counts once
    outside = (pixels < 0).any(axis=1)
    if shape is not None:
        outside |= (pixels[:, 0] >= shape[0]) | (pixels[:, 1] >= shape[1])
    if outside.any():
        frames = f"the {shape[0]}×{shape[1]} frames" if shape is not None else "the frames"
        raise InputError(path, f"region {k} has pixels outside {frames} (e.g. row, col "
                         f"{pixels[outside][0].tolist()})", "the regions of this recording")
    return pixels[:, 0], pixels[:, 1], np.ones(len(pixels), np.float32)


def region_ids(regions: list[dict]) -> list[str]:
    """The id of each region (its ``id`` when all are present and distinct, else its
    position): labels follow a region when others are added or removed."""
    ids = [str(r.get("id")) for r in regions]
    if any(r.get("id") is None for r in regions) or len(set(ids)) < len(ids):
        return [str(k) for k in range(len(regions))]
    return ids


def read_neurofinder(path: Path, progress: ProgressFn | None = None) -> RoiSet:
    """Read the regions of a Neurofinder data set with their traces in its movie
    (``progress`` as :func:`~napari_cellcurator.core.io.roi_masks.rois_from_footprints`);
    columns ``region_index`` (position in ``regions.json``), meta ``mask_path``."""
    from napari_cellcurator.core.io.pcaica import movie_frames
    from napari_cellcurator.core.io.roi_masks import check_movie, rois_from_footprints

    root = neurofinder_root(path)
    if root is None:
        raise InputError(path, "is not a Neurofinder data set",
                         f"a folder with {FRAMES}/ (one TIFF per frame) and {REGIONS}")
    movie = check_movie(movie_frames(root / FRAMES), root / FRAMES)
    regions_path = root / REGIONS
    footprints, regions = read_regions(regions_path, movie.shape[1:])
    ids = region_ids(regions)
    columns = {"region_index": np.arange(len(regions), dtype=np.int64),
               "item_id": [f"{root.name}:region{i}" for i in ids]}
    return rois_from_footprints(movie, footprints, root, "neurofinder", columns,
                                {"mask_path": str(regions_path)}, progress)


def regions_geometry(regions_path: Path) -> np.ndarray:
    """``(N, 3)`` centroid y, x and pixel count of every region in the file now (the items'
    ``y``, ``x``, ``npix``), in file order."""
    from napari_cellcurator.core.data.roi_images import footprint_geometry

    return footprint_geometry(read_regions(regions_path, None)[0])


def cell_regions(regions_path: Path, region_index: np.ndarray, is_cell: np.ndarray
                 ) -> list[dict]:
    """The entries of ``regions_path`` without the regions decided not cells (order and
    entries unchanged; regions not scored are kept): what ``regions_cells.json`` holds."""
    _, regions = read_regions(regions_path, None)
    drop = set(np.asarray(region_index, np.int64)[~np.asarray(is_cell, bool)].tolist())
    return [r for k, r in enumerate(regions) if k not in drop]
