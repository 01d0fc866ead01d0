"""Suite2p plane folders (0.x flat ``ops.npy`` and 1.x layouts) → :class:`RoiSet`.

Object arrays (``stat.npy``, ``ops.npy``) are read with the restricted unpickler, never with
``allow_pickle=True``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.rois import RoiSet, label_name
from napari_cellcurator.core.io.safe_pickle import load_npy

REQUIRED = ("stat.npy", "F.npy")


def is_suite2p_folder(path: Path) -> bool:
    """A plane folder (has ``stat.npy``) or a folder holding ``plane*`` folders."""
    path = Path(path)
    return path.is_dir() and ((path / "stat.npy").is_file() or bool(plane_folders(path)))


def plane_folders(path: Path) -> list[Path]:
    """Plane folders at ``path``: itself, ``plane*/`` below it, or ``suite2p/plane*/``."""
    path = Path(path)
    if (path / "stat.npy").is_file():
        return [path]
    for root in (path, path / "suite2p"):
        planes = sorted(p for p in root.glob("plane*") if (p / "stat.npy").is_file())
        if planes:
            return planes
    return []


def _natural(path: Path) -> tuple:
    """Sort key: ``plane2`` before ``plane10``."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))


def sibling_planes(root: Path) -> list[Path]:
    """The ``plane*`` folders (with ``stat.npy``) directly in ``root``, in natural order —
    Suite2p's own order of the planes in ``combined/``."""
    return sorted((p for p in Path(root).glob("plane*")
                   if re.fullmatch(r"plane\d+", p.name) and (p / "stat.npy").is_file()),
                  key=_natural)


def combined_folders(planes: list[Path]) -> list[Path]:
    """The ``combined/`` folders Suite2p made beside these plane folders (multi-plane runs;
    the Suite2p GUI opens them), each once."""
    roots = {Path(p).parent for p in planes if re.fullmatch(r"plane\d+", Path(p).name)}
    return sorted(r / "combined" for r in roots if (r / "combined").is_dir())


def _full_frame(img: np.ndarray | None, ops: dict, shape: tuple[int, int]) -> np.ndarray | None:
    """Place a Vcorr/max_proj cropped to yrange/xrange back into the full frame."""
    if img is None:
        return None
    img = np.asarray(img, dtype=np.float32)
    if img.shape == tuple(shape):
        return img
    yr, xr = ops.get("yrange"), ops.get("xrange")
    out = np.zeros(shape, dtype=np.float32)
    if yr is not None and xr is not None and img.shape == (yr[1] - yr[0], xr[1] - xr[0]):
        out[yr[0]:yr[1], xr[0]:xr[1]] = img
        return out
    h, w = min(img.shape[0], shape[0]), min(img.shape[1], shape[1])
    out[:h, :w] = img[:h, :w]
    return out


#: Suite2p 1.x splits ops.npy's content over these files (db: Ly, Lx; reg_outputs: meanImg,
#: yrange, xrange; detect_outputs: max_proj, Vcorr; settings: fs); ops.npy, when present, wins
OPS_PARTS = ("settings.npy", "db.npy", "reg_outputs.npy", "detect_outputs.npy", "ops.npy")


def plane_ops(plane: Path) -> dict:
    """The plane's ops dict: 0.x ``ops.npy``, or 1.x's parts merged (ops.npy may be absent)."""
    ops: dict = {}
    for name in OPS_PARTS:
        part = _load_optional(plane / name)
        if isinstance(part, dict):
            ops.update(part)
    return ops


def _load_optional(path: Path) -> np.ndarray | None:
    return load_npy(path) if path.is_file() else None


def _stat_footprints(stat: np.ndarray, path: Path) -> list[tuple]:
    fps = []
    for i, s in enumerate(stat):
        if not isinstance(s, dict) or "ypix" not in s or "xpix" not in s:
            raise InputError(path / "stat.npy", f"ROI {i} has no ypix/xpix",
                             "Suite2p stat entries (dicts with ypix, xpix, lam)")
        try:
            ypix = np.asarray(s["ypix"], np.int64).ravel()
            xpix = np.asarray(s["xpix"], np.int64).ravel()
            lam = np.asarray(s.get("lam", np.ones(len(ypix))), np.float32).ravel()
        except (TypeError, ValueError, OverflowError):
            raise InputError(path / "stat.npy", f"ROI {i}: ypix/xpix/lam are not numbers",
                             "integer pixel coordinates and float weights") from None
        if not (len(ypix) == len(xpix) == len(lam)):
            raise InputError(path / "stat.npy", f"ROI {i}: ypix/xpix/lam lengths differ")
        fps.append((ypix, xpix, lam))
    return fps


def stat_geometry(plane: Path) -> np.ndarray:
    """``(N, 3)`` centroid y, x and pixel count of every ROI in ``plane/stat.npy``, as the
    reader places them (the items' ``y``, ``x``, ``npix``)."""
    from napari_cellcurator.core.data.roi_images import footprint_geometry

    stat = np.asarray(load_npy(Path(plane) / "stat.npy"), dtype=object).ravel()
    return footprint_geometry(_stat_footprints(stat, plane))


def _check_inside(footprints: list[tuple], shape: tuple[int, int], plane: Path) -> None:
    """Pixels outside ops' Ly × Lx mean stat.npy and ops.npy are not of one recording."""
    for i, (ypix, xpix, _) in enumerate(footprints):
        if len(ypix) and (ypix.min() < 0 or xpix.min() < 0 or ypix.max() >= shape[0]
                          or xpix.max() >= shape[1]):
            raise InputError(plane / "stat.npy", f"ROI {i} has pixels outside the "
                             f"{shape[0]}×{shape[1]} field of view",
                             "stat.npy and ops.npy of the same recording")


def read_suite2p_plane(plane: Path, extra: dict | None = None) -> RoiSet:
    """Read one Suite2p plane folder.

    Labels come from ``iscell.npy`` column 0 (what the Suite2p GUI saves after curation)
    unless ``extra["suite2p_labels"] == "none"``; column 1 becomes ``suite2p_prob``.
    """
    extra = extra or {}
    plane = Path(plane)
    for name in REQUIRED:
        if not (plane / name).is_file():
            raise InputError(plane, f"is missing {name}", "a Suite2p plane folder with "
                             "stat.npy, F.npy (and iscell.npy, Fneu.npy, ops.npy)")
    stat = load_npy(plane / "stat.npy")
    if not isinstance(stat, np.ndarray) or stat.dtype != object or stat.ndim != 1:
        raise InputError(plane / "stat.npy", "is not a 1-D object array of ROI dicts")
    n = len(stat)
    if n == 0:
        raise InputError(plane / "stat.npy", "holds no ROIs", "at least one ROI")
    f = load_npy(plane / "F.npy")
    fneu = _load_optional(plane / "Fneu.npy")
    iscell = _load_optional(plane / "iscell.npy")
    for name, arr in (("F.npy", f), ("Fneu.npy", fneu)):
        if arr is not None and getattr(getattr(arr, "dtype", None), "kind", "") not in "iuf":
            raise InputError(plane / name, f"holds {type(arr).__name__} of "
                             f"{getattr(arr, 'dtype', '?')}", "numeric fluorescence traces")
        if arr is not None and (arr.ndim != 2 or arr.shape[0] != n):
            raise InputError(plane / name, f"has shape {arr.shape} but stat.npy has {n} ROIs",
                             f"({n}, n_frames)")
    if f.shape[1] == 0:
        raise InputError(plane / "F.npy", "has 0 frames", f"({n}, n_frames), n_frames ≥ 1")
    if fneu is not None and fneu.shape != f.shape:
        raise InputError(plane / "Fneu.npy", f"shape {fneu.shape} differs from F {f.shape}")
    if iscell is not None:
        if np.ndim(iscell) not in (1, 2):
            raise InputError(plane / "iscell.npy", f"has shape {np.shape(iscell)}", f"({n}, 2)")
        try:
            iscell = np.asarray(iscell, dtype=np.float64).reshape(len(iscell), -1)
        except (TypeError, ValueError):
            raise InputError(plane / "iscell.npy", "holds values that are not numbers",
                             f"({n}, 2): label 0/1 and probability") from None
        if iscell.shape[0] != n:
            raise InputError(plane / "iscell.npy", f"has {iscell.shape[0]} rows but stat.npy has "
                             f"{n} ROIs", f"({n}, 2)")
    ops = plane_ops(plane)
    footprints = _stat_footprints(stat, plane)
    if "Ly" in ops and "Lx" in ops:
        try:
            shape = (int(ops["Ly"]), int(ops["Lx"]))
        except (TypeError, ValueError, OverflowError):
            raise InputError(plane / "ops.npy", f"Ly/Lx are not integers ({ops['Ly']!r}, "
                             f"{ops['Lx']!r})", "the frame height and width") from None
    else:
        ymax = max((int(fp[0].max()) + 1 for fp in footprints if len(fp[0])), default=1)
        xmax = max((int(fp[1].max()) + 1 for fp in footprints if len(fp[1])), default=1)
        shape = (ymax, xmax)
    _check_inside(footprints, shape, plane)
    mean = ops.get("meanImg")
    labels, columns = None, {}
    if iscell is not None:
        if extra.get("suite2p_labels", "iscell") != "none":
            labels = [label_name(v) for v in iscell[:, 0]]
        if iscell.shape[1] > 1:
            columns["suite2p_prob"] = iscell[:, 1]
    images = {k: _full_frame(ops.get(k), ops, shape) for k in ("max_proj", "Vcorr")}
    version = "1.x" if (plane / "settings.npy").is_file() or (plane / "db.npy").is_file() else "0.x"
    return RoiSet(
        footprints=footprints, traces=f, fov_shape=shape, path=plane, fmt="suite2p",
        labels=labels, neuropil=fneu,
        mean_image=None if mean is None else np.asarray(mean, np.float32),
        columns=columns,
        meta={"images": {k: v for k, v in images.items() if v is not None},
              "suite2p_version": version, "fs": float(ops.get("fs", 0) or 0) or None,
              "id_prefix": _id_prefix(plane), "neuropil_coef": _neuropil_coef(ops)},
    )


def _neuropil_coef(ops: dict) -> float | None:
    """The neuropil coefficient the user ran Suite2p with (0.x ``neucoeff``, 1.x
    ``extraction.neuropil_coefficient``), so traces are ``F − c·Fneu`` as Suite2p shows them."""
    extraction = ops.get("extraction")
    value = extraction.get("neuropil_coefficient") if isinstance(extraction, dict) else None
    if value is None:  # 0 is a value (no neuropil subtraction)
        value = ops.get("neucoeff")
    try:
        coef = float(value)
    except (TypeError, ValueError):
        return None
    return coef if 0.0 <= coef <= 2.0 else None


def _id_prefix(plane: Path) -> str:
    """``<parent>/<plane>``; Suite2p's own ``suite2p/planeN`` also names the recording folder
    above it, so two recordings read together keep distinct item ids. Named from the
    absolute path: ``--data plane0`` typed in the recording folder gives the same ids."""
    plane = plane.expanduser().resolve()
    parts = [plane.parent.name, plane.name]
    if plane.parent.name.lower() == "suite2p" and plane.parent.parent.name:
        parts.insert(0, plane.parent.parent.name)
    return "/".join(parts)


def read_suite2p(path: Path, extra: dict | None = None) -> list[RoiSet]:
    """All plane folders at ``path`` (a plane folder or its parent)."""
    planes = plane_folders(Path(path))
    if not planes:
        raise InputError(path, "holds no Suite2p plane folder", "stat.npy or plane*/stat.npy")
    return [read_suite2p_plane(p, extra) for p in planes]
