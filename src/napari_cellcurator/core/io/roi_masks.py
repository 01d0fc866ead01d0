"""ROI candidates drawn or segmented elsewhere: a movie + a label image of ROIs → cellness.

Cellpose (``<name>_cp_masks.tif``, ``<name>_masks.tif``), ImageJ/Fiji label images and napari
Labels layers store candidate ROIs as a 2-D integer image, one value per ROI (0 =
background). With the recording as a ``(T, Y, X)`` movie this is everything a cellness item
needs: the footprint (the mask) and the trace (the movie's mean inside the mask per frame,
minus 0.7 × the mean of a ring around it that avoids every ROI, as Suite2p does).

A movie read for the cellness task uses such a label image when one lies beside it
(``movie.tif`` + ``movie_masks.tif`` / ``movie_cp_masks.tif`` / ``movie_rois.tif`` / Cellpose's
``movie_seg.npy``, or the same names of a projection the user segmented: ``movie_mean``,
``movie_max``, ``movie_avg``, Fiji's ``AVG_movie`` / ``MAX_movie``), else an
ImageJ/Fiji ROI Manager set (``movie_RoiSet.zip`` / ``movie_rois.zip`` / ``movie.zip`` /
``RoiSet.zip``; see :mod:`.imagej_rois`), instead of extracting PCA/ICA candidates itself.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.rois import RoiSet
from napari_cellcurator.core.progress import ProgressFn, Stages

#: names of a label image beside ``<stem>.<ext>``: ``<stem><suffix>.<ext>``
MASK_SUFFIXES = ("_cp_masks", "_masks", "_rois", "_roi_masks", "_mask")
MASK_EXTENSIONS = (".tif", ".tiff", ".png", ".npy")
#: the Cellpose GUI's (and command line's default) output, ``<image>_seg.npy``: a pickled dict
#: whose ``masks`` is the label image
CELLPOSE_SEG = "_seg.npy"
#: names of the projection a user segmented instead of the movie (``movie_mean.tif``, Fiji's
#: Z Project ``AVG_movie.tif``), ``{}`` the movie's stem; label images of the movie first
PROJECTION_STEMS = ("{}", "{}_mean", "{}_max", "{}_avg", "AVG_{}", "MAX_{}")
#: the end of any of those label image names
MASK_NAME = re.compile("(?:" + "|".join(map(re.escape, MASK_SUFFIXES)) + r")\.(?:"
                       + "|".join(e[1:] for e in MASK_EXTENSIONS) + r")$|"
                       + re.escape(CELLPOSE_SEG) + "$", re.IGNORECASE)
#: ImageJ ROI Manager sets beside ``<stem>.<ext>``: ``<stem><suffix>.zip``, after label images
ROI_ZIP_SUFFIXES = ("_RoiSet", "_rois", "")
#: the ROI Manager's default file name, in the movie's folder (looked for last)
ROI_ZIP_DEFAULT = "RoiSet.zip"
ROI_FILE_SUFFIXES = (".zip", ".roi")


def mask_file_for(movie: Path) -> Path | None:
    """The ROIs lying beside ``movie``, if any: the one place that decides which file.

    Label images first (:data:`MASK_SUFFIXES` × :data:`MASK_EXTENSIONS`), then ImageJ ROI
    zips (:data:`ROI_ZIP_SUFFIXES`, then :data:`ROI_ZIP_DEFAULT` in the movie's folder).

    Parameters
    ----------
    movie
        The movie file.

    Returns
    -------
    Path or None
        The first of those files that exists.
    """
    movie = Path(movie)
    if movie.is_dir() and movie.suffix.lower() != ".zarr":  # a zarr movie is a folder
        return None
    stem = movie.name[: -len(movie.suffix)] if movie.suffix else movie.name
    for image in (form.format(stem) for form in PROJECTION_STEMS):
        for name in label_image_names(image):
            candidate = movie.with_name(name)
            if candidate.is_file():
                return candidate
    for suffix in ROI_ZIP_SUFFIXES:
        candidate = movie.with_name(f"{stem}{suffix}.zip")
        # a bare <stem>.zip may be an archive of the recording itself: claim it only when
        # it holds .roi files (the other names are unambiguous; a broken one is an error)
        if candidate.is_file() and (suffix or _holds_roi_files(candidate)):
            return candidate
    candidate = movie.with_name(ROI_ZIP_DEFAULT)
    return candidate if candidate.is_file() else None


def label_image_names(stem: str) -> list[str]:
    """The file names a label image of the image ``stem`` may have, in the order looked for
    (:data:`MASK_SUFFIXES` × :data:`MASK_EXTENSIONS`, then Cellpose's ``_seg.npy``)."""
    return [stem + s + e for s in MASK_SUFFIXES for e in MASK_EXTENSIONS] + [stem + CELLPOSE_SEG]


def _holds_roi_files(path: Path) -> bool:
    """Whether the zip ``path`` has ``.roi`` members (its directory only, cheap)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.lower().endswith(".roi") for n in zf.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def read_label_image(path: Path) -> np.ndarray:
    """A 2-D integer label image from TIFF/PNG/NPY or a Cellpose ``_seg.npy`` (one clear
    error otherwise)."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".npy":
            image = _npy_labels(path)
        elif path.suffix.lower() == ".png":
            from PIL import Image

            with Image.open(path) as im:
                image = np.asarray(im)
        else:
            import tifffile

            image = tifffile.imread(path)
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot be read as a label image ({exc})") from None
    image = np.squeeze(np.asarray(image))
    if image.ndim != 2:
        raise InputError(path, f"label image has shape {image.shape}", "a 2-D (Y, X) image")
    if image.dtype.kind == "f":
        if not np.all(np.isfinite(image)) or np.any(image != np.round(image)):
            raise InputError(path, "label image holds fractional values",
                             "integer ROI ids, 0 = background")
    elif image.dtype.kind not in "iub":
        raise InputError(path, f"label image has pixel type {image.dtype}", "integer ROI ids")
    return image.astype(np.int64)


def _npy_labels(path: Path) -> np.ndarray:
    """The array of a ``.npy``, or the ``masks`` of a Cellpose ``_seg.npy`` dict (unpickled
    by the restricted unpickler: nothing in the file runs)."""
    from napari_cellcurator.core.io.safe_pickle import load_npy

    data = load_npy(path)
    if isinstance(data, dict):
        if "masks" not in data:
            raise InputError(path, f"holds a dict without 'masks' (keys {sorted(data)[:6]})",
                             "a label image, or Cellpose's _seg.npy")
        data = data["masks"]
    if not isinstance(data, np.ndarray) or data.dtype == object:
        raise InputError(path, "holds no label image", "a 2-D array of integer ROI ids")
    return data


def footprints_from_label_image(labels: np.ndarray) -> tuple[list, np.ndarray]:
    """``(ypix, xpix, lam)`` per ROI id (ascending) with unit weights, and the ids.

    Negative values count as background; ids need not be contiguous (they are compacted
    before ``find_objects``, so a stray id of 10⁹ costs nothing).
    """
    from scipy import ndimage

    labels = np.clip(np.asarray(labels, dtype=np.int64), 0, None)
    uniq, compact = np.unique(labels, return_inverse=True)
    compact = compact.reshape(labels.shape) + (0 if uniq[0] == 0 else 1)
    ids = uniq[uniq > 0]
    footprints = []
    for k, box in enumerate(ndimage.find_objects(compact), start=1):
        ys, xs = np.nonzero(compact[box] == k)
        footprints.append(((ys + box[0].start).astype(np.int64),
                           (xs + box[1].start).astype(np.int64),
                           np.ones(len(ys), np.float32)))
    return footprints, ids


def check_movie(movie, path: Path):
    """``movie`` (an array, or frames read when sliced), with one clear error unless it is
    ``(T, Y, X)``."""
    movie = movie if hasattr(movie, "shape") else np.asarray(movie)
    if len(movie.shape) != 3:
        raise InputError(path, f"movie has shape {movie.shape}", "(T, Y, X) frames")
    return movie


def rois_from_footprints(movie, footprints: list, path: Path, fmt: str,
                         columns: dict, meta: dict, progress: ProgressFn | None = None
                         ) -> RoiSet:
    """A :class:`RoiSet` of ROIs drawn elsewhere, with their traces in ``movie``.

    Shared by every "movie + ROIs beside it" format, so they all feed the model the same.

    Parameters
    ----------
    movie
        ``(T, Y, X)`` frames (checked with :func:`check_movie`).
    footprints
        ``(ypix, xpix, lam)`` per ROI, inside the frame.
    path
        The movie (source of the items, named in errors).
    fmt
        Format name (``masks``, ``imagej_rois``) that write-back dispatches on.
    columns, meta
        Extra table columns (``item_id`` included) and item-set metadata.
    progress
        ``progress(fraction, stage)`` over the three passes through the frames (it may raise
        :class:`~napari_cellcurator.core.progress.Cancelled`).

    Returns
    -------
    RoiSet
        Traces = mean of the movie inside each footprint per frame.
    """
    from napari_cellcurator.core.io.movie_stream import frame_stats
    from napari_cellcurator.core.io.pcaica import neuropil_traces, project_traces

    stages = Stages(progress, [("traces", 1), ("neuropil", 1), ("mean frame", 1)])
    traces = project_traces(movie, footprints, stages.part("traces"))
    # Suite2p-style neuropil rings (subtracted × 0.7 when items are made), as the simulated
    # recordings the shipped cellness model learnt from
    neuropil = neuropil_traces(movie, footprints, progress=stages.part("neuropil"))
    mean = frame_stats(movie, stages.part("mean frame"))[0]
    return RoiSet(footprints, traces, movie.shape[1:], path, fmt, neuropil=neuropil,
                  mean_image=mean.astype(np.float32),
                  columns=columns, meta={"n_frames": int(movie.shape[0]), **meta})


def rois_from_masks(movie: np.ndarray, labels: np.ndarray, path: Path | str,
                    mask_path: Path | str | None = None, progress: ProgressFn | None = None
                    ) -> RoiSet:
    """ROI candidates of ``labels`` with their traces in ``movie`` (``(T, Y, X)``;
    ``progress`` as :func:`rois_from_footprints`).

    The table keeps each ROI's value in the label image (``mask_id``), so results can be
    joined back to the user's masks.
    """
    path = Path(path)
    where = Path(mask_path) if mask_path is not None else path
    movie = check_movie(movie, path)
    labels = np.asarray(labels)
    if labels.shape != movie.shape[1:]:
        raise InputError(where, f"label image of shape {labels.shape} does not match the "
                         f"movie's frames {movie.shape[1:]}", "one ROI id per movie pixel")
    footprints, ids = footprints_from_label_image(labels)
    if not footprints:
        raise InputError(where, "label image holds no ROIs (all pixels are 0)")
    # ids from the mask values: adding or removing a ROI later keeps every other ROI's id,
    # so its labels in the journal stay with it
    columns = {"mask_id": ids.astype(np.int64),
               "item_id": [f"{path.stem}:mask{int(i)}" for i in ids]}
    return rois_from_footprints(movie, footprints, path, "masks", columns,
                                {"mask_path": str(mask_path) if mask_path else None},
                                progress)


def read_movie_with_masks(movie_path: Path, mask_path: Path,
                          progress: ProgressFn | None = None) -> RoiSet:
    """The movie file and the ROIs beside it (a label image or an ImageJ ROI zip/.roi;
    ``progress`` as :func:`rois_from_footprints`)."""
    from napari_cellcurator.core.io.pcaica import movie_frames

    if Path(mask_path).suffix.lower() in ROI_FILE_SUFFIXES:
        from napari_cellcurator.core.io.imagej_rois import rois_from_imagej

        return rois_from_imagej(movie_frames(movie_path), mask_path, movie_path, progress)
    return rois_from_masks(movie_frames(movie_path), read_label_image(mask_path), movie_path,
                           mask_path, progress)
