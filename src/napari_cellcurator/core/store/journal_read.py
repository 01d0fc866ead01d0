"""Reading a label journal without writing to it (a journal on a read-only share), and the
label queries shared with :class:`~napari_cellcurator.core.store.journal.LabelJournal`."""

from __future__ import annotations

import sqlite3
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

LABEL_COLUMNS = ["item_id", "label", "source", "model_version", "user", "timestamp"]
#: what the label queries return: the label columns and the ROI's anchor (or None)
CURRENT_COLUMNS = [*LABEL_COLUMNS, "anchor"]


def read_current_labels(path: str | Path) -> pd.DataFrame:
    """The current labels of the journal at ``path``, read without writing anything (a
    journal on a read-only share: no WAL set-up, no schema update).

    Raises
    ------
    sqlite3.Error
        The file cannot be read as a journal.
    """
    path = Path(path).absolute()
    wal = path.with_name(path.name + "-wal")
    # with no pending write-ahead log the file is all there is: read it as immutable (no
    # -wal/-shm files created beside it); else a read-only connection that reads the log
    if wal.is_file() and wal.stat().st_size > 0:
        return _read_labels(path, "mode=ro")
    try:
        return _read_labels(path, "immutable=1")
    except sqlite3.DatabaseError:
        # a writer started meanwhile and checkpoints into the file under the immutable
        # reader ("database disk image is malformed"): read as its fellow reader instead
        return _read_labels(path, "mode=ro")


def sqlite_uri(path: PurePath) -> str:
    """A SQLite ``file:`` URI of an absolute path, for read-only opening.

    ``Path.as_uri()`` gives ``file://server/share/...`` for a Windows network path, which
    SQLite refuses ("invalid uri authority"); here the authority stays empty and the UNC
    path follows it (``file:////server/share/...``), as SQLite passes the path to Windows.
    """
    from urllib.parse import quote

    posix = path.as_posix()  # /data/..., C:/data/... or //server/share/...
    if not posix.startswith("/"):  # a drive: file:///C:/data/...
        posix = "/" + posix
    return "file://" + quote(posix, safe="/:")  # (empty authority)


def _read_labels(path: Path, mode: str) -> pd.DataFrame:
    import pandas as pd

    conn = sqlite3.connect(f"{sqlite_uri(path)}?{mode}", uri=True)
    try:
        # a journal of an earlier version has no anchors table (and is not changed here)
        anchored = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                "name = 'anchors'").fetchone() is not None
        select = current_select("c") if anchored else (
            ", ".join(f"c.{c}" for c in LABEL_COLUMNS) + ", NULL")
        join = ANCHOR_JOIN.format(t="c") if anchored else ""
        rows = conn.execute(f"SELECT {select} FROM current_labels c {join} "
                            "WHERE c.label IS NOT NULL ORDER BY c.event_id").fetchall()
    finally:
        conn.close()
    return pd.DataFrame(rows, columns=CURRENT_COLUMNS).astype(object)


ANCHOR_JOIN = "LEFT JOIN anchors a ON a.event_id = {t}.event_id"


def current_select(table: str) -> str:
    """The label columns of ``table`` and the anchor (of the ``ANCHOR_JOIN``)."""
    return ", ".join(f"{table}.{c}" for c in LABEL_COLUMNS) + ", a.anchor"
