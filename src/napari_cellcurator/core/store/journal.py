"""The label journal: every label change is an append-only event in a SQLite file.

Each change is committed before the call returns (WAL, ``synchronous=FULL``), so closing napari,
a crash or ``kill -9`` loses nothing that was acknowledged. The current label of an item is the
latest event that was not undone; an undo is itself an event pointing at the event it undoes.
A label of an ROI also records where the ROI was (its *anchor*, in a side table that older
versions ignore), so labels follow cells when a segmentation is run again
(:mod:`napari_cellcurator.core.anchors`).

pandas is imported lazily so that a writer process starts fast.
"""

from __future__ import annotations

import getpass
import math
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.store.journal_read import (  # noqa: F401 (read_current_labels,
    ANCHOR_JOIN,  # sqlite_uri: imported from here by callers)
    CURRENT_COLUMNS,
    LABEL_COLUMNS,
    current_select,
    read_current_labels,
    sqlite_uri,
)

if TYPE_CHECKING:
    import pandas as pd

#: Who made a change. Only ``human`` and ``cluster`` actions can be undone by the user.
SOURCES = ("human", "model", "cluster", "import")
UNDOABLE_SOURCES = ("human", "cluster")

# "ccur" as a big-endian int: marks the SQLite file as ours (PRAGMA application_id)
_APPLICATION_ID = 0x63637572
_SCHEMA_VERSION = 1
_SQLITE_MAGIC = b"SQLite format 3\x00"
_COLUMNS = ("event_id", "action_id", "item_id", "label", "source", "model_version", "user",
            "timestamp", "undoes")
# SQLite result codes (primary) that blame the file, not the SQL: read-only, locked, I/O,
# disk full, cannot open, permission
_FILE_ERRORS = {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED,
                sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN,
                sqlite3.SQLITE_PERM}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id INTEGER PRIMARY KEY,
    action_id INTEGER NOT NULL,
    item_id TEXT NOT NULL,
    label TEXT NULL,
    source TEXT NOT NULL CHECK (source IN ('human', 'model', 'cluster', 'import')),
    model_version TEXT NULL,
    user TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    undoes INTEGER NULL REFERENCES events(event_id)
);
CREATE INDEX IF NOT EXISTS events_item ON events(item_id, event_id);
CREATE INDEX IF NOT EXISTS events_action ON events(action_id);
CREATE INDEX IF NOT EXISTS events_undoes ON events(undoes);
-- label events (not undo events) that no undo event points at
CREATE VIEW IF NOT EXISTS live_events AS
    SELECT e.* FROM events e
    WHERE e.undoes IS NULL
      AND NOT EXISTS (SELECT 1 FROM events u WHERE u.undoes = e.event_id);
-- the latest live event per item: its label is the item's current label (NULL = cleared)
CREATE VIEW IF NOT EXISTS current_labels AS
    SELECT event_id, action_id, item_id, label, source, model_version, user, timestamp
    FROM (SELECT l.*, ROW_NUMBER() OVER (PARTITION BY item_id ORDER BY event_id DESC) AS rank
          FROM live_events l)
    WHERE rank = 1;
"""
# where each labelled ROI was (centroid and size, "y x npix"): one row per event that has one.
# A table beside ``events`` (not a column) so that journals stay readable by older versions.
_ANCHORS_SCHEMA = """
CREATE TABLE IF NOT EXISTS anchors (
    event_id INTEGER PRIMARY KEY REFERENCES events(event_id),
    anchor TEXT NOT NULL
)"""


@dataclass(frozen=True)
class LabelEvent:
    """One row of the journal."""

    event_id: int
    action_id: int
    item_id: str
    label: str | None
    source: str
    model_version: str | None
    user: str
    timestamp: str


def label_to_text(label: Any) -> str | None:
    """How a label is stored: class names as is, proportions as the ``repr`` of a float."""
    # pandas' missing values (pd.NA, in string columns read from Parquet; pd.NaT), by type
    # name: pandas is not imported by a journal writer
    if label is None or type(label).__name__ in ("NAType", "NaTType"):
        return None
    if isinstance(label, str):
        return label
    if isinstance(label, bool):
        raise TypeError(f"a label must be a class name or a proportion, not {label!r}")
    try:
        value = float(label)
    except (TypeError, ValueError):
        raise TypeError(f"a label must be a class name or a proportion, not {label!r}") from None
    if math.isnan(value):
        return None  # pandas' missing value: no label
    if math.isinf(value):
        raise TypeError(f"a proportion must be finite, not {label!r}")
    return repr(value)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class LabelJournal:
    """Append-only journal of label events in a SQLite file.

    Parameters
    ----------
    path
        The journal file (created if missing).
    user
        Recorded with every event; defaults to the login name.

    Notes
    -----
    One connection is shared by all threads under a lock: the GUI writes from the main thread
    while a worker may read. Several processes may use the same file (SQLite locking).
    """

    def __init__(self, path: str | Path, user: str | None = None):
        self.path = Path(path)
        self.user = user or _login_name()
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        _check_header(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(
                str(self.path), timeout=30.0, check_same_thread=False, isolation_level=None
            )
            self._setup()
        except InputError:
            self.close()
            raise
        except sqlite3.DatabaseError as exc:
            self.close()
            raise InputError(self.path, f"not a readable label journal ({exc})",
                             "a napari-cellcurator labels.sqlite file") from None

    # ------------------------------------------------------------------ setup
    def _setup(self) -> None:
        conn = self._conn
        assert conn is not None
        conn.execute("PRAGMA busy_timeout = 30000")
        tables = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if tables and (app_id != _APPLICATION_ID or "events" not in tables):
            raise InputError(self.path, "is a SQLite database but not a label journal",
                             "a napari-cellcurator labels.sqlite file")
        if tables:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                raise InputError(self.path, f"journal format {version} is newer than this "
                                 f"napari-cellcurator understands ({_SCHEMA_VERSION})")
            cols = tuple(r[1] for r in conn.execute("PRAGMA table_info(events)"))
            if cols != _COLUMNS:
                raise InputError(self.path, f"events table has columns {list(cols)}",
                                 f"{list(_COLUMNS)}")
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise InputError(self.path, f"journal is damaged ({check})")
        # WAL: readers never block the writer; FULL: a commit is on disk when it returns
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        if not tables:
            with self._transaction() as cur:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        cur.execute(statement)
                cur.execute(_ANCHORS_SCHEMA)
                cur.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
                cur.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        elif "anchors" not in tables:  # a journal of an earlier version
            with self._transaction() as cur:
                cur.execute(_ANCHORS_SCHEMA)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the journal's write lock (across processes) for a read-modify-write of a
        file beside it (the project's ``project.json``); no label may be written inside."""
        with self._transaction():
            yield

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        """A write transaction, committed (durably) on exit, rolled back on error.

        Raises
        ------
        InputError
            The journal cannot be written (a read-only file, a full disk, a lock held too
            long): nothing of the transaction was saved.
        """
        with self._lock:
            conn = self._connection()
            cur = conn.cursor()
            try:
                # IMMEDIATE takes the write lock now: action ids stay unique across processes
                cur.execute("BEGIN IMMEDIATE")
                try:
                    yield cur
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
            except sqlite3.OperationalError as exc:
                if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) not in _FILE_ERRORS:
                    raise  # an SQL mistake is a bug: keep its traceback
                if conn.in_transaction:
                    conn.rollback()
                raise InputError(self.path, f"cannot write the label journal ({exc}); "
                                 "nothing was saved", "a writable labels.sqlite") from None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"{self.path}: journal is closed")
        return self._conn

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._connection().execute(sql, params).fetchall()

    # ----------------------------------------------------------------- writes
    def set_label(self, item_id: str, label: str | None, source: str = "human",
                  model_version: str | None = None, anchor: str | None = None) -> int:
        """Record one label change (``None`` clears the label).

        ``anchor``: where the item's ROI is (``"y x npix"``,
        :func:`napari_cellcurator.core.anchors.item_anchors`), for ROI items.

        Returns
        -------
        int
            The event id, once the event is committed to disk.
        """
        with self._transaction() as cur:
            action = _next_action(cur)
            return self._insert(cur, action, item_id, label, source, model_version,
                                anchor=anchor)

    def set_labels(self, item_ids: Sequence[str], labels: Sequence[str | None],
                   source: str = "human", model_version: str | None = None,
                   anchors: Sequence[str | None] | None = None) -> int:
        """Record many label changes as one action (one transaction, undone together).

        ``anchors``: one per item (ROI items: see :meth:`set_label`), or None.

        Returns
        -------
        int
            The action id, once all events are committed to disk.
        """
        item_ids = list(item_ids)
        labels = list(labels)
        anchors = [None] * len(item_ids) if anchors is None else list(anchors)
        if not len(item_ids) == len(labels) == len(anchors):
            raise ValueError(f"{len(item_ids)} item ids but {len(labels)} labels and "
                             f"{len(anchors)} anchors")
        with self._transaction() as cur:
            action = _next_action(cur)
            for item, label, anchor in zip(item_ids, labels, anchors, strict=True):
                self._insert(cur, action, item, label, source, model_version, anchor=anchor)
            return action

    def _insert(self, cur: sqlite3.Cursor, action: int, item_id: str, label: Any, source: str,
                model_version: str | None, undoes: int | None = None,
                anchor: str | None = None) -> int:
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
        cur.execute(
            "INSERT INTO events (action_id, item_id, label, source, model_version, user, "
            "timestamp, undoes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (action, str(item_id), label_to_text(label), source, model_version, self.user,
             _now(), undoes),
        )
        event = int(cur.lastrowid)
        if anchor is not None and label is not None:
            cur.execute("INSERT INTO anchors (event_id, anchor) VALUES (?, ?)",
                        (event, str(anchor)))
        return event

    def merge_from(self, theirs: pd.DataFrame) -> int:
        """Copy another journal's current labels (:func:`read_current_labels`) of items this
        journal has never labelled, as one action keeping each label's model version, user
        and time (the other journal keeps the full history). People's labels are recorded
        as ``"import"``: they still decide, but an undo (``u``) right after the merge must
        not take back a whole earlier curation. Returns how many labels were copied."""
        with self._transaction() as cur:
            known = {r[0] for r in cur.execute("SELECT DISTINCT item_id FROM events")}
            rows = [r for r in theirs.itertuples(index=False) if str(r.item_id) not in known]
            if not rows:
                return 0
            action = _next_action(cur)
            for r in rows:
                cur.execute(
                    "INSERT INTO events (action_id, item_id, label, source, model_version, "
                    "user, timestamp, undoes) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                    (action, str(r.item_id), label_to_text(r.label),
                     "import" if r.source in UNDOABLE_SOURCES else r.source, r.model_version,
                     r.user, r.timestamp))
                anchor = getattr(r, "anchor", None)
                if isinstance(anchor, str) and r.label is not None:
                    cur.execute("INSERT INTO anchors (event_id, anchor) VALUES (?, ?)",
                                (int(cur.lastrowid), anchor))
        return len(rows)

    def undo(self) -> list[LabelEvent]:
        """Undo this user's most recent human/cluster action that is not undone yet.

        A bulk action is undone as a whole. The undo is itself recorded as events.

        Returns
        -------
        list of LabelEvent
            The events undone (``[]`` if there was nothing to undo).
        """
        with self._transaction() as cur:
            action = self._last_undoable(cur)
            if action is None:
                return []
            rows = cur.execute(
                "SELECT event_id, action_id, item_id, label, source, model_version, user, "
                "timestamp FROM live_events WHERE action_id = ? ORDER BY event_id",
                (action,),
            ).fetchall()
            undo_action = _next_action(cur)
            for row in rows:
                # the undo is a human act, whatever the source of what it undoes
                self._insert(cur, undo_action, row[2], None, "human", None, undoes=row[0])
            return [LabelEvent(*row) for row in rows]

    def can_undo(self) -> bool:
        """Whether :meth:`undo` would undo something."""
        with self._lock:
            return self._last_undoable(self._connection().cursor()) is not None

    def _last_undoable(self, cur: sqlite3.Cursor) -> int | None:
        marks = ",".join("?" * len(UNDOABLE_SOURCES))
        row = cur.execute(
            # newest first along the action index: stops at the first match
            f"SELECT action_id FROM live_events WHERE user = ? AND source IN ({marks}) "
            "ORDER BY action_id DESC LIMIT 1",
            (self.user, *UNDOABLE_SOURCES),
        ).fetchone()
        return None if row is None else int(row[0])

    # ------------------------------------------------------------------ reads
    def current_labels(self, sources: Iterable[str] | None = None) -> pd.DataFrame:
        """Items whose current label is not ``None``, one row each.

        Parameters
        ----------
        sources
            Only consider events from these sources (e.g. ``["human"]``: the latest human
            label of each item, whatever a model wrote after it).
        """
        import pandas as pd

        if sources is None:
            rows = self._query(f"SELECT {current_select('c')} FROM current_labels c "
                               f"{ANCHOR_JOIN.format(t='c')} WHERE c.label IS NOT NULL "
                               "ORDER BY c.event_id")
        else:
            sources = list(sources)
            marks = ",".join("?" * len(sources)) or "NULL"
            rows = self._query(
                f"SELECT {current_select('l')} FROM live_events l {ANCHOR_JOIN.format(t='l')} "
                f"WHERE l.source IN ({marks}) AND l.event_id = (SELECT MAX(m.event_id) "
                f"FROM live_events m WHERE m.item_id = l.item_id AND m.source IN ({marks})) "
                "AND l.label IS NOT NULL ORDER BY l.event_id",
                (*sources, *sources),
            )
        return pd.DataFrame(rows, columns=CURRENT_COLUMNS).astype(object)

    def current_labels_of(self, item_ids: Iterable[str]) -> pd.DataFrame:
        """:meth:`current_labels` of some items only (one indexed lookup each).

        What a keypress needs: the whole-journal query costs ~0.2 s at 30,000 events, this
        costs microseconds per item.
        """
        import pandas as pd

        sql = (f"SELECT l.event_id, {current_select('l')} FROM live_events l "
               f"{ANCHOR_JOIN.format(t='l')} WHERE l.item_id = ? "
               "ORDER BY l.event_id DESC LIMIT 1")
        with self._lock:
            conn = self._connection()
            latest = [conn.execute(sql, (str(i),)).fetchone() for i in dict.fromkeys(item_ids)]
        rows = sorted(r for r in latest if r is not None and r[2] is not None)
        return pd.DataFrame([r[1:] for r in rows], columns=CURRENT_COLUMNS).astype(object)

    def label_of(self, item_id: str) -> str | None:
        """The current label of one item (``None`` if unlabelled or cleared)."""
        rows = self._query("SELECT label FROM live_events WHERE item_id = ? "
                           "ORDER BY event_id DESC LIMIT 1", (str(item_id),))
        return rows[0][0] if rows else None

    def history(self, item_id: str | None = None) -> pd.DataFrame:
        """All events (of one item), oldest first, with ``undone`` and ``anchor`` (where the
        ROI was) columns."""
        import pandas as pd

        sql = (f"SELECT {', '.join('e.' + c for c in _COLUMNS)}, EXISTS (SELECT 1 FROM events u "
               "WHERE u.undoes = e.event_id) AS undone, a.anchor FROM events e "
               f"{ANCHOR_JOIN.format(t='e')}")
        params: tuple = ()
        if item_id is not None:
            sql += " WHERE e.item_id = ?"
            params = (str(item_id),)
        rows = self._query(sql + " ORDER BY e.event_id", params)
        df = pd.DataFrame(rows, columns=[*_COLUMNS, "undone", "anchor"])
        df["undone"] = df["undone"].astype(bool)
        df["undoes"] = df["undoes"].astype("Int64")
        return df

    def events(self, action_id: int) -> list[LabelEvent]:
        """The events of one action."""
        rows = self._query(
            "SELECT event_id, action_id, item_id, label, source, model_version, user, timestamp "
            "FROM events WHERE action_id = ? ORDER BY event_id", (int(action_id),))
        return [LabelEvent(*row) for row in rows]

    def __len__(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM events")[0][0])

    def export(self, path: str | Path) -> Path:
        """Write the current labels to ``.csv`` or ``.parquet`` (by suffix), atomically."""
        from napari_cellcurator.core.curation import export_table

        return export_table(self.current_labels(), path)

    # -------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Close the file (safe to call twice). Nothing is lost: every change is committed."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> LabelJournal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LabelJournal({str(self.path)!r}, user={self.user!r})"


def _next_action(cur: sqlite3.Cursor) -> int:
    # inside BEGIN IMMEDIATE, so no other writer can take the same id
    return int(cur.execute("SELECT COALESCE(MAX(action_id), 0) + 1 FROM events").fetchone()[0])


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        return "unknown"


def _check_header(path: Path) -> None:
    """Refuse a file that is not SQLite before SQLite touches it (an empty file is fine)."""
    if path.is_dir():
        raise InputError(path, "is a folder", "a labels.sqlite file")
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb") as fh:
        head = fh.read(len(_SQLITE_MAGIC))
    if head != _SQLITE_MAGIC:
        raise InputError(path, "is not a label journal (not a SQLite file)",
                         "a napari-cellcurator labels.sqlite file")
