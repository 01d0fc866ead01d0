"""``cellcurator propose``: candidate cells for frames without positions.

Writes one ``<stem>.txt`` per frame with lines ``x y`` (x = column, y = row) and no class:
the celltype reader takes them as unlabelled cells, so a folder with the frames in
``images/`` and these files in ``labels/`` is ready for ``cellcurator predict``, and for
labelling (add a class after the coordinates).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

#: first line of the files this command writes: a later run may replace such a file, never
#: one it did not write (a comment: the point reader skips it)
MARK = "# cells proposed by cellcurator propose"


def add_propose_parser(sub) -> None:
    """Register ``propose`` on the ``cellcurator`` sub-command parsers ``sub``."""
    from napari_cellcurator._cli_args import positive

    p = sub.add_parser(
        "propose", help="find candidate cells in frames without positions",
        description="Write <stem>.txt with one 'x y' line (x = column, y = row) per cell found "
                    "in each frame; put the frames in images/ and these files in labels/ "
                    "to predict or label them.")
    p.add_argument("--data", required=True, metavar="FRAME_OR_FOLDER",
                   help="an image file, a folder of images, or a folder with images/")
    p.add_argument("--out", required=True, metavar="LABELS_FOLDER",
                   help="folder for the point files (created; existing files are never "
                        "replaced unless this command wrote them)")
    p.add_argument("--diameter", type=positive(float), default=40.0,
                   help="typical cell diameter in pixels (default 40)")
    p.add_argument("--method", choices=("watershed", "log"), default="watershed",
                   help="watershed: threshold + split touching cells (default); log: "
                        "Laplacian-of-Gaussian blobs")
    p.add_argument("--channel", type=int, metavar="N",
                   help="channel to find cells in (default: green for colour images, "
                        "otherwise the channel with the most contrast)")


def frames_of(data: Path) -> list[Path]:
    """The frames named by ``--data``: the file itself, the images of a folder, or those of
    its ``images/`` (or other frames) sub-folder.

    Raises
    ------
    InputError
        ``data`` is missing or holds no images.
    """
    from napari_cellcurator.core.errors import InputError
    from napari_cellcurator.core.io.images import IMAGE_SUFFIXES, image_files
    from napari_cellcurator.core.io.points import IMAGE_DIRS

    if data.is_file():
        if data.suffix.lower() not in IMAGE_SUFFIXES:
            raise InputError(data, "is not an image", "a .tif, .png or .jpg frame, or a folder")
        return [data]
    if not data.is_dir():
        raise InputError(data, "does not exist", "an image file or a folder of frames")
    frames = image_files(data)
    if not frames:
        subdirs = {d.name.lower(): d for d in sorted(data.iterdir()) if d.is_dir()}
        sub = next((subdirs[n] for n in IMAGE_DIRS if n in subdirs), None)
        frames = image_files(sub) if sub is not None else []
    if not frames:
        raise InputError(data, "contains no images", "*.jpg|png|tif frames, or images/")
    return frames


def check_out(out: Path, data: Path, frames: list[Path]) -> None:
    """Refuse an output folder that is (or holds) the input, or that has point files of
    these frames this command did not write: writing would replace the user's files.

    Raises
    ------
    InputError
        Naming ``out`` and what would be destroyed.
    """
    from napari_cellcurator.core.errors import InputError
    from napari_cellcurator.core.io.points import LABEL_SUFFIXES
    from napari_cellcurator.core.store.atomic import check_not_input

    check_not_input(out, [data, *{f.parent for f in frames}], inside_ok=True)
    if out.exists() and not out.is_dir():
        raise InputError(out, "is a file", "a folder for the point files")
    stems = {f.stem for f in frames}
    taken = sorted(f.name for f in out.iterdir() if f.is_file() and f.stem in stems
                   and f.suffix.lower() in LABEL_SUFFIXES
                   and not (f.suffix.lower() == ".txt" and _ours(f))) if out.is_dir() else []
    if taken:
        raise InputError(out, f"already has point files of these frames ({', '.join(taken[:3])}"
                         f"{'…' if len(taken) > 3 else ''}); writing would replace them",
                         "a new or empty labels folder")


def _ours(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.readline().startswith(MARK)
    except OSError:
        return False


def propose_frame(frame: Path, diameter: float, method: str, channel: int | None):
    """Centres ``(N, 2)`` (row, col) of the cells of one frame file.

    Parameters
    ----------
    frame
        The image file.
    diameter, method, channel
        As :func:`~napari_cellcurator.core.data.proposals.propose_cells`.

    Raises
    ------
    InputError
        Naming ``frame`` (unreadable, flat, no such channel).
    """
    from napari_cellcurator.core.data.proposals import propose_points
    from napari_cellcurator.core.errors import InputError
    from napari_cellcurator.core.io.images import read_image_chw

    image = read_image_chw(frame)
    try:
        return propose_points(image, method, diameter, channel)
    except InputError as exc:
        if exc.path is not None:
            raise
        raise type(exc)(frame, exc.problem, exc.expected) from None  # an EmptyFrameError stays one


def write_points(path: Path, centres, header: str) -> None:
    """Write ``path`` atomically: the :data:`MARK` header, then ``x y`` lines.

    Parameters
    ----------
    path
        The point file.
    centres
        ``(N, 2)`` (row, col); written as x = column, y = row.
    header
        How they were found (method, diameter), after the mark.
    """
    from napari_cellcurator.core.store.atomic import atomic_write

    lines = [f"{MARK} ({header}): x y per line, x = column, y = row, no class = unlabelled"]
    lines += [f"{x:.1f} {y:.1f}" for y, x in centres]
    atomic_write(path, lambda tmp: tmp.write_text("\n".join(lines) + "\n", encoding="utf-8"))


def cmd_propose(a: argparse.Namespace) -> int:
    """``cellcurator propose``: one point file per frame in ``--out``."""
    from napari_cellcurator.core.data.proposals import EmptyFrameError
    from napari_cellcurator.core.errors import InputError, InputWarning

    data, out = Path(a.data), Path(a.out)
    frames = frames_of(data)
    stems = [f.stem for f in frames]
    twins = sorted({f.name for f in frames if stems.count(f.stem) > 1})
    if twins:  # one point file per stem: a.png and a.tif would overwrite each other's
        raise InputError(data, f"frames {twins[:6]} share a name", "one frame per name "
                         "(the readers pair a frame with labels/<name>.txt)")
    check_out(out, data, frames)
    header = f"method {a.method}, diameter {a.diameter:g}" + (
        f", channel {a.channel}" if a.channel is not None else "")
    total = 0
    for frame in frames:
        try:
            centres = propose_frame(frame, a.diameter, a.method, a.channel)
        except EmptyFrameError as exc:  # flat, or only noise: an empty field of view
            if len(frames) == 1:
                raise
            warnings.warn(f"{frame}: {exc.problem}; no cells proposed", InputWarning,
                          stacklevel=2)
            centres = []
        write_points(out / f"{frame.stem}.txt", centres, header)
        total += len(centres)
    print(f"wrote {len(frames)} point file(s) to {out}: {total} cells")
    if out.parent.resolve() == frames[0].parent.parent.resolve() and \
            frames[0].parent.name.lower() == "images" and out.name.lower() == "labels":
        print(f"next: cellcurator predict --data {out.parent} --out predictions.csv")
    return 0
