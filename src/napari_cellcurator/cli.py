"""``cellcurator``: every GUI action as a command.

Errors the package raises on purpose (bad input, unsafe model files) and failed reads or writes
of a named file (permission denied, disk full) print one line on stderr and exit with status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from napari_cellcurator._cli_args import (
    MODEL_HELP,
    ReadProgress,
    channels_arg,
    model_dir_arg,
    positive,
    read_option_arg,
    scheduler_arg,
    task_name,
)
from napari_cellcurator._cli_curation import (
    _cmd_export,
    _cmd_labels,
    _cmd_review,
    _read_predictions,  # noqa: F401  (part of this module's interface for tests)
    add_model_decides_arg,
)
from napari_cellcurator._cli_propose import add_propose_parser, cmd_propose

TASKS = ("mixture", "celltype", "cellness")


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                   help="auto picks cuda, then mps, then cpu")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16/fp16 mixed precision where the hardware has it (default: on "
                        "for training on CPUs with native bf16, where it was measured faster; "
                        "off on CUDA and for predictions)")


def _add_curation_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, metavar="PATH", help="the data set being curated")
    p.add_argument("--project", metavar="DIR",
                   help="project folder (default: <data>.cellcurator next to the data)")
    p.add_argument("--task", choices=TASKS, help="default: detected from the data")
    p.add_argument("--user", help="recorded with labels (default: the login name)")
    p.add_argument("--model", metavar="MODEL_DIR", type=model_dir_arg,
                   help="read the data as this model reads them: the model that made "
                        "--predictions, where it reads them otherwise than the defaults "
                        "(mixture tiles of another size, another crop or channels)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cellcurator",
        description="Curate cells with CNNs: mixture proportion, cell type, cell/not-cell.",
    )
    from napari_cellcurator import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a model on labelled data",
                       description="Train a model; defaults are tuned per task.")
    p.add_argument("--task", choices=TASKS, help="default: detected from the first --data")
    p.add_argument("--data", required=True, action="append", metavar="PATH",
                   help="data path (format detected from the path); repeatable")
    p.add_argument("--out", required=True, metavar="MODEL_DIR")
    p.add_argument("--arch", help="architecture name (default: the task's best)")
    p.add_argument("--channels", type=channels_arg, help="channel indices to use, e.g. 0,2")
    p.add_argument("--epochs", type=positive(int))
    p.add_argument("--batch-size", type=positive(int))
    p.add_argument("--lr", type=positive(float))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", metavar="MODEL_DIR",
                   help="start from this model's weights ('none' disables a task's default init)")
    p.add_argument("--read-option", dest="read_options", type=read_option_arg,
                   action="append", metavar="KEY=VALUE",
                   help="how the data are read, kept in the model for prediction; repeatable "
                        "(e.g. qc=false keeps cells the quality filter would drop)")
    _add_device(p)

    p = sub.add_parser("predict", help="predict every item of a data path",
                       description="Write one row per item: prediction, probability, uncertainty.")
    p.add_argument("--model", metavar="MODEL_DIR", type=model_dir_arg,
                   help=MODEL_HELP)
    p.add_argument("--data", required=True, metavar="PATH")
    _add_model_task(p)
    p.add_argument("--out", required=True, metavar="FILE",
                   help=".csv or .parquet, or .zarr (scores array + the table as Parquet)")
    p.add_argument("--scheduler", default="threads", type=scheduler_arg,
                   help="threads (default), processes, local:N or a dask.distributed address")
    _add_device(p)

    p = sub.add_parser("evaluate", help="metrics of a model on labelled data")
    p.add_argument("--model", metavar="MODEL_DIR", type=model_dir_arg,
                   help=MODEL_HELP)
    p.add_argument("--data", required=True, metavar="PATH")
    _add_model_task(p)
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.add_argument("--plot", metavar="FILE.png",
                   help="confusion matrix, or error versus true proportion for mixture")
    _add_device(p)

    p = sub.add_parser("explain", help="occlusion / Grad-CAM / activations of one item")
    p.add_argument("--model", metavar="MODEL_DIR", type=model_dir_arg,
                   help=MODEL_HELP)
    p.add_argument("--data", required=True, metavar="PATH")
    _add_model_task(p)
    p.add_argument("--item", required=True, metavar="ID")
    p.add_argument("--method", required=True, choices=["occlusion", "gradcam", "activations"])
    p.add_argument("--out", required=True, metavar="FILE", help=".npy, .tif or .zarr")
    p.add_argument("--target", help="class to explain (default: the predicted one)")
    p.add_argument("--layer", help="conv layer name (gradcam / activations)")
    p.add_argument("--patch", type=int, help="occlusion patch size in pixels")
    p.add_argument("--stride", type=int, help="occlusion stride in pixels")

    p = sub.add_parser("compare", help="CNN vs kNN/SVM baselines and the data-volume curve")
    p.add_argument("--task", choices=TASKS, help="default: detected from the data")
    p.add_argument("--data", required=True, action="append", metavar="PATH")
    p.add_argument("--channels", type=channels_arg)
    p.add_argument("--epochs", type=positive(int))
    p.add_argument("--out", metavar="DIR", help="folder for the plot and JSON")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("cluster", help="cluster unlabelled items on autoencoder features",
                       description="Cold start: autoencoder features → clusters → CSV "
                                   "(item_id, cluster, x, y).")
    p.add_argument("--data", required=True, metavar="PATH")
    p.add_argument("--out", required=True, metavar="FILE.csv")
    p.add_argument("--task", choices=TASKS, help="default: detected from the data")
    p.add_argument("--k", type=positive(int),
                   help="number of clusters (default: chosen by silhouette)")
    p.add_argument("--channels", type=channels_arg)
    p.add_argument("--model", metavar="MODEL_DIR", help="reuse a trained autoencoder")
    p.add_argument("--method", default="kmeans", choices=["kmeans", "hdbscan"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")

    p = sub.add_parser("pretrain", help="self-supervised pretraining of a classifier's encoder",
                       description="Pretrain without labels; then `train --init MODEL_DIR`.")
    p.add_argument("--task", choices=TASKS, help="default: detected from the data")
    p.add_argument("--data", required=True, action="append", metavar="PATH")
    p.add_argument("--out", required=True, metavar="MODEL_DIR")
    p.add_argument("--channels", type=channels_arg)
    p.add_argument("--epochs", type=positive(int))

    p = sub.add_parser("labels", help="the label journal of a data set: export, set, undo, "
                       "history")
    _add_curation_data(p)
    act = p.add_mutually_exclusive_group(required=True)
    act.add_argument("--export", metavar="FILE", help="current labels to .csv / .parquet")
    act.add_argument("--set", nargs=2, metavar=("ITEM", "LABEL"), help="label one item")
    p.add_argument("--new-class", action="store_true",
                   help="with --set: a label that is not yet a class starts a new class")
    act.add_argument("--undo", action="store_true", help="undo the last label action")
    act.add_argument("--history", nargs="?", const="", metavar="ITEM",
                     help="every label event (of one item), oldest first")

    p = sub.add_parser("review", help="items in the order to review them (most uncertain, "
                       "rare classes first)")
    _add_curation_data(p)
    p.add_argument("--predictions", required=True, metavar="FILE",
                   help="a `cellcurator predict` output (.csv / .parquet / .zarr)")
    from napari_cellcurator.core.triage import MODES

    p.add_argument("--order", default="balanced", choices=MODES)
    p.add_argument("--top", type=int, help="only the first N items")
    p.add_argument("--include-labelled", action="store_true",
                   help="keep items a person already labelled (at the end)")
    p.add_argument("--out", metavar="FILE", help=".csv / .parquet (default: print)")

    p = sub.add_parser("export", help="the curated result (your labels over the model's "
                       "predictions) to CSV/Parquet or back into Suite2p / CaImAn files",
                       description="One decision per item: your label; else a label from "
                       "the files (an expert's, or Suite2p's / CaImAn's own classifier's); "
                       "else the model's prediction. With --model-decides the model's "
                       "prediction replaces the pipeline's own label of the items nobody "
                       "curated.")
    _add_curation_data(p)
    p.add_argument("--predictions", metavar="FILE", help="a `cellcurator predict` output")
    add_model_decides_arg(p)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", metavar="FILE", help=".csv / .parquet")
    where.add_argument("--write-back", action="store_true",
                       help="update iscell.npy / idx_components (originals backed up)")

    add_propose_parser(sub)

    p = sub.add_parser("demo", help="train, predict and explain on the bundled sample data")
    p.add_argument("--out", default="demo_out", metavar="DIR")
    p.add_argument("--no-viewer", action="store_true", help="skip the napari screenshots")
    p.add_argument("--epochs", type=positive(int), help="override the demo's short training")
    return parser


def _progress_printer(desc: str):
    """A callback drawing tqdm bars for the typed training updates."""
    from tqdm import tqdm

    from napari_cellcurator.core.training import EpochDone, EpochStarted, StepDone

    state: dict = {}

    def on_update(u) -> None:
        if isinstance(u, EpochStarted):
            state["bar"] = tqdm(total=None, desc=f"{desc} epoch {u.epoch}/{u.epochs}",
                                leave=False, file=sys.stderr)
        elif isinstance(u, StepDone) and "bar" in state:
            bar = state["bar"]
            bar.total = u.steps
            bar.update(1)
            bar.set_postfix(loss=f"{u.loss:.3f}")
        elif isinstance(u, EpochDone):
            state.pop("bar").close() if "bar" in state else None
            shown = {k: round(v, 3) for k, v in u.val_metrics.items()
                     if k in ("accuracy", "macro_f1", "f1", "A", "bce")}
            print(f"epoch {u.epoch}/{u.epochs} loss {u.train_loss:.4f} val {shown} "
                  f"({u.seconds:.0f}s){' *' if u.is_best else ''}", file=sys.stderr)

    return on_update


def _cmd_train(a) -> int:
    from napari_cellcurator.core.pipeline import TrainRequest, train

    task = task_name(a.task, a.data)
    _check_model_out(a.out, a.data)
    req = TrainRequest(task=task, data=a.data, out=a.out, arch=a.arch, channels=a.channels,
                       epochs=a.epochs, seed=a.seed, device=a.device, init=a.init,
                       batch_size=a.batch_size, lr=a.lr, amp=a.amp,
                       read_extra=dict(a.read_options or []))
    saved = train(req, _progress_printer(task))
    val = saved.config.metrics.get("validation", {})
    shown = {k: val[k] for k in ("accuracy", "macro_f1", "f1", "A", "bce") if k in val}
    print(f"saved {saved.config.arch} model to {saved.model_dir}; validation "
          f"{shown or 'none (no validation items: a small or one-sided split)'}")
    return 0


def _check_model_out(out: str, data: list[str]) -> None:
    """Refuse a model ``--out`` that would destroy data, before hours of training: the input
    itself or a folder holding it, or a folder that is not a model folder (saving replaces
    the folder whole; a new model folder inside a data folder destroys nothing)."""
    from napari_cellcurator.core.batch import data_paths
    from napari_cellcurator.core.store.atomic import check_not_input, check_replaceable
    from napari_cellcurator.core.store.modelio import is_model_folder

    check_not_input(out, data_paths(data), inside_ok=True)
    check_replaceable(out, is_model_folder, "a model folder")
    _check_writable_beside(Path(out))


def _check_writable_beside(out: Path) -> None:
    """An ``OSError`` now, not after training, when ``out``'s folder cannot be written."""
    import tempfile

    from napari_cellcurator.core.store.atomic import make_parent

    make_parent(out)
    with tempfile.TemporaryFile(dir=out.parent):
        pass


def _add_model_task(p) -> None:
    p.add_argument("--task", choices=TASKS,
                   help="without --model: the data's task, when it cannot be told from the "
                        "data (a movie is read as cellness candidates or mixture tiles)")


def _default_model(data: str, task: str | None = None) -> str:
    """The model ``predict``/``evaluate``/``explain`` use without ``--model``: the current
    version in the data's project (what the napari widgets trained), else the model shipped
    for the data's task; said on stderr, as the Predict widget says it."""
    from napari_cellcurator.core.errors import InputError
    from napari_cellcurator.core.io.arrays import split_fragment
    from napari_cellcurator.core.store.project import MODELS_NAME, project_folder
    from napari_cellcurator.core.store.registry import ModelRegistry
    from napari_cellcurator.core.tasks import get_task

    models = project_folder(split_fragment(Path(data))[0]) / MODELS_NAME
    current = ModelRegistry(models).current_dir() if models.is_dir() else None
    if current is not None:
        print(f"model: the project's current version {current}", file=sys.stderr)
        return str(current)
    task = task_name(task, data)
    shipped = get_task(task).shipped_model()
    if shipped is None:
        raise InputError(data, f"has no model yet (no project model, none shipped for {task})",
                         "--model MODEL_DIR, or train one with `cellcurator train`")
    print(f"model: the one shipped for {task} ({shipped})", file=sys.stderr)
    return shipped


def _cmd_predict(a) -> int:
    from napari_cellcurator.core.batch import predict_to_file

    out = predict_to_file(a.model or _default_model(a.data, a.task), a.data, a.out, device=a.device,
                          scheduler=a.scheduler, amp=bool(a.amp), progress=ReadProgress())
    print(f"wrote {out}")
    return 0


def _cmd_evaluate(a) -> int:
    from napari_cellcurator.core.pipeline import evaluate

    metrics = evaluate(a.model or _default_model(a.data, a.task), a.data, device=a.device,
                       amp=bool(a.amp), progress=ReadProgress())
    if a.plot:
        from napari_cellcurator.core.plots import plot_evaluation

        plot_evaluation(metrics, a.plot)
    if a.json:
        print(json.dumps(metrics))
    else:
        for key in ("n", "accuracy", "macro_f1", "balanced_accuracy", "precision", "recall", "f1",
                    "A", "bce"):
            if key in metrics:
                print(f"{key:>18}: {metrics[key]}")
        for name, m in metrics.get("per_class", {}).items():
            if not m["support"]:  # recall of a class with no cells here is undefined
                print(f"{name:>18}: no cells of this class in the data")
                continue
            print(f"{name:>18}: P {m['precision']:.3f} R {m['recall']:.3f} F1 {m['f1']:.3f} "
                  f"n {m['support']}")
    return 0


def _cmd_explain(a) -> int:
    from napari_cellcurator.core.explain.api import explain_item

    explain_item(a.model or _default_model(a.data, a.task), a.data, a.item, a.method,
                 target=a.target, out=a.out, layer=a.layer, patch=a.patch, stride=a.stride)
    print(f"wrote {a.out}")
    return 0


def _cmd_compare(a) -> int:
    from napari_cellcurator.core.baselines import compare

    result = compare(task_name(a.task, a.data), a.data, a.channels, a.out, epochs=a.epochs)
    print(json.dumps(result) if a.json else json.dumps(result, indent=2))
    return 0


def _cmd_cluster(a) -> int:
    from napari_cellcurator.core.clustering import cluster

    result = cluster(task_name(a.task, a.data), a.data, a.out, k=a.k, channels=a.channels,
                     model_dir=a.model, method=a.method, seed=a.seed,
                     on_update=_progress_printer("autoencoder"))
    print(json.dumps(result) if a.json else f"wrote {a.out}: {result.get('k')} clusters")
    return 0


def _cmd_pretrain(a) -> int:
    from napari_cellcurator.core.pretrain import pretrain

    data = a.data if len(a.data) > 1 else a.data[0]
    _check_model_out(a.out, a.data)
    pretrain(task_name(a.task, a.data), data, a.out, channels=a.channels, epochs=a.epochs,
             on_update=_progress_printer("pretrain"))
    print(f"saved pretrained encoder to {a.out}; use `cellcurator train --init {a.out}`")
    return 0


def _cmd_demo(a) -> int:
    from napari_cellcurator.demo import run_demo

    run_demo(Path(a.out), viewer=not a.no_viewer, epochs=a.epochs)
    return 0


COMMANDS = {
    "train": _cmd_train, "predict": _cmd_predict, "evaluate": _cmd_evaluate,
    "explain": _cmd_explain, "compare": _cmd_compare, "cluster": _cmd_cluster,
    "pretrain": _cmd_pretrain, "labels": _cmd_labels, "review": _cmd_review,
    "export": _cmd_export, "demo": _cmd_demo, "propose": cmd_propose,
}


def _tolerant_stdout() -> None:
    """Output redirected to a file on Windows is cp1252: a path or class name it cannot
    encode (Greek, CJK, "≥") must not fail the command after its work is done."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if callable(reconfigure):
        reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cellcurator`` command."""
    from napari_cellcurator.core.errors import CellCuratorError

    _tolerant_stdout()
    args = build_parser().parse_args(argv)
    default_format = warnings.formatwarning  # catch_warnings does not restore it
    default_show = warnings.showwarning
    warnings.formatwarning = _warning_format(args.command)
    warnings.showwarning = _once_per_text(default_show)
    try:
        return COMMANDS[args.command](args)
    except CellCuratorError as exc:
        print(f"cellcurator {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.filename is None:  # not about a file the user named: keep the traceback
            raise
        print(f"cellcurator {args.command}: error: {_os_error_text(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cellcurator {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = default_format
        warnings.showwarning = default_show


def _once_per_text(show):
    """``warnings.showwarning`` printing each warning about the user's data once per run: a
    command reads its data several times (train, then predict and explain the same files)
    and Python's own once-per-place filter sees a different caller each time."""
    from napari_cellcurator.core.errors import InputWarning

    shown: set[str] = set()

    def show_once(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, InputWarning):
            if str(message) in shown:
                return
            shown.add(str(message))
        show(message, category, filename, lineno, file, line)
    return show_once


def _warning_format(command: str):
    """``warnings.formatwarning`` for the package's own warnings about the user's data: one
    line ``cellcurator <command>: warning: ...`` instead of a source file and line of ours.
    Other warnings keep Python's format (a library's deprecation is for developers)."""
    from napari_cellcurator.core.errors import InputWarning

    default = warnings.formatwarning

    def format_warning(message, category, filename, lineno, line=None) -> str:
        if issubclass(category, InputWarning):
            return f"cellcurator {command}: warning: {message}\n"
        return default(message, category, filename, lineno, line)
    return format_warning


def _os_error_text(exc: OSError) -> str:
    """``path: problem`` of a failed read or write (a rename names both paths)."""
    where = str(exc.filename)
    if exc.filename2 is not None:
        where += f" -> {exc.filename2}"
    return f"{where}: {exc.strerror or exc}"


if __name__ == "__main__":
    sys.exit(main())
