"""ROI candidates from an ImageJ/Fiji ROI Manager set (``RoiSet.zip`` or one ``.roi``).

Fiji users draw or trace cells in the ROI Manager and save them as a zip of ``.roi`` records.
With the recording beside it (see :func:`.roi_masks.mask_file_for` for the file names) every
area ROI becomes a cellness candidate: its pixels are rasterised on their own, so
overlapping ROIs each keep all their pixels (a single label image would give the overlap to
one of them), and the traces are made exactly as for a label image of ROIs.

Pixels follow ImageJ's masks: a pixel belongs to a shape when its centre ``(x + ½, y + ½)``
lies inside; ovals are ellipses inscribed in their bounds; composite (shape) ROIs are filled
even-odd, so holes stay holes.
"""

from __future__ import annotations

import struct
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.io.names import readable
from napari_cellcurator.core.io.rois import Footprint, RoiSet

if TYPE_CHECKING:
    from roifile import ImagejRoi

#: one ``.roi`` record of the set: its zip member name (the file name for a lone ``.roi``)
#: and its bytes, kept so a write-back copies them unchanged
RoiRecord = tuple[str, bytes]


def read_roi_records(path: Path) -> list[RoiRecord]:
    """The ``.roi`` records of a ROI Manager zip, or of a single ``.roi`` file, in order.

    Parameters
    ----------
    path
        ``.zip`` (members ending in ``.roi``, as the ROI Manager reads them) or ``.roi``.

    Returns
    -------
    list of (name, bytes)

    Raises
    ------
    InputError
        The file cannot be read, is not a zip, or holds no ``.roi`` records.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".roi":
            return [(path.name, path.read_bytes())]
        with zipfile.ZipFile(path) as zf:
            # macOS archivers add AppleDouble copies (__MACOSX/._x.roi) that are no ROIs
            # entries, not names: a zip may repeat a name, and each entry is its own ROI
            records = [(i.filename, zf.read(i)) for i in zf.infolist()
                       if i.filename.lower().endswith(".roi")
                       and not i.filename.startswith("__MACOSX/")]
    except (OSError, zipfile.BadZipFile, RuntimeError, EOFError) as exc:
        raise InputError(path, f"cannot be read as an ImageJ ROI set ({exc})",
                         "a ROI Manager RoiSet.zip") from None
    if not records:
        raise InputError(path, "holds no ImageJ .roi files", "a ROI Manager RoiSet.zip")
    return records


def parse_rois(path: Path, records: list[RoiRecord]) -> list[ImagejRoi]:
    """Decode every record with :mod:`roifile` (one error naming the file and the record)."""
    from roifile import ImagejRoi

    rois = []
    for name, data in records:
        try:
            rois.append(ImagejRoi.frombytes(data))
        except (ValueError, TypeError, IndexError, struct.error) as exc:
            raise InputError(path, f"{readable(name)} is not an ImageJ ROI ({exc})",
                             "a ROI Manager RoiSet.zip") from None
    return rois


def roi_names(rois: list[ImagejRoi], records: list[RoiRecord]) -> list[str]:
    """Stable names: the ROI's own, else its file's (as ImageJ does), else its position.

    Item ids are built from them, so a ROI keeps its labels when others are added or
    removed; a repeated name gets ``@<position>`` so two ROIs never share an id.
    """
    names, seen = [], set()
    for k, (roi, (member, _)) in enumerate(zip(rois, records, strict=True)):
        name = str(roi.name or Path(member).stem or k)
        if name in seen:
            name = f"{name}@{k}"
        seen.add(name)
        names.append(name)
    return names


def is_area(roi: ImagejRoi) -> bool:
    """Whether ``roi`` encloses pixels (lines, points, angles, text and images do not)."""
    from roifile import ROI_SUBTYPE, ROI_TYPE

    if roi.multi_coordinates is not None:  # composite (shape) ROI
        return True
    if roi.roitype == ROI_TYPE.RECT:
        return roi.subtype not in (ROI_SUBTYPE.TEXT, ROI_SUBTYPE.IMAGE)
    return roi.roitype in (ROI_TYPE.POLYGON, ROI_TYPE.FREEHAND, ROI_TYPE.TRACED, ROI_TYPE.OVAL)


def roi_mask(roi: ImagejRoi, shape: tuple[int, int]) -> np.ndarray:
    """Boolean ``shape`` mask of an area ROI, clipped to the frame."""
    from roifile import ROI_TYPE

    mask = np.zeros(shape, bool)
    if roi.multi_coordinates is not None:
        for part in roi.coordinates(multi=True):  # even-odd: a part inside another is a hole
            mask ^= _polygon_mask(np.asarray(part, np.float64), shape)
        return mask
    if roi.roitype in (ROI_TYPE.RECT, ROI_TYPE.OVAL):
        top, left, bottom, right = _bounds(roi)
        if roi.roitype == ROI_TYPE.OVAL:
            return _ellipse_mask(top, left, bottom, right, shape)
        corners = [[left, top], [right, top], [right, bottom], [left, bottom]]
        return _polygon_mask(np.asarray(corners, np.float64), shape)
    return _polygon_mask(np.asarray(roi.coordinates(), np.float64), shape)


def _bounds(roi: ImagejRoi) -> tuple[float, float, float, float]:
    """``(top, left, bottom, right)`` of a rectangle or oval (sub-pixel when stored so)."""
    if roi.subpixelrect:
        return roi.yd, roi.xd, roi.yd + roi.heightd, roi.xd + roi.widthd
    return float(roi.top), float(roi.left), float(roi.bottom), float(roi.right)


def _polygon_mask(xy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centre lies inside the polygon ``xy`` (``(n, 2)`` x, y in pixel edges)."""
    from napari_cellcurator.core.io.shapes import polygon_mask

    # ImageJ's coordinates are pixel edges: its pixel centres are at +½
    return polygon_mask(xy[:, 1] - 0.5, xy[:, 0] - 0.5, shape)


def _ellipse_mask(top: float, left: float, bottom: float, right: float,
                  shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centre lies inside the ellipse inscribed in the bounds (ImageJ's oval)."""
    from skimage.draw import ellipse

    mask = np.zeros(shape, bool)
    if bottom > top and right > left:
        rr, cc = ellipse((top + bottom) / 2 - 0.5, (left + right) / 2 - 0.5,
                         (bottom - top) / 2, (right - left) / 2, shape=shape)
        mask[rr, cc] = True
    return mask


def footprints_from_rois(rois: list[ImagejRoi], names: list[str], shape: tuple[int, int],
                         path: Path) -> tuple[list[Footprint], list[int]]:
    """Unit-weight footprints of the area ROIs with pixels in the frame, and their positions.

    Lines and points cannot be cells and ROIs wholly outside the frame have no trace: each
    kind is skipped with one warning naming ``path`` and how many.
    """
    footprints, kept, outside = [], [], []
    areas = [k for k, roi in enumerate(rois) if is_area(roi)]
    if len(areas) < len(rois):
        warnings.warn(f"{readable(path)}: {len(rois) - len(areas)} line/point ROI(s) skipped "
                      "(not areas, so not cells)", InputWarning, stacklevel=3)
    for k in areas:
        ys, xs = np.nonzero(roi_mask(rois[k], shape))
        if len(ys) == 0:
            outside.append(names[k])
            continue
        footprints.append((ys.astype(np.int64), xs.astype(np.int64),
                           np.ones(len(ys), np.float32)))
        kept.append(k)
    if outside:
        warnings.warn(f"{readable(path)}: {len(outside)} ROI(s) with no pixel inside the "
                      f"{shape[0]}×{shape[1]} frame skipped: {', '.join(outside[:5])}",
                      InputWarning, stacklevel=3)
    if not footprints:
        raise InputError(path, "holds no area ROI inside the movie's frame",
                         "polygon, freehand, traced, rectangle, oval or composite ROIs")
    return footprints, kept


def rois_from_imagej(movie: np.ndarray, roi_path: Path | str, path: Path | str,
                     progress=None) -> RoiSet:
    """ROI candidates of an ImageJ ROI set with their traces in ``movie`` (``(T, Y, X)``).

    Parameters
    ----------
    movie
        The recording.
    roi_path
        ``RoiSet.zip`` (or a single ``.roi``).
    path
        The movie file (source of the items; item ids ``<movie stem>:roi<name>``).
    progress
        ``progress(fraction, stage)`` over the passes through the frames.

    Returns
    -------
    RoiSet
        Format ``imagej_rois``; columns ``roi_name`` and ``zip_index`` (the ROI's position in
        the set, which write-back copies from), meta ``mask_path`` = ``roi_path``.
    """
    from napari_cellcurator.core.io.roi_masks import check_movie, rois_from_footprints

    path, roi_path = Path(path), Path(roi_path)
    movie = check_movie(movie, path)
    records = read_roi_records(roi_path)
    rois = parse_rois(roi_path, records)
    every_name = roi_names(rois, records)
    footprints, kept = footprints_from_rois(rois, every_name, movie.shape[1:], roi_path)
    names = [every_name[k] for k in kept]
    columns = {"roi_name": names, "zip_index": np.asarray(kept, np.int64),
               "item_id": [f"{path.stem}:roi{n}" for n in names]}
    return rois_from_footprints(movie, footprints, path, "imagej_rois", columns,
                                {"mask_path": str(roi_path)}, progress)
