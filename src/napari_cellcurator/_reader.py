"""npe2 reader: Suite2p/CaImAn/Allen ROI sets, mixture manifests, class folders, projects,
and movies napari cannot open itself (HDF5, CaImAn .mmap, Suite2p data.bin, video).

``get_reader`` only looks at the path (cheap, no torch; an HDF5 file's top-level names):
napari calls it for every file the user opens. The returned reader does the real work through
the task's core reader.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from napari_cellcurator.core.io.images import IMAGE_SUFFIXES

PROJECT_SUFFIX = ".cellcurator"
#: an image this large on its longest side is a frame (of a movie, or a smear without
#: labels), not a crop: a folder of such images does not tell its task
FRAME_SIDE = 512


def detect_task(path: str | Path) -> str | None:
    """Which task's reader understands ``path`` (None when none does)."""
    from napari_cellcurator.core.io.arrays import split_fragment

    path = Path(path)
    file, fragment = split_fragment(path)
    if fragment is not None:  # data.npz#test: one set of an array file
        from napari_cellcurator.core.io.arrays import is_array_file

        return "celltype" if is_array_file(path) else None
    if path.suffix == PROJECT_SUFFIX:
        data = project_data_path(path)
        return None if data is None else detect_task(data)
    from napari_cellcurator.core.io.neurofinder import neurofinder_root

    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".npy" and (path.parent / "stat.npy").is_file():
            return "cellness"  # any file of a Suite2p plane folder (F.npy, iscell.npy...)
        if suffix == ".nwb":  # segmentation results, or only the raw movie (below)
            from napari_cellcurator.core.io.nwb import has_segmentation

            if _holds(path, has_segmentation):
                return "cellness"
        if suffix in (".hdf5", ".h5"):  # CaImAn results, crops + labels, or a movie (below)
            from napari_cellcurator.core.io.arrays import holds_crops
            from napari_cellcurator.core.io.caiman import is_caiman_results

            if _holds(path, is_caiman_results):
                return "cellness"
            if holds_crops(path):
                return "celltype"
        if path.name == "regions.json" and neurofinder_root(path) is not None:
            return "cellness"  # a Neurofinder data set's regions
        if suffix == ".json" and _head(path).lstrip().startswith(("[", '{"rois"')):
            return "cellness"  # Allen: a list of ROIs (or {"rois": [...]})
        if suffix == ".npz":  # arrays of crops + labels (MedMNIST-style)
            return "celltype"
        if suffix in (".csv", ".tsv"):
            return _table_task(_first_line(path))
        from napari_cellcurator.core.io.movies import MOVIE_SUFFIXES

        if suffix in MOVIE_SUFFIXES:  # a movie (.tif, .h5, .mmap, .avi...) with ROIs beside it
            from napari_cellcurator.core.io.roi_masks import mask_file_for

            return "cellness" if mask_file_for(path) is not None else None
        return None
    if not path.is_dir():
        return None
    from napari_cellcurator.core.io.minian import minian_folder

    # Minian results (A.zarr, C.zarr...) or one store; a Neurofinder data set (images/ +
    # regions/regions.json)
    if minian_folder(path) is not None or neurofinder_root(path) is not None:
        return "cellness"
    if path.suffix.lower() == ".zarr":  # a zarr movie with its ROI masks beside it
        from napari_cellcurator.core.io.roi_masks import mask_file_for

        return "cellness" if mask_file_for(path) is not None else None
    from napari_cellcurator.core.io.suite2p import is_suite2p_folder

    if is_suite2p_folder(path):
        return "cellness"
    from napari_cellcurator.core.io.celltype_readers import split_folders

    if split_folders(path):  # train/ val/ test/ folders of class folders
        return "celltype"
    from napari_cellcurator.core.io.annotated_frames import frames_layout
    from napari_cellcurator.core.io.yolo import dataset_splits

    # frames + points, COCO / YOLO / VOC / CVAT boxes, LabelMe, QuPath objects or masks
    if frames_layout(path) is not None or dataset_splits(path):
        return "celltype"
    if any(_holds_images(p) or any(_holds_images(q) for q in _folders(p))
           for p in _folders(path)):  # class folders, their images maybe in sub-folders
        return "celltype"
    return "celltype" if _holds_crops(path) else None


def _folders(path: Path) -> list[Path]:
    from napari_cellcurator.core.io.images import subfolders

    return subfolders(path)


def _holds_images(folder: Path) -> bool:
    return any(f.suffix.lower() in IMAGE_SUFFIXES for f in folder.iterdir())


def _holds_crops(folder: Path) -> bool:
    """Whether ``folder`` holds crops without classes: images, the first smaller than a
    frame (a folder of frames is a movie for the mixture task, ``--task`` says so)."""
    from napari_cellcurator.core.io.images import first_image_file

    first = first_image_file(folder)
    return first is not None and _longest_side(first) < FRAME_SIDE


def _longest_side(image: Path) -> int:
    """The longest side of an image, from its header (0 when unreadable: the reader then
    names the file and the problem); a multi-frame TIFF (a movie, not a crop) counts as a
    frame-sized image."""
    try:
        if image.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(image) as tif:
                shape = [n for n in tif.series[0].shape if n > 1]
            if len(shape) > 3 or (len(shape) == 3 and min(shape[0], shape[-1]) > 4):
                return FRAME_SIDE  # frames × height × width: beyond channels
            return max(shape, default=0)
        from PIL import Image

        with Image.open(image) as im:
            return max(im.size)
    except (OSError, ValueError, IndexError):
        return 0


def unknown_format(path: Path) -> str:
    """What to tell when "auto" finds no task: a movie is read by two tasks, so ask."""
    from napari_cellcurator.core.io.movies import MOVIE_SUFFIXES, is_video_folder

    if path.suffix.lower() in MOVIE_SUFFIXES or is_video_folder(path):
        return (f"{path.name}: a movie — choose the task: cellness (find candidate cells, "
                "or ROIs from a mask file beside it) or mixture (tiles to score)")
    if path.is_dir() and any(f.suffix.lower() in IMAGE_SUFFIXES for f in path.iterdir()):
        return (f"{path.name}: images of {FRAME_SIDE} px or more — choose the task: mixture "
                "(tiles of the movie these frames make), cellness (candidate cells in that "
                "movie) or celltype (crops without classes)")
    return f"{path}: not a format napari-cellcurator reads"


def _holds(path: Path, check: Callable[[Path], bool]) -> bool:
    """``check(path)`` (CaImAn results? ROI segmentation?); an unreadable file counts as
    holding them: the cellness reader then says what is wrong with it."""
    from napari_cellcurator.core.errors import InputError

    try:
        return check(path)
    except InputError:
        return True


def is_plain_movie(path: str | Path) -> bool:
    """A movie napari cannot open by itself (HDF5, NWB raw recording, CaImAn ``.mmap``,
    Suite2p ``data.bin``, video, Miniscope folder, a folder of TIFF stacks): opened as an
    image layer, for Load → *Use these layers*."""
    from napari_cellcurator.core.io.movies import (
        PIPELINE_SUFFIXES,
        VIDEO_SUFFIXES,
        is_video_folder,
    )

    path = Path(path)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".bin":  # Suite2p's data.bin (its ops.npy gives the frame size)
            return path.name.lower() == "data.bin" or (path.parent / "ops.npy").is_file()
        if suffix in (".h5", ".hdf5"):  # leave other HDF5 files (ilastik...) to other plugins
            from napari_cellcurator.core.io.pipeline_movies import holds_hdf5_movie

            return _holds(path, holds_hdf5_movie)
        return suffix in (*PIPELINE_SUFFIXES, *VIDEO_SUFFIXES)
    from napari_cellcurator.core.io.frame_folders import is_stack_folder

    # a recording in blocks of TIFF frames (ScanImage): one lazy movie, not a 4-D stack of files
    return path.is_dir() and (is_video_folder(path) or is_stack_folder(path))


def read_movie_layer(path: str | Path) -> list[tuple]:
    """The movie at ``path`` as a lazy (T, Y, X) image layer (frames decoded when shown)."""
    from napari_cellcurator.core.io.movies import open_movie

    path = Path(path[0] if isinstance(path, list) else path)
    movie = open_movie(path)
    bound_dask_cache(movie.dask.nbytes)
    name = path.stem if path.is_file() else path.name
    return [(movie.dask, {"name": name, "metadata": {"cellcurator_movie": str(path)}},
             "image")]


def bound_dask_cache(nbytes: float) -> None:
    """Room in napari's dask chunk cache for a quarter of a lazy movie of ``nbytes`` (256 MB
    to 2 GB): napari's default grows to a quarter of the RAM on long movies."""
    from napari.utils import resize_dask_cache

    resize_dask_cache(int(min(max(nbytes * 0.25, 256e6), 2e9)))


def _table_task(header: str) -> str | None:
    """Task of a CSV/TSV from its header: a mixture manifest has a ``proportion`` column, a
    crop table a file and a class column; our own exports (``item_id``) are left to napari."""
    from napari_cellcurator.core.io.celltype_readers import (
        FILE_COLUMNS,
        LABEL_COLUMNS,
        column_key,
    )
    from napari_cellcurator.core.io.names import field_separator

    names = {column_key(c) for c in header.split(field_separator(header))}
    if "itemid" in names:
        return None
    if "proportion" in names:
        return "mixture"
    if names & set(FILE_COLUMNS) and names & set(LABEL_COLUMNS):
        return "celltype"
    return None


def _first_line(path: Path) -> str:
    """The header of a text table ("" when unreadable: then it is not ours)."""
    from napari_cellcurator.core.io.names import header_line

    try:
        return header_line(path)
    except OSError:
        return ""


def _head(path: Path, n: int = 256) -> str:
    """The first bytes of a file as text (format sniffing without reading it all)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(n).decode("utf-8", errors="replace")
    except OSError:
        return ""


def project_data_path(project: Path) -> Path | None:
    """The data a ``<data>.cellcurator`` project folder belongs to, if it still exists."""
    data = project.with_name(project.name[: -len(PROJECT_SUFFIX)])
    return data if data.exists() else None


def get_reader(path: str | list[str]) -> Callable | None:
    """npe2 ``napari_get_reader``: a reader for ``path`` or None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    task = detect_task(path)
    if task is None:
        return read_movie_layer if is_plain_movie(path) else None
    return lambda p: read_layers(p[0] if isinstance(p, list) else p, task)


def read_layers(path: str | Path, task: str | None = None) -> list[tuple]:
    """Layer data tuples of the items at ``path`` (labels merged from its project journal)."""
    from napari_cellcurator._qt.layers import layer_data_for
    from napari_cellcurator.core.tasks import ReadOptions, get_task

    path = Path(path)
    if path.suffix == PROJECT_SUFFIX:
        path = project_data_path(path) or path
    task = task or detect_task(path)
    if task is None:
        from napari_cellcurator.core.errors import InputError

        raise InputError(path, "is not a format napari-cellcurator reads",
                         "a Suite2p plane folder, Allen ROI JSON, CaImAn HDF5, NWB, mixture "
                         "manifest CSV or a folder of class folders")
    # read_checked: a decoding error is one message naming the file, as in the CLI
    items = get_task(task).read_checked(path, ReadOptions.every_item())
    items.table = _with_journal_labels(items.table, path, get_task(task).kind)
    return layer_data_for(task, items)


def _with_journal_labels(table, path: Path, kind: str):
    """``table`` with the labels of the data's project journal on top (people's labels are
    what a curated data set shows), read without creating or writing a project."""
    import sqlite3

    from napari_cellcurator.core.store.journal import read_current_labels
    from napari_cellcurator.core.store.project import JOURNAL_NAME, project_folder
    from napari_cellcurator.core.triage import merge_labels

    journal = project_folder(path) / JOURNAL_NAME
    if not journal.is_file():
        return table
    try:
        labels = read_current_labels(journal)
    except sqlite3.Error:  # the Load widget says what is wrong with the journal
        return table
    return merge_labels(table, labels, kind == "proportion")
