"""Shared pieces of the explanation methods: layer lookup, stream detection, map resizing,
the explained score with a fixed target."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from napari_cellcurator.core.errors import InputError

ScoreFn = Callable[[torch.Tensor], torch.Tensor]
_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def list_conv_layers(model: nn.Module, spatial_only: bool = False) -> list[str]:
    """Names (``model.named_modules`` style) of the convolution layers of ``model``.

    Parameters
    ----------
    model
        Any torch module.
    spatial_only
        Keep only 2-D and 3-D convolutions (those whose maps can be drawn on an image).
    """
    types = (nn.Conv2d, nn.Conv3d) if spatial_only else _CONV_TYPES
    return [name for name, m in model.named_modules() if isinstance(m, types)]


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The sub-module called ``name``; :class:`InputError` listing conv layers otherwise."""
    modules = dict(model.named_modules())
    if name not in modules or name == "":
        raise InputError(None, f"the model has no layer {name!r}",
                         f"one of its conv layers {list_conv_layers(model)}")
    return modules[name]


def to_batch(inputs: Mapping[str, np.ndarray | torch.Tensor], model: nn.Module | None = None,
             batched: bool | None = None) -> dict[str, torch.Tensor]:
    """Float tensors with a batch axis of 1 from numpy arrays or tensors of ONE item.

    ``batched=None`` guesses: arrays whose first axis is 1 are taken as already batched, except
    1-D traces. Pass ``batched=True/False`` to be explicit.
    """
    device = next(model.parameters()).device if model is not None else torch.device("cpu")
    out = {}
    for key, value in inputs.items():
        t = torch.as_tensor(np.asarray(value) if not torch.is_tensor(value) else value)
        is_batched = batched if batched is not None else (t.ndim >= 2 and t.shape[0] == 1)
        if not is_batched:
            t = t[None]
        if t.shape[0] != 1:
            raise InputError(None, f"input {key!r} holds {t.shape[0]} items; explain one at a time")
        out[key] = t.to(device=device, dtype=torch.float32)
    return out


def make_score_fn(task, logits: torch.Tensor, target: int | None, logit: bool = False
                  ) -> tuple[ScoreFn, int | None]:
    """The score to explain with the target fixed to the unoccluded item's prediction.

    Re-taking the argmax on each occluded copy would explain a different class per copy, so
    classification targets are resolved once from ``logits`` (the item's own output).
    ``logit=True`` scores before the softmax/sigmoid (``Task.explain_logit``, for Grad-CAM);
    else the probability or proportion (``Task.explain_score``). A proportion's target is 1
    (the proportion, default) or 0 (its complement).
    """
    if getattr(task, "kind", "classification") == "classification":
        if target is None:
            target = int(torch.as_tensor(logits).reshape(1, -1).argmax(dim=1)[0])
        n = int(torch.as_tensor(logits).reshape(1, -1).shape[1])
        if not 0 <= int(target) < n:
            raise InputError(None, f"target class {target} does not exist", f"0..{n - 1}")
    elif target is not None and int(target) not in (0, 1):
        raise InputError(None, f"target {target} does not exist for a proportion",
                         "1 (the proportion, default) or 0 (its complement)")
    fixed = None if target is None else int(target)
    score = task.explain_logit if logit else task.explain_score
    return (lambda lg: score(lg, fixed).reshape(-1)), fixed


def upsample_map(act: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Resize maps ``(F, *spatial)`` to ``(F, *size)``.

    3-D maps (time/depth × H × W, e.g. C3D) are averaged over their first spatial axis when
    ``size`` is 2-D. Bilinear with ``align_corners=False``: feature cells are spread evenly over
    the input pixels they summarise.
    """
    act = act.float()
    if act.ndim == 4 and len(size) == 2:
        act = act.mean(dim=1)
    if tuple(act.shape[1:]) == tuple(size):
        return act
    mode = {1: "linear", 2: "bilinear"}[len(size)]
    return F.interpolate(act[None], size=tuple(size), mode=mode, align_corners=False)[0]


def input_grid(model: nn.Module, key: str, size: tuple[int, ...]):
    """Where the explained input's pixels lie in the grid the convs actually see.

    Most models convolve the input as it is (returns None). A model that re-embeds it (3CNet
    centres the ROI image into a 92×92 grid beside the reshaped trace) tells so with a method
    ``explain_region(key, size) -> (grid_shape, grid_box, input_box)``, boxes as
    ``(y0, y1, x0, x1)``; 3CNet itself is recognised by its ``side``/``to_input``.
    """
    hook = getattr(model, "explain_region", None)
    if callable(hook):
        return hook(key, tuple(size))
    side = getattr(model, "side", None)
    if key == "image" and isinstance(side, int) and callable(getattr(model, "to_input", None)):
        s = int(size[-1])
        if s >= side:  # centre crop of the image
            o = (s - side) // 2
            return (side, side), (0, side, 0, side), (o, o + side, o, o + side)
        lo = (side - s) // 2  # zero-padded around the image
        return (side, side), (lo, lo + s, lo, lo + s), (0, s, 0, s)
    return None


def maps_on_input(model: nn.Module, key: str, act: torch.Tensor, size: tuple[int, ...]
                  ) -> torch.Tensor:
    """Layer maps ``(F, *spatial)`` resized to, and placed on, the input's pixels."""
    grid = input_grid(model, key, size) if len(size) == 2 else None
    if grid is None:
        return upsample_map(act, size)
    grid_shape, (gy0, gy1, gx0, gx1), (iy0, iy1, ix0, ix1) = grid
    full = upsample_map(act, tuple(grid_shape))
    out = torch.zeros((full.shape[0], *size), dtype=full.dtype, device=full.device)
    out[:, iy0:iy1, ix0:ix1] = full[:, gy0:gy1, gx0:gx1]
    return out


def target_size(act: torch.Tensor, inputs: Mapping[str, torch.Tensor], key: str
                ) -> tuple[int, ...]:
    """Where a layer's maps are drawn: the explained input's H×W for 2-D/3-D convs, the
    length of a 1-D input (a trace) for 1-D convs."""
    if act.ndim == 3:  # (B, F, L): a temporal conv
        for value in inputs.values():
            if value.ndim == 2:
                return (int(value.shape[-1]),)
        return (int(act.shape[-1]),)
    return tuple(int(s) for s in inputs[key].shape[-2:])


class LayerRecorder:
    """Forward hooks saving the outputs of named layers (every call, in call order).

    With ``keep_graph`` the hook hands a clone downstream, so an in-place ReLU after the layer
    cannot overwrite the saved tensor (values *and* gradients then refer to the layer output).
    """

    def __init__(self, model: nn.Module, names: list[str], keep_graph: bool = False):
        self.outputs: dict[str, list[torch.Tensor]] = {n: [] for n in names}
        self.order: list[str] = []
        self.ancestors: dict[str, set[str]] = {}  # filled by conv_streams
        self.pointwise = {n for n in names if _is_pointwise(get_layer(model, n))}
        self._handles = []
        for name in names:
            layer = get_layer(model, name)
            self._handles.append(layer.register_forward_hook(self._hook(name, keep_graph)))

    def _hook(self, name: str, keep_graph: bool):
        def hook(_module, _inputs, output):
            if not torch.is_tensor(output):
                return None
            self.order.append(name)
            if keep_graph:
                self.outputs[name].append(output)
                return output.clone()
            self.outputs[name].append(output.detach().clone())
            return None

        return hook

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __enter__(self) -> LayerRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def _is_pointwise(layer: nn.Module) -> bool:
    kernel = getattr(layer, "kernel_size", None)
    return kernel is not None and all(int(k) == 1 for k in kernel)


def conv_streams(recorder: LayerRecorder) -> list[list[str]]:
    """Group recorded conv layers into independent streams via the autograd graph.

    Two convs are in one stream when one feeds the other. A two-stream model (dCNN: X and dX)
    gives two groups; a ResNet one. 1×1 convs fed by other convs are left out: they mix
    channels (a ResNet's skip projection, a per-position head fusing the streams) and their
    maps are not what the streams saw — a head joining both streams would merge them into one.
    Needs a forward pass recorded with ``keep_graph=True``.
    """
    recorded = [n for n in recorder.outputs if recorder.outputs[n]]
    node_owner = {t.grad_fn: n for n in recorded for t in recorder.outputs[n]
                  if t.grad_fn is not None}
    all_ancestors = {n: _conv_ancestors(recorder.outputs[n], node_owner) - {n}
                     for n in recorded}
    names = [n for n in recorded if n not in recorder.pointwise or not all_ancestors[n]]
    return _group_streams(recorder, names, {n: all_ancestors[n] & set(names) for n in names})


def _group_streams(recorder: LayerRecorder, names: list[str], ancestors: dict[str, set[str]]
                   ) -> list[list[str]]:
    parent = {n: n for n in names}

    def find(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for n, anc in ancestors.items():
        for a in anc:
            parent[find(a)] = find(n)
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(find(n), []).append(n)
    recorder.ancestors = ancestors
    return list(groups.values())


def _conv_ancestors(outputs: list[torch.Tensor], node_owner: dict) -> set[str]:
    found: set[str] = set()
    stack = [t.grad_fn for t in outputs if t.grad_fn is not None]
    seen = set()
    while stack:
        node = stack.pop()
        for nxt, _ in node.next_functions:
            if nxt is None or nxt in seen:
                continue
            seen.add(nxt)
            if nxt in node_owner:
                found.add(node_owner[nxt])
            stack.append(nxt)
    return found


def last_conv_per_stream(recorder: LayerRecorder) -> list[str]:
    """The deepest conv of each stream (most conv ancestors; later call order breaks ties).

    A ResNet's last block has two terminal convs (conv2 and the 1×1 skip): the main-path conv
    has more ancestors, so it is chosen, as Grad-CAM implementations usually do.
    """
    streams = conv_streams(recorder)
    order = {n: i for i, n in enumerate(recorder.order)}
    chosen = []
    for group in streams:
        best = max(group, key=lambda n: (len(recorder.ancestors[n]), order.get(n, -1)))
        chosen.append(best)
    return sorted(chosen, key=lambda n: order.get(n, -1))
