"""The label journal: events, current labels, undo, export, reopening, corruption, threads."""

from __future__ import annotations

import sqlite3
import threading

import pandas as pd
import pytest

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.store.journal import LabelEvent, LabelJournal, label_to_text


@pytest.fixture
def journal(tmp_path):
    with LabelJournal(tmp_path / "labels.sqlite", user="alice") as j:
        yield j


def _labels(j: LabelJournal, **kw) -> dict:
    df = j.current_labels(**kw)
    return dict(zip(df["item_id"], df["label"], strict=True))


def test_set_label_and_current(journal):
    e1 = journal.set_label("a", "neuron")
    e2 = journal.set_label("b", "glia")
    e3 = journal.set_label("a", "glia")
    assert e1 < e2 < e3
    assert journal.label_of("a") == "glia"
    assert journal.label_of("zzz") is None
    assert _labels(journal) == {"a": "glia", "b": "glia"}
    df = journal.current_labels()
    assert list(df.columns) == ["item_id", "label", "source", "model_version", "user",
                                "timestamp", "anchor"]
    assert set(df["user"]) == {"alice"} and set(df["source"]) == {"human"}
    assert df["timestamp"].str.endswith("+00:00").all()  # ISO-8601 UTC


def test_clearing_a_label_removes_it(journal):
    journal.set_label("a", "neuron")
    journal.set_label("a", None)
    assert journal.label_of("a") is None
    assert _labels(journal) == {}
    journal.undo()
    assert journal.label_of("a") == "neuron"


def test_proportions_stored_as_repr(journal):
    journal.set_label("m", 0.25)
    journal.set_labels(["n", "o"], [1.0, float("nan")])
    assert journal.label_of("m") == "0.25"
    assert float(journal.label_of("n")) == 1.0
    assert journal.label_of("o") is None
    assert label_to_text(0.1 + 0.2) == repr(0.1 + 0.2)  # exact round trip
    with pytest.raises(TypeError):
        label_to_text(True)
    import pandas as pd

    # pandas' missing values (a "string" column read back from Parquet) are no label
    assert label_to_text(pd.NA) is None and label_to_text(pd.NaT) is None
    with pytest.raises(TypeError, match="finite"):
        label_to_text(float("inf"))


def test_bulk_action_is_undone_as_one(journal):
    journal.set_label("a", "x")
    action = journal.set_labels(["a", "b", "c"], ["y", "y", "y"], source="cluster")
    assert [e.item_id for e in journal.events(action)] == ["a", "b", "c"]
    assert _labels(journal) == {"a": "y", "b": "y", "c": "y"}
    undone = journal.undo()
    assert [e.item_id for e in undone] == ["a", "b", "c"]
    assert all(isinstance(e, LabelEvent) and e.action_id == action for e in undone)
    assert _labels(journal) == {"a": "x"}
    assert [e.label for e in journal.undo()] == ["x"]
    assert _labels(journal) == {}
    assert journal.undo() == [] and not journal.can_undo()


def test_undo_is_an_event_and_skips_models_and_other_users(tmp_path):
    path = tmp_path / "labels.sqlite"
    with LabelJournal(path, user="alice") as alice, LabelJournal(path, user="bob") as bob:
        alice.set_label("a", "x")
        bob.set_label("a", "y")
        alice.set_label("b", "pred", source="model", model_version="v0001")
        n_before = len(alice)
        undone = alice.undo()  # alice's own last human action, not bob's nor the model's
        assert [(e.item_id, e.label, e.user) for e in undone] == [("a", "x", "alice")]
        assert len(alice) == n_before + 1  # append-only: undo added an event
        assert alice.label_of("a") == "y" and alice.label_of("b") == "pred"
        hist = alice.history("a")
        assert hist["undone"].tolist() == [True, False, False]
        assert hist["undoes"].iloc[-1] == hist["event_id"].iloc[0]
        assert [e.label for e in bob.undo()] == ["y"]
        assert alice.label_of("a") is None
        assert alice.undo() == []


def test_sources_filter(journal):
    journal.set_label("a", "human_label")
    journal.set_label("a", "model_label", source="model", model_version="v0002")
    journal.set_label("b", "model_only", source="model", model_version="v0002")
    assert _labels(journal) == {"a": "model_label", "b": "model_only"}
    assert _labels(journal, sources=["human"]) == {"a": "human_label"}
    assert _labels(journal, sources=[]) == {}
    df = journal.current_labels(sources=["model"])
    assert set(df["model_version"]) == {"v0002"}


def test_bad_source_and_lengths_rejected_without_writing(journal):
    with pytest.raises(ValueError):
        journal.set_label("a", "x", source="robot")
    with pytest.raises(ValueError):
        journal.set_labels(["a", "b"], ["x"])
    with pytest.raises(ValueError):  # the first event must be rolled back with the action
        journal.set_labels(["a", "b"], ["x", "y"], source="nope")
    assert len(journal) == 0


def test_reopen_after_close(tmp_path):
    path = tmp_path / "p" / "labels.sqlite"
    j = LabelJournal(path, user="alice")
    j.set_label("a", "x")
    j.set_labels(["b", "c"], ["y", "z"])
    j.close()
    j.close()  # twice is fine
    with pytest.raises(RuntimeError):
        j.set_label("d", "w")
    with LabelJournal(path, user="alice") as again:
        assert _labels(again) == {"a": "x", "b": "y", "c": "z"}
        assert [e.item_id for e in again.undo()] == ["b", "c"]  # undo survives reopening
        assert again.set_label("d", "w") > 3


def test_export_csv_and_parquet_round_trip(journal, tmp_path):
    journal.set_labels(["a", "b", "007"], ["x", "0.5", "y"])
    journal.set_label("a", None)
    for name in ("labels.csv", "labels.parquet"):
        out = journal.export(tmp_path / "out" / name)
        if name.endswith(".csv"):
            df = pd.read_csv(out, dtype=str, keep_default_na=False)
        else:
            df = pd.read_parquet(out)
        assert dict(zip(df["item_id"], df["label"], strict=True)) == {"b": "0.5", "007": "y"}
        assert list(df.columns)[:3] == ["item_id", "label", "source"]
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temps
    with pytest.raises(InputError, match="labels.txt"):
        journal.export(tmp_path / "labels.txt")


@pytest.mark.parametrize("content", [b"hello, this is not a database" * 10,
                                     b"SQLite format 3\x00" + b"\xff" * 200])
def test_not_a_journal_raises_input_error(tmp_path, content):
    path = tmp_path / "labels.sqlite"
    path.write_bytes(content)
    with pytest.raises(InputError, match="labels.sqlite"):
        LabelJournal(path)


def test_foreign_sqlite_database_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE events (x INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(InputError, match=r"other\.sqlite.*not a label journal"):
        LabelJournal(path)
    with pytest.raises(InputError, match="folder"):
        LabelJournal(tmp_path)


def test_empty_file_becomes_a_journal(tmp_path):
    path = tmp_path / "labels.sqlite"
    path.touch()
    with LabelJournal(path, user="u") as j:
        j.set_label("a", "x")
    with LabelJournal(path) as j:
        assert j.label_of("a") == "x"


def test_pragmas_wal_and_full_sync(journal):
    conn = journal._connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_default_user_is_login_name(tmp_path, monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "loginname")
    with LabelJournal(tmp_path / "l.sqlite") as j:
        j.set_label("a", "x")
        assert j.current_labels()["user"].tolist() == ["loginname"]


def test_writer_and_reader_threads(journal):
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                df = journal.current_labels()
                assert df["item_id"].is_unique
                journal.label_of("i0")
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(200):
            journal.set_label(f"i{i % 50}", f"c{i}")
    finally:
        stop.set()
        reader.join()
    assert not errors
    assert len(journal.current_labels()) == 50
    assert journal.label_of("i49") == "c199"


def test_current_labels_of_some_items_equals_the_whole_query(journal):
    journal.set_labels(["a", "b", "c", "d"], ["x", "y", "x", "y"], source="cluster")
    journal.set_label("b", "z")
    journal.set_label("c", None)  # cleared: not a current label
    journal.set_label("d", "w")
    journal.undo()  # d back to the cluster's y
    whole = journal.current_labels().set_index("item_id")
    some = journal.current_labels_of(["d", "c", "b", "nobody", "b"])
    # journal order (d is back at its cluster event), each once, cleared and unknown left out
    assert list(some["item_id"]) == ["d", "b"]
    pd.testing.assert_frame_equal(some.set_index("item_id"), whole.loc[["d", "b"]])
    assert list(journal.current_labels_of([]).columns) == list(whole.reset_index().columns)
