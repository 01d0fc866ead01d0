"""Cell proposals for frames without positions: Otsu threshold + distance-transform watershed,
or scikit-image blob detection (LoG).

Both return points as ``(row, col)``; :func:`propose_cells` also returns a label image (one
id per cell) that napari shows as a Labels layer and ``items_from_labels_layer`` crops.
"""

from __future__ import annotations

import numpy as np

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.points import as_chw


def _signal(image: np.ndarray) -> np.ndarray:
    """One float plane where cells differ from the background (green for RGB: haemoglobin and
    most stains absorb it), rescaled to [0, 1]."""
    chw = as_chw(image).astype(np.float32)
    plane = chw[1] if chw.shape[0] in (3, 4) else chw.mean(axis=0)
    lo, hi = np.percentile(plane, [0.5, 99.5])
    if hi <= lo:
        raise InputError(None, "image is flat (no contrast)", "an image with cells")
    return np.clip((plane - lo) / (hi - lo), 0, 1)


def foreground_mask(image: np.ndarray, cell_diameter: float = 40.0) -> np.ndarray:
    """Otsu foreground; the polarity is chosen so the background is the majority class."""
    from scipy import ndimage
    from skimage.filters import gaussian, threshold_otsu

    plane = gaussian(_signal(image), sigma=max(1.0, cell_diameter / 20))
    mask = plane < threshold_otsu(plane)
    if mask.mean() > 0.5:  # bright cells on a dark background
        mask = ~mask
    mask = ndimage.binary_fill_holes(mask)  # pale centres (target cells, hypochromia)
    lab, _ = ndimage.label(mask)
    area = np.bincount(lab.ravel())
    keep = area >= int(np.pi * (cell_diameter / 4) ** 2)  # debris: under a quarter diameter
    keep[0] = False
    return keep[lab]


def propose_cells(image: np.ndarray, cell_diameter: float = 40.0, method: str = "watershed"
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres ``(N, 2)`` as (row, col) and a label image ``(H, W)`` (0 = background).

    Parameters
    ----------
    image
        2-D, RGB ``(H, W, 3)`` or ``(C, H, W)``.
    cell_diameter
        Typical cell diameter in pixels: sets smoothing, the minimum size and how close two
        touching cells' centres may be.
    method
        ``"watershed"`` (Otsu + distance transform + watershed, splits touching cells) or
        ``"log"`` (Laplacian-of-Gaussian blobs; labels are discs of the blob radius).
    """
    if method in ("log", "blob"):
        return _propose_log(image, cell_diameter)
    if method != "watershed":
        raise InputError(None, f"unknown proposal method {method!r}", "'watershed' or 'log'")
    from scipy import ndimage
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    mask = foreground_mask(image, cell_diameter)
    dist = ndimage.distance_transform_edt(mask)
    dist = ndimage.gaussian_filter(dist, sigma=max(1.0, cell_diameter / 16))
    peaks = peak_local_max(dist, min_distance=max(2, int(cell_diameter * 0.35)),
                           threshold_abs=cell_diameter * 0.15, labels=ndimage.label(mask)[0],
                           exclude_border=False)
    markers = np.zeros(mask.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-dist, markers, mask=mask).astype(np.int32)
    ids = np.arange(1, len(peaks) + 1)
    centres = np.asarray(ndimage.center_of_mass(mask, labels, ids)).reshape(-1, 2)
    return centres, labels


def _propose_log(image: np.ndarray, cell_diameter: float) -> tuple[np.ndarray, np.ndarray]:
    from skimage.draw import disk
    from skimage.feature import blob_log
    from skimage.transform import rescale

    plane = _signal(image)
    if np.median(plane) > 0.5:  # bright background: cells are the dark blobs
        plane = 1 - plane
    # LoG at a cell's scale is slow on full frames: detect on a copy where a cell is ~10 px
    factor = min(1.0, 10.0 / cell_diameter)
    small = rescale(plane, factor, anti_aliasing=True)
    sigma = cell_diameter * factor / 2 / np.sqrt(2)
    blobs = blob_log(small, min_sigma=sigma * 0.6, max_sigma=sigma * 1.4, num_sigma=5,
                     threshold=0.05, overlap=0.3)
    centres = blobs[:, :2] / factor
    labels = np.zeros(plane.shape, dtype=np.int32)
    for i, (y, x, s) in enumerate(blobs, 1):
        rr, cc = disk((y / factor, x / factor), s * np.sqrt(2) / factor, shape=plane.shape)
        labels[rr, cc] = i
    return centres.reshape(-1, 2), labels


def propose_points(image: np.ndarray, method: str = "watershed",
                   cell_diameter: float = 40.0) -> np.ndarray:
    """Only the centres of :func:`propose_cells`."""
    return propose_cells(image, cell_diameter, method)[0]


def propose_labels(image: np.ndarray, cell_diameter: float = 40.0) -> np.ndarray:
    """Only the label image of :func:`propose_cells` (watershed)."""
    return propose_cells(image, cell_diameter)[1]


def match_points(proposed: np.ndarray, truth: np.ndarray, max_dist: float) -> np.ndarray:
    """For each ``truth`` point, whether a proposal lies within ``max_dist`` pixels."""
    if len(proposed) == 0:
        return np.zeros(len(truth), dtype=bool)
    from scipy.spatial import cKDTree

    d, _ = cKDTree(proposed).query(truth)
    return d <= max_dist
