"""The CLI contract: subcommands, --help, exit status 2 on bad input, evaluate --json."""

import json
import subprocess
import sys

import numpy as np
import pytest

from napari_cellcurator.cli import main

SUBCOMMANDS = ["train", "predict", "evaluate", "explain", "demo"]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "napari_cellcurator.cli", *args],
                          capture_output=True, text=True)


def test_help_lists_subcommands():
    out = run_cli("--help")
    assert out.returncode == 0
    for cmd in SUBCOMMANDS:
        assert cmd in out.stdout


@pytest.mark.parametrize("cmd", SUBCOMMANDS)
def test_every_subcommand_has_help(cmd):
    out = run_cli(cmd, "--help")
    assert out.returncode == 0 and "usage" in out.stdout


def test_missing_data_path_exits_2_naming_it(tmp_path, capsys):
    missing = tmp_path / "nope"
    code = main(["train", "--task", "celltype", "--data", str(missing),
                 "--out", str(tmp_path / "m")])
    assert code == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "does not exist" in err
    assert not (tmp_path / "m").exists()


def test_unknown_layout_exits_2(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    code = main(["train", "--task", "celltype", "--data", str(tmp_path),
                 "--out", str(tmp_path / "m")])
    assert code == 2
    assert "not a recognised" in capsys.readouterr().err


def test_missing_model_exits_2(tmp_path, capsys):
    code = main(["evaluate", "--model", str(tmp_path / "none"), "--data", str(tmp_path)])
    assert code == 2


def test_train_then_evaluate_json(jurkat_subset, tmp_path, capsys):
    model = tmp_path / "model"
    assert main(["train", "--task", "celltype", "--data", str(jurkat_subset), "--out", str(model),
                 "--arch", "seedcnn", "--channels", "0,2", "--epochs", "1"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--model", str(model), "--data", str(jurkat_subset), "--json"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    metrics = json.loads(last)
    for key in ("n", "accuracy", "macro_f1", "per_class", "confusion"):
        assert key in metrics
    assert main(["predict", "--model", str(model), "--data", str(jurkat_subset),
                 "--out", str(tmp_path / "p.csv")]) == 0
    assert (tmp_path / "p.csv").read_text().count("\n") == 37


def test_predict_on_a_raw_movie_reports_progress(tmp_path, capsys):
    """A raw recording: PCA/ICA candidates, scored by the shipped cellness model, with the
    reading's stages on stderr (a long recording would otherwise sit silent for minutes)."""
    import pandas as pd
    import tifffile

    from napari_cellcurator.core.data.simulate_calcium import simulate_recording

    movie = tmp_path / "recording.tif"
    tifffile.imwrite(movie, simulate_recording(2, shape=(48, 48), n_frames=120,
                                               n_cells=6).movie.astype("float32"))
    out = tmp_path / "scores.csv"
    assert main(["predict", "--task", "cellness", "--data", str(movie), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    for stage in ("mean frame", "PCA", "ICA", "traces", "neuropil"):
        assert f"reading: {stage}" in err
    assert "(100%)" in err
    assert len(pd.read_csv(out)) > 0


@pytest.mark.parametrize("args", [
    ["train", "--task", "celltype", "--data", "d", "--out", "m", "--epochs", "0"],
    ["train", "--task", "celltype", "--data", "d", "--out", "m", "--lr", "0"],
    ["train", "--task", "celltype", "--data", "d", "--out", "m", "--channels", ","],
    ["predict", "--data", "d", "--out", "p.csv", "--scheduler", "thread"],
    ["predict", "--data", "d", "--out", "p.csv", "--scheduler", "local:two"],
    ["cluster", "--data", "d", "--out", "c.csv", "--k", "0"],
])
def test_impossible_option_values_exit_2_before_any_work(args, capsys):
    """--epochs 0 trained the default 40 epochs, --epochs -1 saved an untrained model, a
    mistyped --scheduler gave a traceback."""
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_cluster_k_beyond_the_items_and_compare_on_mixture_say_why(tmp_path, capsys):
    from pathlib import Path

    samples = Path(__file__).resolve().parents[1] / "src" / "napari_cellcurator" / \
        "sample_data"
    assert main(["cluster", "--task", "cellness", "--data",
                 str(samples / "cellness_sim" / "plane0"), "--out", str(tmp_path / "c.csv"),
                 "--k", "500"]) == 2
    assert "--k 500 clusters of" in capsys.readouterr().err
    assert main(["compare", "--task", "mixture", "--data",
                 str(samples / "mixture" / "manifest.csv")]) == 2
    assert "predicts a proportion" in capsys.readouterr().err


def test_warnings_about_the_data_are_one_line():
    from napari_cellcurator.cli import _warning_format
    from napari_cellcurator.core.errors import InputWarning

    fmt = _warning_format("predict")
    assert fmt("3 points are outside", InputWarning, "/x/points.py", 12) == (
        "cellcurator predict: warning: 3 points are outside\n")
    # other warnings (a library's deprecation) keep Python's format, file and line
    assert "/x/lib.py:3: DeprecationWarning" in fmt("old", DeprecationWarning, "/x/lib.py", 3)


def test_a_movie_without_task_says_which_tasks_read_it(tmp_path, capsys):
    tifffile = pytest.importorskip("tifffile")
    movie = tmp_path / "rec.tif"
    tifffile.imwrite(movie, np.zeros((6, 16, 16), np.uint8))
    assert main(["predict", "--data", str(movie), "--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err
    assert "cellness" in err and "mixture" in err and "--task" in err


def test_train_out_in_an_unwritable_place_fails_before_training(tmp_path, capsys):
    (tmp_path / "file").write_text("x")  # a file where the model's folder should go
    tifffile = pytest.importorskip("tifffile")
    data = tmp_path / "d"
    for cls in ("A", "B"):
        (data / cls).mkdir(parents=True)
        for i in range(4):
            tifffile.imwrite(data / cls / f"{i}.tif", np.full((16, 16), 40 * i, np.uint8))
    code = main(["train", "--task", "celltype", "--data", str(data), "--epochs", "1",
                 "--out", str(tmp_path / "file" / "m")])
    err = capsys.readouterr().err
    assert code == 2 and "file" in err and "epoch" not in err


def test_the_warning_format_is_restored_after_a_command(tmp_path):
    import warnings

    before = warnings.formatwarning
    main(["labels", "--data", str(tmp_path / "missing"), "--project", str(tmp_path / "p"),
          "--history"])
    assert warnings.formatwarning is before


def test_a_warning_about_the_data_is_printed_once_per_run(capsys):
    """A command reads its data several times (train, then predict and explain): each
    reading warns from another caller, so Python's once-per-place filter prints the same
    line again; the CLI prints each warning about the data once, others as Python does."""
    import warnings

    from napari_cellcurator.cli import _once_per_text
    from napari_cellcurator.core.errors import InputWarning

    lines = []
    show = _once_per_text(lambda message, *args: lines.append(str(message)))
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        for _ in range(3):
            warnings.warn("data.tif: 3 cells cut by the border", InputWarning, stacklevel=1)
            warnings.warn("a library's deprecation", DeprecationWarning, stacklevel=1)
        warnings.warn("data.tif: another problem", InputWarning, stacklevel=1)
    assert lines == ["data.tif: 3 cells cut by the border", "a library's deprecation",
                     "a library's deprecation", "a library's deprecation",
                     "data.tif: another problem"]
