"""Layer activations: the feature maps of one item at chosen conv layers, at input resolution."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.explain.common import (
    LayerRecorder,
    list_conv_layers,
    maps_on_input,
    target_size,
)


def first_conv_per_stream(model: nn.Module, inputs: Mapping[str, torch.Tensor]) -> list[str]:
    """The first spatial conv of each input stream (both streams of a dCNN, one for a ResNet).

    Streams are found from the autograd graph of one forward pass (see
    :func:`~napari_cellcurator.core.explain.common.conv_streams`).
    """
    from napari_cellcurator.core.explain.common import conv_streams

    names = list_conv_layers(model, spatial_only=True)
    if not names:
        return []
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), LayerRecorder(model, names, keep_graph=True) as rec:
            model(**{k: v.detach().clone().requires_grad_(True) for k, v in inputs.items()})
            streams = conv_streams(rec)
            order = {n: i for i, n in reversed(list(enumerate(rec.order)))}
    finally:
        model.train(was_training)
    firsts = [min(g, key=lambda n: order.get(n, 1 << 30)) for g in streams]
    return sorted(firsts, key=lambda n: order.get(n, 1 << 30))


def layer_activations(model: nn.Module, inputs: Mapping[str, torch.Tensor],
                      layers: str | list[str] | None = None, key: str = "image",
                      upsample: bool = True) -> dict[str, np.ndarray]:
    """Feature maps of one item at conv ``layers`` (default: the first conv of each stream).

    Parameters
    ----------
    model
        The model, called as ``model(**inputs)``.
    inputs
        Model-ready tensors of one item (batch axis of 1).
    layers
        Layer name(s) from :func:`list_conv_layers`; ``None`` = first conv of each stream.
    key
        The explained input; 2-D/3-D maps are resized to its last two axes. 1-D conv maps (a
        trace branch) are resized to the trace length.
    upsample
        Resize to the input's size (False keeps the layer's own resolution).

    Returns
    -------
    dict
        Layer name → float32 array ``(F, H, W)`` (``(F, T)`` for 1-D convs). A layer called
        several times in one forward pass (shared weights) gives its first call.
    """
    if layers is None:
        layers = first_conv_per_stream(model, inputs)
        if not layers:
            raise InputError(None, "the model has no 2-D/3-D conv layer to show activations of")
    elif isinstance(layers, str):
        layers = [layers]
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), LayerRecorder(model, list(layers)) as rec:
            model(**inputs)
    finally:
        model.train(was_training)
    out = {}
    for name in layers:
        if not rec.outputs[name]:
            raise RuntimeError(f"layer {name!r} was not called in the forward pass")
        act = rec.outputs[name][0][0]  # first call, first item: (F, *spatial)
        if upsample:
            act = maps_on_input(model, key, act, target_size(rec.outputs[name][0], inputs, key))
        elif act.ndim == 4:
            act = act.mean(dim=1)
        out[name] = act.float().cpu().numpy().astype(np.float32)
    return out


__all__ = ["first_conv_per_stream", "layer_activations", "list_conv_layers"]
