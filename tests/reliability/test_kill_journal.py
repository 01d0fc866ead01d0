"""kill -9 a process writing labels, 50 times: every acknowledged change must survive.

The writer prints one JSON line per change *after* the journal call returned (= committed).
The test SIGKILLs it at random moments (during start-up, opening, writing, printing) and
checks after every kill that the journal opens, passes SQLite's integrity check and holds
every acknowledged event, bulk action and undo.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from napari_cellcurator.core.store.journal import LabelJournal

N_KILLS = 50

WRITER = r'''
import json, random, sys
from napari_cellcurator.core.store.journal import LabelJournal

path, run = sys.argv[1], int(sys.argv[2])
rng = random.Random(run)
journal = LabelJournal(path, user="writer")
print(json.dumps({"open": run}), flush=True)
k = 0
while True:
    r = rng.random()
    if r < 0.1:
        items = [f"r{run}-k{k}-{m}" for m in range(3)]
        labels = [f"bulk{k}", None if k % 4 == 0 else f"b{k}", repr(0.1 * k)]
        action = journal.set_labels(items, labels, source="cluster")
        print(json.dumps({"action": action, "items": items, "labels": labels}), flush=True)
    elif r < 0.15:
        undone = journal.undo()
        print(json.dumps({"undone": [e.event_id for e in undone]}), flush=True)
    else:
        item, label = f"r{run}-k{k}", f"class{k % 7}"
        event = journal.set_label(item, label)
        print(json.dumps({"event": event, "item": item, "label": label}), flush=True)
    k += 1
'''


def _acks(stdout: str) -> list[dict]:
    # only complete lines count; a line is written by one write() call anyway
    lines = stdout.split("\n")[:-1]
    return [json.loads(line) for line in lines if line.strip()]


def _check(path, events: dict, actions: dict, undone: set) -> int:
    """Assert every acknowledged change is in the journal; return its number of label events."""
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    with LabelJournal(path, user="checker") as journal:
        hist = journal.history().set_index("event_id")
        for event_id, (item, label) in events.items():
            assert event_id in hist.index, f"acknowledged event {event_id} lost"
            row = hist.loc[event_id]
            assert (row["item_id"], row["label"]) == (item, label)
            expected = None if row["undone"] else label
            assert journal.label_of(item) == expected
        for action_id, pairs in actions.items():
            got = [(e.item_id, e.label) for e in journal.events(action_id)]
            assert got == pairs, f"acknowledged action {action_id} incomplete"
        assert undone <= set(hist.index[hist["undone"]]), "acknowledged undo lost"
        # structure: every undone event has exactly one undo event pointing at it
        pointers = hist["undoes"].dropna()
        assert pointers.is_unique
        assert set(pointers) == set(hist.index[hist["undone"]])
        return int(hist["undoes"].isna().sum())


@pytest.mark.timeout(120)
def test_kill_minus_nine_loses_no_acknowledged_label(tmp_path, record_property):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    path = tmp_path / "labels.sqlite"
    rng = random.Random(12345)
    events: dict[int, tuple[str, str]] = {}
    actions: dict[int, list[tuple[str, str | None]]] = {}
    undone: set[int] = set()
    kills = runs_with_acks = killed_before_open = n_events = 0
    start = time.monotonic()
    for run in range(N_KILLS):
        proc = subprocess.Popen([sys.executable, str(script), str(path), str(run)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=tmp_path)
        first = ""
        if run % 2:  # odd runs: let it open and acknowledge one change, then kill soon after
            first = proc.stdout.readline() + proc.stdout.readline()
            assert first.startswith('{"open"') and first.count("\n") == 2, proc.stderr.read()
            time.sleep(rng.uniform(0.0, 0.03))
        else:  # even runs: any moment from interpreter start-up to a few hundred writes
            time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        kills += 1
        assert proc.returncode == -signal.SIGKILL, err  # it died by our kill, not an error
        acks = _acks(first + out)
        killed_before_open += not any("open" in a for a in acks)
        changes = [a for a in acks if "open" not in a]
        runs_with_acks += bool(changes)
        for ack in changes:
            if "event" in ack:
                events[ack["event"]] = (ack["item"], ack["label"])
            elif "action" in ack:
                actions[ack["action"]] = list(zip(ack["items"], ack["labels"], strict=True))
            else:
                undone.update(ack["undone"])
        n_events = _check(path, events, actions, undone)
    elapsed = time.monotonic() - start
    n_acked = len(events) + sum(len(v) for v in actions.values())
    summary = (f"kills tried={kills}, runs with acknowledged changes={runs_with_acks}, "
               f"killed before the journal opened={killed_before_open}, acknowledged label "
               f"events={n_acked}, acknowledged undone events={len(undone)}, label events in "
               f"journal={n_events} (committed, killed before the ack: {n_events - n_acked}), "
               f"elapsed={elapsed:.1f}s")
    print(summary)
    record_property("kill_journal", summary)
    assert kills == N_KILLS
    assert runs_with_acks >= N_KILLS // 2  # the kills really hit a writing process
