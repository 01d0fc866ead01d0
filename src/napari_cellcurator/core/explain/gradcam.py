"""Grad-CAM (Selvaraju et al. 2017) on the last conv layer of each stream, or named layers."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.explain.common import (
    LayerRecorder,
    ScoreFn,
    last_conv_per_stream,
    list_conv_layers,
    maps_on_input,
    target_size,
)


def gradcam(model: nn.Module, inputs: Mapping[str, torch.Tensor], score_fn: ScoreFn,
            layers: str | list[str] | None = None, key: str = "image",
            upsample: bool = True) -> dict[str, np.ndarray]:
    """Grad-CAM maps of one item.

    For each layer: channel weights = spatial mean of d score / d activation; map =
    ReLU(Σ_f w_f A_f), averaged over time for 3-D convs, resized to the input's H×W.

    Parameters
    ----------
    model
        Called as ``model(**inputs)``; put in eval mode for the pass (BatchNorm, dropout).
    inputs
        Model-ready tensors of one item (batch axis of 1).
    score_fn
        ``logits -> (B,)`` scores with a fixed target (see ``make_score_fn``).
    layers
        Conv layer name(s); ``None`` = the last conv of each stream (both streams of a dCNN).
    key
        The explained input whose H×W the maps take.
    upsample
        Resize to the input's size.

    Returns
    -------
    dict
        Layer name → float32 map ``(H, W)`` (``(T,)`` for a 1-D conv), ≥ 0.
    """
    names = list_conv_layers(model, spatial_only=True) if layers is None else (
        [layers] if isinstance(layers, str) else list(layers))
    if not names:
        raise InputError(None, "the model has no 2-D/3-D conv layer to compute Grad-CAM on")
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), LayerRecorder(model, names, keep_graph=True) as rec:
            # inputs need grad so every activation joins the graph even if weights are frozen
            grad_inputs = {k: v.detach().clone().requires_grad_(True) for k, v in inputs.items()}
            score = score_fn(model(**grad_inputs))[0]
            chosen = last_conv_per_stream(rec) if layers is None else names
            for n in chosen:
                if not rec.outputs[n]:
                    raise RuntimeError(f"layer {n!r} was not called in the forward pass")
            acts = [rec.outputs[n][0] for n in chosen]
            grads = torch.autograd.grad(score, acts, allow_unused=True)
    finally:
        model.train(was_training)
    maps = {}
    for name, act, grad in zip(chosen, acts, grads, strict=True):
        act = act.detach()[0]
        grad = torch.zeros_like(act) if grad is None else grad[0]
        spatial = tuple(range(1, act.ndim))
        weights = grad.mean(dim=spatial, keepdim=True)
        cam = torch.relu((weights * act).sum(dim=0, keepdim=True))
        if upsample:
            cam = maps_on_input(model, key, cam, target_size(rec.outputs[name][0], inputs, key))
        elif cam.ndim == 4:
            cam = cam.mean(dim=1)
        maps[name] = cam[0].cpu().numpy().astype(np.float32)
    return maps


def combine_streams(maps: Mapping[str, np.ndarray]) -> np.ndarray:
    """One map from per-stream Grad-CAMs: their sum (each stream's ReLU'd contribution)."""
    arrays = [m for m in maps.values()]
    out = arrays[0].astype(np.float32).copy()
    for m in arrays[1:]:
        if m.shape == out.shape:
            out += m
    return out


__all__ = ["combine_streams", "gradcam"]
