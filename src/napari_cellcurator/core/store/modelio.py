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
from napari_cellcurator.core.store.atomic import atomic_write, atomic_write_text

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
    """Write weights then config, each atomically (config last: it marks the folder complete)."""
    from safetensors.torch import save_file

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(model_dir / WEIGHTS_NAME, lambda p: save_file(state, str(p)))
    atomic_write_text(model_dir / CONFIG_NAME, config.to_json())
    return model_dir


def read_config(model_dir: str | Path) -> ModelConfig:
    """Read and schema-check ``config.json`` of a model folder."""
    model_dir = Path(model_dir)
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
    return model.to(device).eval(), config
