"""Training manifests of the mixture task: one CSV row per movie (region) with its proportion.

Columns
-------
path
    Movie file (.tif/.tiff/.zarr/.npy/OME-Zarr/.h5/.mmap/data.bin), relative to the CSV's
    folder or absolute.
    Empty (or ``composite``) on composite rows.
proportion
    Fraction of the *second* cell type (``class_b``) in [0, 1].
split (optional)
    ``train`` or ``val``: force the side of the train/validation split.
y0, x0, y1, x1 (optional)
    Region of the field of view (movie pixels, end exclusive); default the whole frame.
t0, t1 (optional)
    Frame range [t0, t1); default all frames.
class_a, class_b (optional)
    Names of the two cell types (proportion = fraction of class_b).
composite_of, n, grid (optional)
    Composite rows: ``composite_of`` = two data-row numbers ``"A B"`` (1-based, as in error
    messages) of a pure type-a row (proportion 0) and a pure type-b row (proportion 1); ``n``
    composites of a ``grid``×``grid`` block layout are drawn from them (see
    :mod:`napari_cellcurator.core.data.composites`).
stride, t_stride, max_snippets (optional)
    Per-row tiling overrides (spatial / temporal stride, random subsample size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.names import table_path

KNOWN = ("path", "proportion", "split", "y0", "x0", "y1", "x1", "t0", "t1", "class_a",
         "class_b", "composite_of", "n", "grid", "stride", "t_stride", "max_snippets")
EXPECTED = "a CSV with columns path,proportion[,split,y0,x0,y1,x1,t0,t1,class_a,class_b]"


@dataclass
class ManifestRow:
    """One parsed manifest row (``number`` is 1-based among data rows)."""

    number: int
    path: Path | None
    proportion: float | None
    split: str | None = None
    box: tuple[int | None, int | None, int | None, int | None] = (None, None, None, None)
    trange: tuple[int | None, int | None] = (None, None)
    composite_of: tuple[int, int] | None = None
    n: int | None = None
    grid: int | None = None
    stride: int | None = None
    t_stride: int | None = None
    max_snippets: int | None = None


def _blank(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip() == ""


def _int(csv: Path, row: int, col: str, v, minimum: int | None = 0) -> int | None:
    if _blank(v):
        return None
    try:
        f = float(v)
        if not f.is_integer():
            raise ValueError
    except (TypeError, ValueError):
        raise InputError(csv, f"row {row}: column {col!r} is {v!r}, not an integer") from None
    if minimum is not None and f < minimum:
        raise InputError(csv, f"row {row}: column {col!r} is {int(f)}, below {minimum}")
    return int(f)


def read_manifest(csv: str | Path) -> tuple[list[ManifestRow], tuple[str, str]]:
    """Parse and check a manifest.

    Returns
    -------
    rows
        Data rows, in file order.
    classes
        (class_a, class_b): from the CSV's columns when given, else ``("type_a", "type_b")``.

    Raises
    ------
    InputError
        Naming the CSV, the row and the problem.
    """
    from napari_cellcurator.core.io.names import table_separator

    csv = Path(csv)
    try:
        sep = table_separator(csv)  # comma, semicolon (European Excel) or tab
        df = pd.read_csv(csv, sep=sep, dtype=str, keep_default_na=False,
                         skipinitialspace=True, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as e:
        raise InputError(csv, f"is not a readable CSV ({type(e).__name__}: {e})", EXPECTED) from e
    df.columns = [str(c).strip().lower() for c in df.columns]
    if "path" not in df.columns or "proportion" not in df.columns:
        raise InputError(csv, f"lacks columns 'path' and/or 'proportion' (has {list(df.columns)})",
                         EXPECTED)
    if len(df) == 0:
        raise InputError(csv, "has no data rows", EXPECTED)
    if sep == ";":  # a spreadsheet with decimal commas: 0,25
        df["proportion"] = df["proportion"].str.replace(",", ".", regex=False)
    rows = [_parse_row(csv, i + 1, r) for i, r in enumerate(df.to_dict("records"))]
    _check_composites(csv, rows)
    classes = ("type_a", "type_b")
    if "class_a" in df.columns and "class_b" in df.columns:
        a = sorted({v.strip() for v in df["class_a"] if v.strip()})
        b = sorted({v.strip() for v in df["class_b"] if v.strip()})
        if len(a) > 1 or len(b) > 1:
            raise InputError(csv, f"names several cell types: class_a {a}, class_b {b}",
                             "one class_a and one class_b for the whole manifest")
        if a and b:
            if a == b:
                raise InputError(csv, f"class_a and class_b are both {a[0]!r}")
            classes = (a[0], b[0])
    return rows, classes


def _parse_row(csv: Path, n: int, r: dict) -> ManifestRow:
    comp = r.get("composite_of", "")
    raw_path = str(r.get("path", "")).strip()
    row = ManifestRow(number=n, path=None, proportion=None)
    if not _blank(comp):
        parts = str(comp).replace(";", " ").replace(",", " ").replace("+", " ").split()
        if len(parts) != 2:
            raise InputError(csv, f"row {n}: composite_of is {comp!r}",
                             "two data-row numbers, e.g. '1 2'")
        row.composite_of = tuple(_int(csv, n, "composite_of", p, 1) for p in parts)
        row.n = _int(csv, n, "n", r.get("n"), 1) or 200
        row.grid = _int(csv, n, "grid", r.get("grid"), 1) or 2
        if row.grid < 2:
            raise InputError(csv, f"row {n}: grid is {row.grid}; composites need at least 2")
    else:
        if raw_path == "" or raw_path.lower() == "composite":
            raise InputError(csv, f"row {n}: path is empty", "a movie path")
        row.path = table_path(raw_path, csv)
        if not row.path.exists():
            raise InputError(csv, f"row {n}: movie {raw_path!r} does not exist "
                             f"(looked for {row.path})")
        row.proportion = _proportion(csv, n, r.get("proportion"))
    split = str(r.get("split", "")).strip().lower()
    if split and split not in ("train", "val"):
        raise InputError(csv, f"row {n}: split is {split!r}", "'train', 'val' or empty")
    row.split = split or None
    box = tuple(_int(csv, n, c, r.get(c)) for c in ("y0", "x0", "y1", "x1"))
    if box[0] is not None and box[2] is not None and box[2] <= box[0] or (
            box[1] is not None and box[3] is not None and box[3] <= box[1]):
        raise InputError(csv, f"row {n}: empty region y0,x0,y1,x1 = {box}")
    row.box = box
    row.trange = (_int(csv, n, "t0", r.get("t0")), _int(csv, n, "t1", r.get("t1")))
    if None not in row.trange and row.trange[1] <= row.trange[0]:
        raise InputError(csv, f"row {n}: empty frame range t0,t1 = {row.trange}")
    row.stride = _int(csv, n, "stride", r.get("stride"), 1)
    row.t_stride = _int(csv, n, "t_stride", r.get("t_stride"), 1)
    row.max_snippets = _int(csv, n, "max_snippets", r.get("max_snippets"), 1)
    return row


def _proportion(csv: Path, n: int, v) -> float | None:
    if _blank(v):
        return None  # an unlabelled movie: predicted, not trained on
    try:
        p = float(v)
    except (TypeError, ValueError):
        raise InputError(csv, f"row {n}: proportion is {v!r}, not a number",
                         "a fraction in [0, 1]") from None
    if not 0.0 <= p <= 1.0:
        raise InputError(csv, f"row {n}: proportion {p} is outside [0, 1]",
                         "the fraction of the second cell type, in [0, 1]")
    return p


def _check_composites(csv: Path, rows: list[ManifestRow]) -> None:
    by_number = {r.number: r for r in rows}
    for r in rows:
        if r.composite_of is None:
            continue
        a, b = r.composite_of
        for k in (a, b):
            if k not in by_number or by_number[k].path is None:
                raise InputError(csv, f"row {r.number}: composite_of refers to row {k}, which "
                                 "is not a movie row")
        if by_number[a].proportion != 0.0 or by_number[b].proportion != 1.0:
            raise InputError(csv, f"row {r.number}: composite_of rows {a} and {b} have "
                             f"proportions {by_number[a].proportion} and "
                             f"{by_number[b].proportion}",
                             "a pure type-a row (0) first, then a pure type-b row (1)")
