"""Cell proposals for frames without positions: Otsu threshold + distance-transform watershed,
or scikit-image blob detection (LoG), on one channel (:func:`pick_channel`).

Both return points as ``(row, col)``; :func:`propose_cells` also returns a label image (one
id per cell) that napari shows as a Labels layer and ``items_from_labels_layer`` crops.
"""

from __future__ import annotations

import numpy as np

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.points import as_chw


class EmptyFrameError(InputError):
    """A frame with nothing to propose: flat, or nothing stands out from the noise."""


def is_colour(image: np.ndarray) -> bool:
    """Whether ``image`` is a colour photograph: uint8 with 3 or 4 channels, as napari's RGB(A)
    layers ``(H, W, 3|4)`` or as read from a file ``(3|4, H, W)``."""
    image = np.asarray(image)
    return image.dtype == np.uint8 and image.ndim == 3 and (
        image.shape[-1] in (3, 4) or image.shape[0] in (3, 4))


def pick_channel(image: np.ndarray, cell_diameter: float = 40.0,
                 channel: int | None = None) -> int:
    """The channel proposals are made on.

    Parameters
    ----------
    image
        2-D, RGB(A) ``(H, W, 3|4)`` or ``(C, H, W)``.
    cell_diameter
        Typical cell diameter in pixels (the scale at which contrast is measured).
    channel
        An explicit channel index, or None to choose: green for colour images (haemoglobin
        and most bright-field stains absorb it), otherwise the channel with the most contrast
        at the cells' scale (the band-pass share of its variance: a stain of nuclei beats
        a channel of noise or of uneven illumination).

    Raises
    ------
    InputError
        ``channel`` is not a channel of the image.
    """
    chw = as_chw(image)
    n = chw.shape[0]
    if channel is not None:
        if not -n <= int(channel) < n:
            raise InputError(None, f"channel {channel} does not exist: the image has {n} "
                             "channel(s)", f"a channel index from 0 to {n - 1}")
        return int(channel) % n
    if n == 1:
        return 0
    if is_colour(image) and chw[1].max() > chw[1].min():
        return 1
    from scipy import ndimage

    scores = []
    for plane in chw.astype(np.float32):
        spread = plane.std()
        band = (ndimage.gaussian_filter(plane, max(1.0, cell_diameter / 8))
                - ndimage.gaussian_filter(plane, max(2.0, cell_diameter)))
        scores.append(band.std() / spread if spread > 0 else -1.0)
    return int(np.argmax(scores))


def _signal(image: np.ndarray, cell_diameter: float = 40.0,
            channel: int | None = None) -> np.ndarray:
    """One float plane (:func:`pick_channel`) rescaled to [0, 1]: between the 0.5 and 99.5
    percentiles, or the minimum and maximum where those coincide (one small cell on a large
    background is a real image, not a flat one)."""
    plane = as_chw(image)[pick_channel(image, cell_diameter, channel)].astype(np.float32)
    lo, hi = float(plane.min()), float(plane.max())
    if not hi > lo:
        raise EmptyFrameError(None, "image is flat (no contrast)", "an image with cells")
    p_lo, p_hi = np.percentile(plane, [0.5, 99.5])
    if p_hi > p_lo:
        lo, hi = float(p_lo), float(p_hi)
    return np.clip((plane - lo) / (hi - lo), 0, 1)


#: cells must stand out from the noise by this many standard deviations of the noise smoothed
#: at a quarter cell diameter (the mean difference of Otsu's two classes). Measured: frames of
#: pure noise 1.6–3.7 (more where a cell is a quarter of the frame: the check then lets them
#: through); real frames 148 and more (Chula smears, phase-contrast time-lapses, a miniscope
#: movie, Suite2p and Jurkat images); faint cells one noise deviation above the background 10
MIN_CELL_CONTRAST = 5.0


def _require_cells(signal: np.ndarray, cell_diameter: float) -> None:
    """Refuse a frame where nothing stands out from the noise (an empty field of view).

    The noise is the fine-scale residual's median absolute deviation (robust to the cells'
    edges), scaled to a smoothing of a quarter cell diameter (white noise under a Gaussian
    of ``sigma`` keeps 1 / (2·√π·σ) of its standard deviation), where a cell's contrast
    adds up and the noise's does not.
    """
    from skimage.filters import gaussian, threshold_otsu

    residual = signal - gaussian(signal, sigma=1.0)
    noise = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
    if noise <= 0:
        return  # a noise-free (synthetic) frame: any contrast is real
    sigma = max(1.0, cell_diameter / 4)
    smooth = gaussian(signal, sigma=sigma)
    above = smooth >= threshold_otsu(smooth)
    if above.all() or not above.any():
        return
    contrast = float(smooth[above].mean() - smooth[~above].mean())
    contrast /= noise / (2 * np.sqrt(np.pi) * sigma)
    if contrast < MIN_CELL_CONTRAST:
        raise EmptyFrameError(None, f"no cells stand out from the noise (contrast {contrast:.1f} × "
                         f"the noise; {MIN_CELL_CONTRAST:g} needed): an empty field of view?",
                         "a frame with cells")


def _cells_are_dark(plane: np.ndarray, threshold: float) -> bool:
    """Polarity: whether the cells are the class below ``threshold``.

    The background is the class whose largest connected region holds the greater share of
    its pixels (the space between cells is connected; cells are many separate blobs), so
    a smear where cells cover most of the frame is still read right; area and the histogram's
    mode both fail there (uniform cells make the sharper peak). A near tie (one cell in the
    frame: both classes are one region) goes to area: the background is the larger class.
    """
    from scipy import ndimage

    low = plane < threshold

    def largest_share(mask: np.ndarray) -> float:
        lab, n = ndimage.label(mask)
        return np.bincount(lab.ravel())[1:].max() / mask.sum() if n else 0.0

    share_low, share_high = largest_share(low), largest_share(~low)
    if abs(share_high - share_low) > 0.1:
        return share_high > share_low
    return low.mean() < 0.5


def foreground_mask(image: np.ndarray, cell_diameter: float = 40.0,
                    channel: int | None = None) -> np.ndarray:
    """Otsu foreground (the cells) of one channel (:func:`pick_channel`).

    Parameters
    ----------
    image
        2-D, RGB(A) ``(H, W, 3|4)`` or ``(C, H, W)``.
    cell_diameter
        Typical cell diameter in pixels: smoothing, and the smallest blob kept (a quarter
        diameter; smaller is debris).
    channel
        Channel index, or None to choose (:func:`pick_channel`).

    Returns
    -------
    numpy.ndarray
        Boolean ``(H, W)``; cells may be darker (bright field) or brighter (fluorescence)
        than the background (:func:`_cells_are_dark`).
    """
    return _foreground(_signal(image, cell_diameter, channel), cell_diameter)


def _foreground(signal: np.ndarray, cell_diameter: float) -> np.ndarray:
    """:func:`foreground_mask` of a plane already made by :func:`_signal`."""
    from scipy import ndimage
    from skimage.filters import gaussian, threshold_otsu

    plane = gaussian(signal, sigma=max(1.0, cell_diameter / 20))
    threshold = threshold_otsu(plane)
    mask = plane < threshold if _cells_are_dark(plane, threshold) else plane >= threshold
    mask = ndimage.binary_fill_holes(mask)  # pale centres (target cells, hypochromia)
    lab, _ = ndimage.label(mask)
    area = np.bincount(lab.ravel())
    keep = area >= int(np.pi * (cell_diameter / 4) ** 2)  # debris: under a quarter diameter
    keep[0] = False
    return keep[lab]


def propose_cells(image: np.ndarray, cell_diameter: float = 40.0, method: str = "watershed",
                  channel: int | None = None) -> tuple[np.ndarray, np.ndarray]:
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
    channel
        The channel to find cells in, or None: green for colour images, otherwise the
        channel with the most contrast at the cells' scale (:func:`pick_channel`).

    Raises
    ------
    InputError
        An unknown method, a missing channel, a flat image, or one where nothing stands out
        from the noise (:data:`MIN_CELL_CONTRAST`).
    """
    if not np.isfinite(cell_diameter) or cell_diameter < 2:
        raise InputError(None, f"cell diameter {cell_diameter} is too small",
                         "a typical cell diameter of at least 2 pixels")
    if method in ("log", "blob"):
        return _propose_log(image, cell_diameter, channel)
    if method != "watershed":
        raise InputError(None, f"unknown proposal method {method!r}", "'watershed' or 'log'")
    from scipy import ndimage
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    # here, not in foreground_mask: the point reader's background levels need no such check
    signal = _signal(image, cell_diameter, channel)
    _require_cells(signal, cell_diameter)
    mask = _foreground(signal, cell_diameter)
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


def _propose_log(image: np.ndarray, cell_diameter: float, channel: int | None
                 ) -> tuple[np.ndarray, np.ndarray]:
    from skimage.draw import disk
    from skimage.feature import blob_log
    from skimage.filters import gaussian, threshold_otsu
    from skimage.transform import rescale

    plane = _signal(image, cell_diameter, channel)
    _require_cells(plane, cell_diameter)
    smooth = gaussian(plane, sigma=max(1.0, cell_diameter / 20))
    if _cells_are_dark(smooth, threshold_otsu(smooth)):  # bright field: dark blobs
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
                   cell_diameter: float = 40.0, channel: int | None = None) -> np.ndarray:
    """Only the centres ``(N, 2)`` (row, col) of :func:`propose_cells`."""
    return propose_cells(image, cell_diameter, method, channel)[0]


def propose_labels(image: np.ndarray, cell_diameter: float = 40.0,
                   channel: int | None = None) -> np.ndarray:
    """Only the label image ``(H, W)`` of :func:`propose_cells` (watershed)."""
    return propose_cells(image, cell_diameter, channel=channel)[1]


def match_points(proposed: np.ndarray, truth: np.ndarray, max_dist: float) -> np.ndarray:
    """For each ``truth`` point, whether a proposal lies within ``max_dist`` pixels."""
    if len(proposed) == 0:
        return np.zeros(len(truth), dtype=bool)
    from scipy.spatial import cKDTree

    d, _ = cKDTree(proposed).query(truth)
    return d <= max_dist
