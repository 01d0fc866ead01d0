"""kill -9 a process saving model versions and rewriting a file, 20 times.

After every kill: the registry's current model loads (with the weights its config describes),
every version folder is complete, and the rewritten file holds one whole content (never a
mix or a truncation), at least as new as the last acknowledged write.

Importing torch takes seconds, so a "zygote" subprocess imports it once and forks one writer
child per round; the test SIGKILLs the child (a whole process, like a crash).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from napari_cellcurator.core.store.registry import ModelRegistry

N_KILLS = 20
PAYLOAD = 200_000  # repetitions of an 8-char block: ~1.6 MB per file write

ZYGOTE = r'''
import json, os, sys
import torch
torch.set_num_threads(1)
from napari_cellcurator.core.models import build_model
from napari_cellcurator.core.store.atomic import atomic_write_text
from napari_cellcurator.core.store.modelio import ModelConfig
from napari_cellcurator.core.store.registry import ModelRegistry

folder, target, payload = sys.argv[1], sys.argv[2], int(sys.argv[3])
SPEC = {"in_channels": 1, "n_outputs": 2, "input_size": 16}
build_model("seedcnn", **SPEC)  # import the model families before forking


def content(n):
    return f"{n}\n" + f"{n % 10**8:08d}" * payload + "\nEND\n"


def say(msg):
    # one write of the whole line: a kill between print's text and its newline would glue
    # this ack to the zygote's next line
    os.write(1, (json.dumps(msg) + "\n").encode())


def writer(run):
    registry = ModelRegistry(folder)
    torch.manual_seed(run)
    model = build_model("seedcnn", **SPEC)
    i = 0
    while True:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.001)
        checksum = float(sum(p.double().sum() for p in model.state_dict().values()))
        config = ModelConfig(task="celltype", arch="seedcnn", model_spec=dict(SPEC),
                             classes=["a", "b"], preprocessing={"read_options": {}},
                             metrics={"checksum": checksum, "run": run, "i": i})
        name = registry.add(model, config)
        say({"version": name})
        n = run * 100000 + i
        atomic_write_text(target, content(n))
        say({"file": n})
        i += 1


print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    run = int(line)
    pid = os.fork()
    if pid == 0:
        try:
            writer(run)
        finally:
            os._exit(1)
    print(json.dumps({"child": pid}), flush=True)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"done": pid, "signal": os.WTERMSIG(status)
                      if os.WIFSIGNALED(status) else None}), flush=True)
'''


def _content(n: int) -> str:
    return f"{n}\n" + f"{n % 10**8:08d}" * PAYLOAD + "\nEND\n"


def _read_until(proc: subprocess.Popen, key: str) -> tuple[dict, list[dict]]:
    """Lines up to the first one holding ``key``; returns it and the lines before it."""
    before = []
    while True:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"zygote ended: {proc.stderr.read()}")
        msg = json.loads(line)
        if key in msg:
            return msg, before
        before.append(msg)


def _checksum(model) -> float:
    return float(sum(p.double().sum() for p in model.state_dict().values()))


@pytest.mark.timeout(180)
def test_kill_minus_nine_never_leaves_partial_models_or_files(tmp_path, record_property):
    script = tmp_path / "zygote.py"
    script.write_text(ZYGOTE)
    folder, target = tmp_path / "models", tmp_path / "state.txt"
    target.write_text(_content(-1))  # the "old" content before any write
    proc = subprocess.Popen(
        [sys.executable, str(script), str(folder), str(target), str(PAYLOAD)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=tmp_path)
    rng = random.Random(2024)
    last_version, last_file = None, -1
    checked: set[str] = set()
    kills = versions_acked = files_acked = 0
    mid_save = mid_file = 0
    start = time.monotonic()
    try:
        _read_until(proc, "ready")
        for run in range(N_KILLS):
            temps_before = _temps(tmp_path, folder)
            proc.stdin.write(f"{run}\n")
            proc.stdin.flush()
            child = _read_until(proc, "child")[0]["child"]
            time.sleep(rng.uniform(0.0, 0.4))
            os.kill(child, signal.SIGKILL)  # the zygote lives on; only the writer dies
            kills += 1
            done, acks = _read_until(proc, "done")
            assert done["signal"] == signal.SIGKILL, proc.stderr.read()  # not a crash of its own
            for ack in acks:
                if "version" in ack:
                    last_version, versions_acked = ack["version"], versions_acked + 1
                else:
                    last_file, files_acked = ack["file"], files_acked + 1
            new_temps = _temps(tmp_path, folder) - temps_before
            mid_save += any(p.parent == folder for p in new_temps)
            mid_file += any(p.parent == tmp_path for p in new_temps)
            _check_registry(folder, last_version, checked)
            _check_file(target, last_file)
    finally:
        proc.stdin.close()
        proc.kill()
        proc.wait(timeout=30)
    elapsed = time.monotonic() - start
    summary = (f"kills tried={kills}, versions acknowledged={versions_acked}, versions on disk="
               f"{len(checked)}, file writes acknowledged={files_acked}, kills that left a "
               f"half-written version temp folder={mid_save}, kills that left a half-written "
               f"file temp={mid_file}, elapsed={elapsed:.1f}s")
    print(summary)
    record_property("atomic_writes", summary)
    assert kills == N_KILLS
    assert versions_acked > N_KILLS and files_acked > N_KILLS  # the writers really worked


def _temps(tmp_path, folder) -> set:
    return set(folder.glob(".tmp-*")) | set(tmp_path.glob(".state.txt.*.tmp"))


def _check_registry(folder, last_version: str | None, checked: set[str]) -> None:
    registry = ModelRegistry(folder)
    current = registry.current()
    if last_version is not None:  # the acknowledged version was made current before the ack
        assert current is not None and int(current[1:]) >= int(last_version[1:])
    if current is not None:
        model, config = registry.load()
        assert _checksum(model) == pytest.approx(config.metrics["checksum"], rel=1e-9)
    for name in registry.names():  # every version folder is whole (never half a save)
        if name not in checked:
            model, config = registry.load(name)
            assert _checksum(model) == pytest.approx(config.metrics["checksum"], rel=1e-9)
            checked.add(name)


def _check_file(target, last_file: int) -> None:
    text = target.read_text()
    head = text.split("\n", 1)[0]
    assert head.lstrip("-").isdigit(), f"partial file content (starts {text[:20]!r})"
    n = int(head)
    assert text == _content(n), "partial or mixed file content"
    assert n >= last_file, f"file went back to {n} after write {last_file} was acknowledged"
