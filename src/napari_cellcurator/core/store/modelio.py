"""Model folders: ``weights.safetensors`` (or a state-dict ``.pt``) + ``config.json``.

Nothing is ever unpickled: safetensors holds only tensors, and ``.pt`` files are read with
``torch.load(weights_only=True)``. The config is schema-checked before any weights are read.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_cellcurator import __version__
from napari_cellcurator.core.errors import CellCuratorError, ModelFileError
from napari_cellcurator.core.store.atomic import (
    atomic_write,
    atomic_write_dir,
    atomic_write_text,
    check_replaceable,
    recover_swapped,
)

if TYPE_CHECKING:  # torch is imported where weights are read or written: reading a config
    import torch  # (the project, the model registry on the GUI thread) must not wait ~3 s


def _torch_version() -> str:
    import torch

    return torch.__version__

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "weights.safetensors"
FORMAT_VERSION = 1

# field → accepted JSON types; what a config must hold to rebuild a model
_SCHEMA: dict[str, tuple[type, ...]] = {
    "format_version": (int,),
    "task": (str,),
    "arch": (str,),
    "model_spec": (dict,),
    "classes": (list,),
    "preprocessing": (dict,),
}


@dataclass
class ModelConfig:
    """Everything needed to rebuild, use and reproduce a trained model."""

    task: str
    arch: str
    model_spec: dict[str, Any]
    classes: list[str]
    preprocessing: dict[str, Any]
    channels: list[int] | None = None
    data_hash: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    parent: str | None = None
    created: str = ""
    package_version: str = __version__
    torch_version: str = field(default_factory=_torch_version)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=_json_default)

    @classmethod
    def from_dict(cls, data: dict, path: Path | None = None) -> ModelConfig:
        where = f"{path}: " if path else ""
        if not isinstance(data, dict):
            raise ModelFileError(f"{where}config is not a JSON object")
        for key, types in _SCHEMA.items():
            if key not in data:
                raise ModelFileError(f"{where}config lacks '{key}'")
            if not isinstance(data[key], types):
                raise ModelFileError(f"{where}config '{key}' has the wrong type")
        if data["format_version"] > FORMAT_VERSION:
            raise ModelFileError(f"{where}model format {data['format_version']} is newer than "
                                 f"this napari-cellcurator understands ({FORMAT_VERSION})")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def _json_default(obj: Any):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def save_model(model_dir: str | Path, model: torch.nn.Module, config: ModelConfig) -> Path:
    """Write weights and config into a temporary sibling folder, then swap it in whole.

    An earlier model in ``model_dir`` stays intact and loadable until the new one is
    complete; its other files (notes, plots) are carried over, its weights are not. An empty
    ``model_dir`` (a fresh temp folder) is written in place, config last (it marks the
    folder complete).

    Raises
    ------
    InputError
        ``model_dir`` is a file, or a folder holding something other than a model.
    """
    from safetensors.torch import save_file

    model_dir = Path(model_dir).absolute()  # "." has no name to make a sibling of
    recover_swapped(model_dir)
    check_replaceable(model_dir, is_model_folder, "a model folder")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}

    def write(folder: Path) -> None:
        _copy_extras(model_dir, folder)
        atomic_write(folder / WEIGHTS_NAME, lambda p: save_file(state, str(p)))
        atomic_write_text(folder / CONFIG_NAME, config.to_json())

    if model_dir.is_dir() and not any(model_dir.iterdir()):
        write(model_dir)  # nothing to keep intact: no second temp folder
        return model_dir
    return atomic_write_dir(model_dir, write)


def _copy_extras(old: Path, new: Path) -> None:
    """Copy the files of an earlier model folder that are not its weights or config."""
    import shutil

    if new == old or not old.is_dir():
        return
    for f in old.iterdir():
        if f.is_file() and f.name not in (CONFIG_NAME, WEIGHTS_NAME) and f.suffix not in (
                ".pt", ".pth"):
            shutil.copy2(f, new / f.name)


def is_model_folder(folder: Path) -> bool:
    """Whether ``folder`` looks like a model folder (config or weights, no subfolders): what
    :func:`save_model` may replace without destroying other data."""
    entries = list(folder.iterdir())
    names = {e.name for e in entries}
    has_model = CONFIG_NAME in names or WEIGHTS_NAME in names or any(
        e.suffix in (".pt", ".pth") for e in entries)
    return has_model and not any(e.is_dir() for e in entries)


def read_config(model_dir: str | Path) -> ModelConfig:
    """Read and schema-check ``config.json`` of a model folder."""
    model_dir = Path(model_dir)
    recover_swapped(model_dir)  # a crash mid-swap left the previous model beside it
    path = model_dir / CONFIG_NAME
    if not model_dir.is_dir():
        raise ModelFileError(f"{model_dir}: not a model folder (no such directory)")
    if not path.is_file():
        raise ModelFileError(f"{model_dir}: not a model folder (no {CONFIG_NAME})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # deep nesting
        raise ModelFileError(f"{path}: not valid JSON ({type(exc).__name__}: {exc})") from None
    return ModelConfig.from_dict(data, path)


def load_state_dict(model_dir: str | Path) -> dict[str, torch.Tensor]:
    """Weights of a model folder, never unpickling arbitrary objects."""
    model_dir = Path(model_dir)
    st = model_dir / WEIGHTS_NAME
    if st.is_file():
        from safetensors.torch import load_file

        try:
            return load_file(str(st))
        except Exception as exc:  # safetensors raises its own error types
            raise ModelFileError(f"{st}: unreadable weights ({exc})") from None
    pts = sorted(model_dir.glob("*.pt")) + sorted(model_dir.glob("*.pth"))
    if not pts:
        raise ModelFileError(f"{model_dir}: no {WEIGHTS_NAME} or .pt state dict")
    import torch

    try:
        state = torch.load(pts[0], map_location="cpu", weights_only=True)
    except Exception as exc:  # refuses pickles that would build arbitrary objects
        raise ModelFileError(f"{pts[0]}: refused or unreadable ({exc.__class__.__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"{pts[0]}: not a state dict of tensors")
    return state


def load_model(model_dir: str | Path, device: torch.device | str = "cpu"):
    """Rebuild a model from the registry and load its weights.

    Returns
    -------
    model, config
        The model in eval mode on ``device`` and its :class:`ModelConfig`.
    """
    from napari_cellcurator.core.models.registry import build_model

    config = read_config(model_dir)
    try:
        model = build_model(config.arch, **config.model_spec)
    except CellCuratorError as exc:
        raise ModelFileError(f"{model_dir}: {exc}") from None
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:  # model_spec misfits
        raise ModelFileError(f"{model_dir}: config model_spec does not fit architecture "
                             f"{config.arch!r} ({type(exc).__name__}: {exc})") from None
    state = load_state_dict(model_dir)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelFileError(f"{model_dir}: weights do not fit architecture "
                             f"{config.arch!r} ({str(exc).splitlines()[0]})") from None
    check_consistent(config, model_dir)
    return model.to(device).eval(), config


def is_feature_model(config: ModelConfig) -> bool:
    """A pretrained encoder or an autoencoder: features, no classes to predict."""
    return not config.classes and (
        "pretraining" in config.metrics or config.metrics.get("kind") == "autoencoder")


def check_consistent(config: ModelConfig, model_dir: str | Path) -> None:
    """Refuse a config that does not describe its network: class names that are not unique or
    not one per output, normalisation that would turn every input into NaN.

    A hand-edited or merged ``config.json`` would otherwise give wrong predictions silently
    (probabilities that do not sum to 1, merged columns, NaN scores with a confident class).

    Raises
    ------
    ModelFileError
        Naming the model folder and the inconsistency.
    """
    problem = _class_problem(config) or _preprocessing_problem(config.preprocessing)
    if problem:
        raise ModelFileError(f"{model_dir}: {CONFIG_NAME} does not fit the model: {problem}")


def check_predictor(config: ModelConfig, model_dir: str | Path) -> None:
    """:func:`check_consistent`, and refuse a feature model (it has no classes to predict).

    Raises
    ------
    ModelFileError
        Naming the model folder and what is wrong.
    """
    if is_feature_model(config):
        raise ModelFileError(f"{model_dir}: a pretrained encoder / autoencoder without "
                             "classes cannot predict (use it with `train --init`)")
    check_consistent(config, model_dir)


def _class_problem(config: ModelConfig) -> str | None:
    """What is wrong with the class names, given the network's outputs (None: nothing)."""
    classes = config.classes
    if not all(isinstance(c, str) and c for c in classes):
        return f"class names must be non-empty text, got {classes}"
    if len(set(classes)) != len(classes):
        return f"class names are not unique: {classes}"
    if is_feature_model(config):
        return None
    from napari_cellcurator.core.tasks import get_task

    try:
        kind = get_task(config.task).kind
    except CellCuratorError:  # an unknown task is reported where the task is used
        return None
    if kind != "classification":  # a proportion: one output, named by the two cell types
        if len(classes) != 2:
            return f"{len(classes)} class names {classes} (expected the two cell types' names)"
        return None
    outputs = config.model_spec.get("n_outputs")
    if isinstance(outputs, int) and len(classes) != outputs:
        return f"{len(classes)} class names {classes} for a network with {outputs} outputs"
    return None


def _preprocessing_problem(prep: dict) -> str | None:
    """Normalisation values that are not finite (or a scale that is not above 0)."""
    import math

    for key in ("channel_mean", "channel_std", "mean_image"):
        if key not in prep:
            continue
        values = list(_flatten(prep[key]))
        if not values or not all(isinstance(v, int | float) and math.isfinite(v)
                                 for v in values):
            return f"preprocessing {key!r} holds values that are not finite numbers"
        if key.endswith("_std") and min(values) <= 0:
            return f"preprocessing {key!r} must be above 0, got {prep[key]}"
    return None


def _flatten(value: Any):
    if isinstance(value, list | tuple):
        for v in value:
            yield from _flatten(v)
    else:
        yield value
