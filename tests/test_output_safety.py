"""Outputs never destroy what the user had, and failed writes are one clear line.

* ``--out`` naming the input (or a folder that is not an earlier output) is refused before any
  work, so a ``.zarr`` output can no longer delete a data folder or an unrelated zarr store;
* a model folder whose ``config.json`` does not describe its network is refused on load;
* saving a model over an earlier one swaps the folder whole: a failure keeps the old model;
* unwritable destinations and a read-only label journal exit 2 with one line, no traceback.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import torch

from napari_cellcurator.cli import main
from napari_cellcurator.core.batch import predict_to_file
from napari_cellcurator.core.errors import InputError, ModelFileError
from napari_cellcurator.core.explain.api import explain_item
from napari_cellcurator.core.models.registry import build_model
from napari_cellcurator.core.store import modelio
from napari_cellcurator.core.store.modelio import ModelConfig, load_model, save_model
from napari_cellcurator.core.tasks import ReadOptions, get_task

torch.set_num_threads(1)
SIZE = 16
ITEM = "B/B_1.tif"


def _class_folders(root: Path) -> Path:
    """Two classes of three 2-channel 16 px crops."""
    rng = np.random.default_rng(0)
    for cls in ("A", "B"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            img = (rng.random((2, SIZE, SIZE)) * 1000).astype(np.uint16)
            tifffile.imwrite(root / cls / f"{cls}_{i}.tif", img, photometric="minisblack")
    return root


def _save_untrained(folder: Path, data: Path, seed: int = 0, **config) -> Path:
    """An untrained seedcnn model folder for ``data`` (fast: no training)."""
    task = get_task("celltype")
    items = task.read(data, ReadOptions())
    prep = task.fit_preprocessing(items, ReadOptions())
    classes = config.pop("classes", task.classes_from(items))
    spec = config.pop("model_spec", task.model_spec(prep, classes))
    torch.manual_seed(seed)
    model = build_model("seedcnn", **spec)
    return save_model(folder, model, ModelConfig(task="celltype", arch="seedcnn",
                                                 model_spec=spec, classes=classes,
                                                 preprocessing=prep, **config))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return _class_folders(tmp_path_factory.mktemp("data") / "cells")


@pytest.fixture(scope="module")
def model(data, tmp_path_factory) -> Path:
    return _save_untrained(tmp_path_factory.mktemp("m") / "model", data)


def _cli_error(args: list[str], capsys, *words: str) -> str:
    """Run the CLI in-process: exit 2, one line on stderr, no traceback, nothing reported
    done on stdout."""
    capsys.readouterr()
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 2, f"exit {code}; stderr: {err}"
    assert out == "", out
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if not line.startswith(("reading:", "model:"))]
    assert len(lines) == 1 and "error:" in lines[0], err
    err = lines[0]
    for w in words:
        assert w.lower() in err.lower(), f"{w!r} not in: {err}"
    return err


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _predict(model: Path, data: Path, out: Path) -> list[str]:
    return ["predict", "--model", str(model), "--data", str(data), "--out", str(out),
            "--device", "cpu"]


# ---- 1. --out never destroys the input or a foreign folder -------------------------------
def test_predict_out_naming_the_input_zarr_folder_keeps_it(model, tmp_path, capsys):
    movie = _class_folders(tmp_path / "crops.zarr")  # data read from a folder named *.zarr
    before = _tree(movie)
    _cli_error(_predict(model, movie, movie), capsys, "crops.zarr", "input")
    assert _tree(movie) == before


def _crop_table(data: Path, table: Path) -> Path:
    """A crop table (file, label) listing the images of ``data`` by absolute path."""
    table.parent.mkdir(parents=True, exist_ok=True)
    rows = [f"{f},{f.parent.name}" for f in sorted(data.rglob("*.tif"))]
    table.write_text("file,label\n" + "\n".join(rows) + "\n")
    return table


def test_predict_out_naming_the_input_table_keeps_it(model, data, tmp_path, capsys):
    table = _crop_table(data, tmp_path / "cells.csv")
    before = table.read_bytes()
    _cli_error(_predict(model, table, table), capsys, "cells.csv", "input")
    assert table.read_bytes() == before


def test_predict_out_inside_the_input_folder_never_overwrites_what_was_read(
        model, tmp_path, capsys):
    # a new file beside the data is what people do (--data plane0 --out plane0/p.csv)...
    cells = _class_folders(tmp_path / "cells")
    assert main(_predict(model, cells, cells / "p.csv")) == 0
    assert len(pd.read_csv(cells / "p.csv")) == 6
    assert main(_predict(model, cells, cells / "p.csv")) == 0  # and again, over its own
    # ...but an existing file of the data there (a label table) must not be overwritten
    (cells / "labels.csv").write_text("file,label\nA/A_0.tif,A\n")
    before = _tree(cells)
    _cli_error(_predict(model, cells, cells / "labels.csv"), capsys, "labels.csv",
               "file of the input data")
    assert _tree(cells) == before


def test_predict_does_not_replace_a_foreign_zarr_store(model, data, tmp_path, capsys):
    import zarr

    store = tmp_path / "analysis.zarr"
    zarr.open_group(str(store), mode="w").create_array("dff", shape=(4, 4), dtype="f4")[:] = 1
    before = _tree(store)
    _cli_error(_predict(model, data, store), capsys, "analysis.zarr", "not a prediction")
    assert _tree(store) == before


def test_predict_replaces_its_own_zarr_and_an_empty_folder(model, data, tmp_path):
    import zarr

    out = tmp_path / "p.zarr"
    out.mkdir()  # an empty folder holds nothing to lose
    predict_to_file(str(model), str(data), str(out), device="cpu")
    predict_to_file(str(model), str(data), str(out), device="cpu")  # its own output
    assert zarr.open_group(str(out), mode="r")["scores"].shape == (6, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.zarr"]


def test_explain_does_not_replace_a_foreign_zarr_or_the_input(model, data, tmp_path):
    store = tmp_path / "analysis.zarr"
    store.mkdir()
    (store / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not an explanation"):
        explain_item(model, str(data), ITEM, "gradcam", out=store)
    assert (store / "notes.txt").read_text() == "mine"
    image = data / ITEM
    before = image.read_bytes()
    with pytest.raises(InputError, match="input"):
        explain_item(model, str(data), ITEM, "gradcam", out=image)
    table = _crop_table(data, tmp_path / "tables" / "cells.csv")  # lists the images
    with pytest.raises(InputError, match="input"):
        explain_item(model, str(table), str(image), "gradcam", out=image)
    assert image.read_bytes() == before


def test_explain_replaces_its_own_zarr(model, data, tmp_path):
    out = tmp_path / "map.zarr"
    explain_item(model, str(data), ITEM, "gradcam", out=out)
    explain_item(model, str(data), ITEM, "occlusion", out=out)
    meta = json.loads((out / "zarr.json").read_text())
    assert meta["attributes"]["method"] == "occlusion"


def test_train_out_naming_a_data_folder_is_refused(tmp_path, capsys):
    cells, other = _class_folders(tmp_path / "cells"), _class_folders(tmp_path / "other")
    before = _tree(tmp_path)
    train = ["train", "--task", "celltype", "--data", str(cells), "--arch", "seedcnn",
             "--epochs", "1", "--device", "cpu", "--out"]
    _cli_error([*train, str(cells)], capsys, "cells", "input")
    _cli_error([*train, str(other)], capsys, "other", "not a model folder")
    assert _tree(tmp_path) == before


# ---- 2. a config.json that does not fit its weights is refused on load ------------------
def _edit_config(model: Path, dst: Path, edit) -> Path:
    shutil.copytree(model, dst)
    config = json.loads((dst / "config.json").read_text())
    edit(config)
    (dst / "config.json").write_text(json.dumps(config))
    return dst


BAD_CONFIGS = {
    "fewer classes than outputs": (lambda c: c.update(classes=c["classes"][:1]), "outputs"),
    "duplicate classes": (lambda c: c.update(classes=["A", "A"]), "not unique"),
    "no classes": (lambda c: c.update(classes=[]), "0 class names"),
    "zero std": (lambda c: c["preprocessing"].update(channel_std=[0.0, 1.0]), "above 0"),
    "NaN mean": (lambda c: c["preprocessing"].update(channel_mean=[float("nan"), 0.0]),
                 "not finite"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_inconsistent_model_config_is_refused(case, model, data, tmp_path, capsys):
    edit, words = BAD_CONFIGS[case]
    bad = _edit_config(model, tmp_path / "bad_model", edit)
    with pytest.raises(ModelFileError, match=words) as info:
        load_model(bad)
    assert str(bad) in str(info.value)
    out = tmp_path / "p.csv"
    _cli_error(_predict(bad, data, out), capsys, str(bad), words)
    assert not out.exists()


def test_a_pretrained_encoder_loads_but_does_not_predict(data, tmp_path):
    spec = {"in_channels": 2, "n_outputs": 32, "input_size": SIZE, "stem_stride": 1}
    encoder = _save_untrained(tmp_path / "encoder", data, classes=[], model_spec=spec,
                              metrics={"pretraining": "simclr"})
    load_model(encoder)  # what `train --init` does with it
    with pytest.raises(ModelFileError, match="cannot predict"):
        predict_to_file(str(encoder), str(data), str(tmp_path / "p.csv"), device="cpu")


# ---- 3. saving over a model swaps the folder whole ----------------------------------------
def test_a_failed_save_over_a_model_keeps_the_old_one(model, data, tmp_path, monkeypatch):
    folder = tmp_path / "model"
    shutil.copytree(model, folder)
    before = _tree(folder)

    def disk_full(*_):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(modelio, "atomic_write_text", disk_full)  # after the weights
    with pytest.raises(OSError, match="No space"):
        _save_untrained(folder, data, seed=1)
    assert _tree(folder) == before
    load_model(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temp left


def test_saving_over_a_model_replaces_it_whole(model, data, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(model, folder)
    (folder / "model.pt").write_bytes(b"an older state dict")  # replaced with the model
    (folder / "notes.txt").write_text("trained on plate 3")  # the user's: kept
    _save_untrained(folder, data, seed=1)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "notes.txt",
                                                        "weights.safetensors"]
    assert (folder / "notes.txt").read_text() == "trained on plate 3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


# ---- 4. unwritable destinations: one line naming the file --------------------------------
def test_out_below_a_regular_file_is_one_line(model, data, tmp_path, capsys):
    blocker = tmp_path / "results"
    blocker.write_text("a file, not a folder")
    _cli_error(_predict(model, data, blocker / "p.csv"), capsys, str(blocker),
               "is a file, not a folder")


def test_permission_denied_names_the_output_not_its_temp_file(model, data, tmp_path,
                                                              monkeypatch, capsys):
    def denied(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", src, None, dst)

    monkeypatch.setattr(os, "replace", denied)
    out = tmp_path / "p.csv"
    err = _cli_error(_predict(model, data, out), capsys, f"{out}: permission denied")
    assert ".tmp" not in err and not out.exists()


def test_export_onto_an_existing_folder_is_one_line(data, tmp_path, capsys):
    folder = tmp_path / "dir.csv"
    folder.mkdir()
    _cli_error(["labels", "--data", str(data), "--project", str(tmp_path / "proj"),
                "--export", str(folder)], capsys, "dir.csv", "is a folder")


def test_write_back_backup_permission_error_is_one_line(tmp_path, monkeypatch, capsys):
    from napari_cellcurator.core.io import writeback

    plane = tmp_path / "plane0"
    shutil.copytree(Path(__file__).resolve().parents[1] / "sample_data" / "cellness_sim"
                    / "plane0", plane)
    before = _tree(plane)

    def denied(src, dst, **_):
        raise PermissionError(errno.EACCES, "Permission denied", str(dst))

    monkeypatch.setattr(writeback.shutil, "copy2", denied)
    _cli_error(["export", "--data", str(plane), "--project", str(tmp_path / "proj"),
                "--write-back"], capsys, "iscell", "permission denied")
    assert _tree(plane) == before


def test_an_os_error_without_a_file_keeps_its_traceback(monkeypatch):
    from napari_cellcurator import cli

    def bug(_):
        raise OSError("not about a user file")

    monkeypatch.setitem(cli.COMMANDS, "predict", bug)
    with pytest.raises(OSError, match="not about a user file"):
        main(["predict", "--model", "m", "--data", "d", "--out", "o.csv"])


# ---- 5. a read-only label journal --------------------------------------------------------
def _read_only_connect(monkeypatch):
    """Open every journal read-only, as SQLite does for a file without write permission
    (root ignores chmod, so the tests cannot rely on it)."""
    from napari_cellcurator.core.store import journal

    real = sqlite3.connect

    def connect(path, **kw):
        return real(f"file:{path}?mode=ro", uri=True, **kw)

    monkeypatch.setattr(journal.sqlite3, "connect", connect)


@pytest.mark.parametrize("action", [["--set", "A/A_1.tif", "B"], ["--undo"]])
def test_read_only_journal_is_one_line_and_saves_nothing(action, data, tmp_path,
                                                         monkeypatch, capsys):
    project = ["--data", str(data), "--project", str(tmp_path / "proj")]
    assert main(["labels", *project, "--set", "A/A_0.tif", "B"]) == 0
    journal_file = tmp_path / "proj" / "labels.sqlite"
    assert journal_file.is_file()
    _read_only_connect(monkeypatch)
    capsys.readouterr()
    err = _cli_error(["labels", *project, *action], capsys, str(journal_file), "read")
    assert "nothing was saved" in err
    monkeypatch.undo()
    from napari_cellcurator.core.store.journal import LabelJournal

    with LabelJournal(journal_file) as journal:
        assert len(journal) == 1 and journal.label_of("A/A_0.tif") == "B"


def test_curation_outputs_never_replace_the_input_table(model, data, tmp_path, capsys):
    table = _crop_table(data, tmp_path / "cells.csv")
    before = table.read_bytes()
    for command in (["export", "--out"], ["labels", "--export"]):
        _cli_error([command[0], "--data", str(table), "--project", str(tmp_path / "p"),
                    command[1], str(table)], capsys, "cells.csv", "input")
    assert table.read_bytes() == before


def test_review_and_export_read_a_zarr_of_predictions(model, data, tmp_path):
    out = tmp_path / "p.zarr"
    predict_to_file(str(model), str(data), str(out), device="cpu")
    assert main(["review", "--data", str(data), "--project", str(tmp_path / "p"),
                 "--predictions", str(out), "--out", str(tmp_path / "r.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "r.csv")) == 6


def test_a_crash_between_the_two_renames_of_a_swap_loses_no_model(model, tmp_path):
    # kill -9 right after the old model moved aside: the next load puts it back
    import subprocess
    import sys

    target = tmp_path / "model"
    shutil.copytree(model, target)
    child = (
        "import os, sys\n"
        "from napari_cellcurator.core.store import modelio\n"
        "real = os.replace\n"
        "def replace(a, b):\n"
        "    real(a, b)\n"
        "    if '.old-' in os.path.basename(str(b)):\n"
        "        os._exit(9)\n"
        "os.replace = replace\n"
        "m, cfg = modelio.load_model(sys.argv[1])\n"
        "modelio.save_model(sys.argv[1], m, cfg)\n")
    done = subprocess.run([sys.executable, "-c", child, str(target)], capture_output=True)
    assert done.returncode == 9 and not target.exists()
    loaded, config = load_model(target)
    assert config.classes and (target / "config.json").is_file()


def test_a_failed_second_rename_puts_the_old_folder_back(tmp_path, monkeypatch):
    from napari_cellcurator.core.store import atomic

    old, new = tmp_path / "out", tmp_path / "new"
    old.mkdir()
    (old / "keep.txt").write_text("old")
    new.mkdir()
    real = os.replace

    def failing(a, b):
        if Path(a) == new:
            raise OSError(28, "No space left on device", str(b))
        real(a, b)

    monkeypatch.setattr(atomic.os, "replace", failing)
    with pytest.raises(OSError):
        atomic.replace_dir(new, old)
    assert (old / "keep.txt").read_text() == "old"


def test_a_model_saved_to_the_current_folder(model, tmp_path, monkeypatch):
    target = tmp_path / "model"
    shutil.copytree(model, target)
    monkeypatch.chdir(target)
    loaded, config = load_model(".")
    save_model(".", loaded, config)  # retraining in place: `train --out .`
    assert sorted(p.name for p in target.iterdir() if not p.name.startswith(".")) == sorted(
        p.name for p in model.iterdir())


def test_explain_writes_a_new_file_inside_the_data_folder(model, data, tmp_path):
    # `explain --data rec --out rec/maps/roi3.npy` worked before the output checks: keep it
    out = data / "maps" / "a.npy"
    try:
        explain_item(model, str(data), ITEM, "gradcam", out=out)
        assert np.load(out).ndim >= 2
    finally:
        shutil.rmtree(data / "maps", ignore_errors=True)
