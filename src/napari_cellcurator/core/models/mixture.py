"""Mixture-proportion networks on ℓ-frame snippets (B, ℓ, S, S) → (B,) logits.

* ``cnn``  — one stream on the frames X (frames as channels).
* ``dcnn`` — the differential CNN: a stream on X and one on dX = X[:, 1:] − X[:, :-1] (more
  streams for higher-order differences with ``diff_orders``), each conv/BN/ReLU/pool + FC,
  concatenated, dropout, a linear layer to one logit.
* ``c3d``  — 3-D convolutions over (t, y, x).

``cnn``/``dcnn`` use a proportion-map head by default: 1×1 convolutions give a logit per
position of the last feature map, the proportion is the mean of their sigmoids (a proportion
is an area average), returned as a logit. ``cnn_fc``/``dcnn_fc`` keep the paper's head
(global pooling + FC per stream, concatenated, linear). Any tile size divisible by 8 works.
L2 regularisation comes from the
task's AdamW weight decay (λ = 0.05 by default, the paper's best value).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from napari_cellcurator.core.models.registry import register_model


def _stream(cin: int, widths: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for w in widths:
        layers += [nn.Conv2d(cin, w, 3, padding=1, bias=False), nn.BatchNorm2d(w),
                   nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        cin = w
    return nn.Sequential(*layers)


def temporal_difference(x: torch.Tensor, order: int) -> torch.Tensor:
    """k-th difference along the frame axis: (B, ℓ, S, S) → (B, ℓ − k, S, S)."""
    for _ in range(order):
        x = x[:, 1:] - x[:, :-1]
    return x


class DifferentialCNN(nn.Module):
    """Streams on X and on its temporal differences, fused before the output.

    Parameters
    ----------
    in_frames
        ℓ, frames per snippet.
    diff_orders
        Orders k of the difference streams (``()`` = the single-stream ``cnn``).
    use_frames
        Whether a stream sees X itself.
    widths
        Conv channels per stage of each stream.
    hidden
        Units of each stream's fully connected layer.
    dropout
        Dropout before the output layer.
    head
        ``"fc"`` (global pooling + FC per stream) or ``"map"`` (a per-position logit map whose
        mean sigmoid is the proportion).
    """

    def __init__(self, in_frames: int = 5, diff_orders: Sequence[int] = (1,),
                 use_frames: bool = True, widths: Sequence[int] = (16, 32, 64),
                 hidden: int = 64, dropout: float = 0.5, head: str = "fc"):
        super().__init__()
        self.diff_orders = tuple(int(k) for k in diff_orders)
        if any(k < 1 or k >= in_frames for k in self.diff_orders):
            raise ValueError(f"difference orders {self.diff_orders} need 1 ≤ k < ℓ={in_frames}")
        self.use_frames = use_frames
        cins = ([in_frames] if use_frames else []) + [in_frames - k for k in self.diff_orders]
        if not cins:
            raise ValueError("a model needs at least one stream")
        self.streams = nn.ModuleList(_stream(c, widths) for c in cins)
        if head not in ("fc", "map"):
            raise ValueError(f"head must be 'fc' or 'map', not {head!r}")
        self.head_kind = head
        # "fc": per stream global pool + FC, concatenated, linear → logit (the paper's fusion).
        # "map": per position 1×1 convs → a logit map; proportion = mean of its sigmoids
        # (a proportion is an area average), returned as a logit
        k = 1 if head == "map" else None
        self.fcs = nn.ModuleList(
            (nn.Sequential(nn.Conv2d(widths[-1], hidden, k), nn.ReLU(True)) if k else
             nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths[-1], hidden),
                           nn.ReLU(True))) for _ in cins)
        self.head = nn.Sequential(nn.Dropout(dropout),
                                  nn.Conv2d(hidden * len(cins), 1, 1) if k else
                                  nn.Linear(hidden * len(cins), 1))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        inputs = ([frames] if self.use_frames else []) + [
            temporal_difference(frames, k) for k in self.diff_orders]
        feats = [fc(s(x)) for s, fc, x in zip(self.streams, self.fcs, inputs, strict=True)]
        out = self.head(torch.cat(feats, dim=1))
        if self.head_kind == "map":
            return map_logit(out)
        return out.reshape(-1)


def map_logit(logit_map: torch.Tensor) -> torch.Tensor:
    """Logit of the mean sigmoid of a (B, 1, H, W) logit map: log(mean σ) − log(mean (1 − σ)),
    as log-sum-exps of log-sigmoids — exact and finite for any map, in float32 even under
    autocast (bf16 rounded 1 − 1e-6 to 1: an infinite logit, then a NaN loss)."""
    with torch.autocast(logit_map.device.type, enabled=False):
        o = logit_map.float().flatten(1)
        return (torch.logsumexp(nn.functional.logsigmoid(o), dim=1)
                - torch.logsumexp(nn.functional.logsigmoid(-o), dim=1))


class C3D(nn.Module):
    """3-D convolutions over (t, y, x); pooling over space only until the last stage."""

    def __init__(self, in_frames: int = 5, widths: Sequence[int] = (8, 16, 32),
                 hidden: int = 64, dropout: float = 0.5):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for w in widths:
            layers += [nn.Conv3d(cin, w, 3, padding=1, bias=False), nn.BatchNorm3d(w),
                       nn.ReLU(inplace=True), nn.MaxPool3d((1, 2, 2))]
            cin = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten(),
                                  nn.Linear(widths[-1], hidden), nn.ReLU(True),
                                  nn.Dropout(dropout), nn.Linear(hidden, 1))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(frames[:, None])).reshape(-1)


@register_model("cnn", task="mixture", description="single-stream CNN on the frames X")
def build_cnn(in_frames: int = 5, input_size: int = 64, n_outputs: int = 1,
              dropout: float = 0.5, head: str = "map", **_) -> nn.Module:
    return DifferentialCNN(in_frames, diff_orders=(), dropout=dropout, head=head)


@register_model("dcnn", task="mixture",
                description="differential CNN: streams on X and dX, proportion-map head (default)")
def build_dcnn(in_frames: int = 5, input_size: int = 64, n_outputs: int = 1,
               diff_orders: Sequence[int] = (1,), dropout: float = 0.5, head: str = "map",
               **_) -> nn.Module:
    return DifferentialCNN(in_frames, diff_orders=diff_orders, dropout=dropout, head=head)


@register_model("cnn_fc", task="mixture", description="single-stream CNN, pooled FC head")
def build_cnn_fc(in_frames: int = 5, dropout: float = 0.5, **_) -> nn.Module:
    return DifferentialCNN(in_frames, diff_orders=(), dropout=dropout, head="fc")


@register_model("dcnn_fc", task="mixture",
                description="differential CNN with the paper's FC fusion head")
def build_dcnn_fc(in_frames: int = 5, diff_orders: Sequence[int] = (1,), dropout: float = 0.5,
                  **_) -> nn.Module:
    return DifferentialCNN(in_frames, diff_orders=diff_orders, dropout=dropout, head="fc")


@register_model("c3d", task="mixture", description="3-D convolutions over (t, y, x)")
def build_c3d(in_frames: int = 5, input_size: int = 64, n_outputs: int = 1,
              dropout: float = 0.5, **_) -> nn.Module:
    return C3D(in_frames, dropout=dropout)
