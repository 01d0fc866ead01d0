"""File names as text that every table, CSV, JSON and SQLite column can hold; the field
separator of a user's text table."""

from __future__ import annotations

import os
import re
from os import PathLike
from pathlib import Path, PureWindowsPath


def readable(name: str | PathLike) -> str:
    """``name`` as valid UTF-8 text.

    Linux file names are bytes; Python keeps bytes that are not UTF-8 as lone surrogates,
    which pandas (Arrow strings), JSON files and CSV writers refuse. Those bytes become
    ``\\xNN`` escapes, so two different names stay different and the text stays printable.
    """
    text = str(name)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # surrogates that did not come from a file name
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def field_separator(line: str, default: str | None = ",") -> str | None:
    """The separator of a text table from one of its lines (the header): tab, then ``;``
    (spreadsheets with decimal commas), then ``,``; ``default`` when none occurs."""
    return next((c for c in ("\t", ";", ",") if c in line), default)


def header_line(path, limit: int = 65536) -> str:
    """The first line of a text table (a BOM dropped; a CellProfiler header runs to
    thousands of bytes). Raises ``OSError`` when the file cannot be opened."""
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        return fh.readline(limit)


def table_separator(path) -> str:
    """The separator of the text table at ``path`` (see :func:`field_separator`)."""
    return field_separator(header_line(path))


def natural_key(text: str) -> list:
    """Sort key that orders embedded numbers by value: ``t2`` before ``t10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def table_path(value: str, table: Path) -> Path:
    """A file named in a table (manifest, crop list), relative to the table's folder unless
    absolute. A relative path written on Windows (``movies\\a.tif``) is read on macOS and
    Linux too: there a backslash would be part of one odd file name."""
    value = value.strip()
    if "\\" in value and os.sep == "/" and not PureWindowsPath(value).is_absolute():
        value = value.replace("\\", "/")
    path = Path(value)
    return path if path.is_absolute() else table.parent / path
