"""Convolutional autoencoders for label-free features and self-supervised pretraining.

An autoencoder here is an *encoder* that maps the task's inputs to a latent vector ``z`` of
``latent_dim`` numbers, plus one decoder per input that rebuilds it from ``z``:

- crops ``image`` (B, C, S, S): 2-D transposed stages,
- traces ``trace`` (B, T): 1-D stages,
- snippets ``frames`` (B, L, S, S): 3-D stages (time is a depth axis, as in 3-D CNNs for video).

:class:`ClassifierAutoencoder` *adopts* the children of its encoder module, so its state-dict
names are the encoder's own names (``stem.*``, ``layer1.*``...) plus ``ae_decoders.*``. When the
encoder is a classifier built with ``n_outputs = latent_dim``, every weight but the output layer
has the same name and shape as in that classifier, and ``train --init`` copies them.

All autoencoders are registered under the pseudo-task ``"autoencoder"`` so that they never show
up as classifier choices of a real task.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from napari_cellcurator.core.models.celltype import SmallResNet
from napari_cellcurator.core.models.registry import build_model, register_model

AE_TASK = "autoencoder"


def input_kind(name: str, shape: tuple[int, ...]) -> str:
    """How an input of per-item ``shape`` is decoded: ``"2d"``, ``"1d"`` or ``"3d"``."""
    if name == "frames" or len(shape) == 4:
        return "3d"
    if name == "trace" or len(shape) <= 2 and name != "image":
        return "1d"
    if len(shape) == 3:
        return "2d"
    raise ValueError(f"input {name!r} of per-item shape {shape} has no decoder")


def _up2d(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1,
            bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _up1d(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv1d(cin, cout, 5, padding=2,
            bias=False), nn.BatchNorm1d(cout), nn.ReLU(inplace=True)]


def _up3d(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Upsample(scale_factor=(1, 2, 2), mode="nearest"),
            nn.Conv3d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm3d(cout),
            nn.ReLU(inplace=True)]


class Decoder(nn.Module):
    """z (B, D) → one input of per-item ``shape`` (crop, trace or snippet)."""

    def __init__(self, kind: str, shape: tuple[int, ...], latent_dim: int, width: int = 32):
        super().__init__()
        self.kind, self.shape = kind, tuple(int(s) for s in shape)
        w = width
        if kind == "2d":
            c, h, wd = self.shape
            self.seed = (4 * w, math.ceil(h / 8), math.ceil(wd / 8))
            body = [*_up2d(4 * w, 2 * w), *_up2d(2 * w, w), *_up2d(w, w), nn.Conv2d(w, c, 3, 1, 1)]
        elif kind == "1d":
            c, t = (1, self.shape[0]) if len(self.shape) == 1 else self.shape
            self.seed = (2 * w, math.ceil(t / 8))
            body = [*_up1d(2 * w, 2 * w), *_up1d(2 * w, w), *_up1d(w, w), nn.Conv1d(w, c, 5, 1, 2)]
        elif kind == "3d":
            lng, h, wd = self.shape[-3:]
            c = self.shape[0] if len(self.shape) == 4 else 1
            w = max(8, w // 2)  # 3-D feature maps are L times larger: keep memory modest
            self.seed = (2 * w, lng, math.ceil(h / 8), math.ceil(wd / 8))
            body = [*_up3d(2 * w, 2 * w), *_up3d(2 * w, w), *_up3d(w, w), nn.Conv3d(w, c, 3, 1, 1)]
        else:
            raise ValueError(f"unknown decoder kind {kind!r}")
        self.fc = nn.Sequential(nn.Linear(latent_dim, math.prod(self.seed)), nn.ReLU(inplace=True))
        self.body = nn.Sequential(*body)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.body(self.fc(z).view(z.shape[0], *self.seed))
        if self.kind == "2d":
            x = x[..., : self.shape[-2], : self.shape[-1]]
        elif self.kind == "1d":
            t = self.shape[-1]
            x = x[..., :t] if x.shape[-1] >= t else F.pad(x, (0, t - x.shape[-1]))
            if len(self.shape) == 1:
                x = x[:, 0]
        else:
            x = x[..., : self.shape[-2], : self.shape[-1]]
            if len(self.shape) == 3:
                x = x[:, 0]
        return x


class ClassifierAutoencoder(nn.Module):
    """Autoencoder whose encoder is any module ``encoder(**inputs) -> (B, latent_dim)``.

    Parameters
    ----------
    encoder
        Typically a classifier built with ``n_outputs=latent_dim``; its children become this
        module's children under their own names (so weights transfer back by name).
    shapes
        Per-item shape of each input, e.g. ``{"image": (2, 40, 40)}``.
    latent_dim
        Size of ``z``.
    """

    def __init__(self, encoder: nn.Module, shapes: dict[str, tuple[int, ...]], latent_dim: int,
                 width: int = 32):
        super().__init__()
        for name, child in encoder.named_children():
            if name == "ae_decoders":
                raise ValueError("an encoder may not have a child called 'ae_decoders'")
            self.add_module(name, child)
        # keep the encoder's forward without registering it twice as a submodule
        object.__setattr__(self, "_encoder", encoder)
        self.latent_dim = int(latent_dim)
        self.input_names = tuple(shapes)
        self.ae_decoders = nn.ModuleDict({
            k: Decoder(input_kind(k, tuple(s)), tuple(s), latent_dim, width)
            for k, s in shapes.items()
        })

    def encode(self, **inputs: torch.Tensor) -> torch.Tensor:
        """Latent features (B, latent_dim)."""
        return self._encoder(**inputs).reshape(next(iter(inputs.values())).shape[0], -1)

    def decode(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Reconstruction of every input from ``z``."""
        return {k: dec(z) for k, dec in self.ae_decoders.items()}

    def forward(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.decode(self.encode(**inputs))

    def train(self, mode: bool = True):
        super().train(mode)
        self._encoder.train(mode)  # same module objects, but keep its own flag in sync
        return self


def reconstruction_loss(recon: dict[str, torch.Tensor], inputs: dict[str, torch.Tensor]
                        ) -> torch.Tensor:
    """Mean squared error, averaged per input so that every input counts equally.

    A trace cut to a random window by augmentation (cellness: 48 samples to the whole) is
    compared with the decoder's fixed-length output resampled onto it."""
    losses = []
    for k in recon:
        out, target = recon[k], inputs[k].to(recon[k].dtype)
        if out.ndim == 2 and out.shape[-1] != target.shape[-1]:
            out = F.interpolate(out[:, None], size=target.shape[-1], mode="linear",
                                align_corners=False)[:, 0]
        losses.append(F.mse_loss(out, target))
    return torch.stack(losses).mean()


# ---- own encoders for the input kinds that have no classifier to borrow ---------------------
class RoiTraceEncoder(nn.Module):
    """ROI image (B, C, S, S) with a 2-D CNN + trace (B, T) with a 1-D CNN → z."""

    def __init__(self, in_channels: int, n_outputs: int, width: int = 16):
        super().__init__()
        w = width

        def c2(cin, cout, s):
            return [nn.Conv2d(cin, cout, 3, s, 1, bias=False), nn.BatchNorm2d(cout),
                    nn.ReLU(inplace=True)]

        def c1(cin, cout, s):
            return [nn.Conv1d(cin, cout, 5, s, 2, bias=False), nn.BatchNorm1d(cout),
                    nn.ReLU(inplace=True)]

        self.image_branch = nn.Sequential(*c2(in_channels, w, 1), *c2(w, 2 * w, 2),
                                          *c2(2 * w, 4 * w, 2), *c2(4 * w, 4 * w, 2))
        self.trace_branch = nn.Sequential(*c1(1, w, 1), *c1(w, 2 * w, 2), *c1(2 * w, 4 * w, 2),
                                          *c1(4 * w, 4 * w, 2))
        self.head = nn.Linear(8 * w, n_outputs)

    def forward(self, image: torch.Tensor, trace: torch.Tensor) -> torch.Tensor:
        im = self.image_branch(image).mean(dim=(2, 3))
        tr = self.trace_branch(trace.reshape(trace.shape[0], 1, -1)).mean(dim=2)
        return self.head(torch.cat([im, tr], dim=1))


class SnippetEncoder3d(nn.Module):
    """Time-lapse snippets (B, L, S, S) → z with 3-D convolutions (space strided, time kept)."""

    def __init__(self, n_outputs: int, width: int = 16):
        super().__init__()
        w = width

        def c3(cin, cout, s):
            return [nn.Conv3d(cin, cout, 3, (1, s, s), 1, bias=False), nn.BatchNorm3d(cout),
                    nn.ReLU(inplace=True)]

        self.features = nn.Sequential(*c3(1, w, 1), *c3(w, 2 * w, 2), *c3(2 * w, 4 * w, 2),
                                      *c3(4 * w, 4 * w, 2))
        self.head = nn.Linear(4 * w, n_outputs)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames[:, None] if frames.ndim == 4 else frames
        return self.head(self.features(x).mean(dim=(2, 3, 4)))


def _shapes(shapes: dict) -> dict[str, tuple[int, ...]]:
    return {str(k): tuple(int(s) for s in v) for k, v in shapes.items()}


@register_model("ae_crops", task=AE_TASK,
                description="crop autoencoder; encoder = the celltype 'resnet' (same names)")
def build_ae_crops(shapes: dict, latent_dim: int = 32, width: int = 32, **_) -> nn.Module:
    shapes = _shapes(shapes)
    c, s, _s = shapes["image"]
    return ClassifierAutoencoder(SmallResNet(c, latent_dim, s, width), shapes, latent_dim)


@register_model("ae_roi", task=AE_TASK, description="ROI image (2-D) + trace (1-D) autoencoder")
def build_ae_roi(shapes: dict, latent_dim: int = 32, width: int = 16, **_) -> nn.Module:
    shapes = _shapes(shapes)
    encoder = RoiTraceEncoder(shapes["image"][0], latent_dim, width)
    return ClassifierAutoencoder(encoder, shapes, latent_dim)


@register_model("ae_snippets", task=AE_TASK, description="time-lapse snippet 3-D autoencoder")
def build_ae_snippets(shapes: dict, latent_dim: int = 32, width: int = 16, **_) -> nn.Module:
    shapes = _shapes(shapes)
    return ClassifierAutoencoder(SnippetEncoder3d(latent_dim, width), shapes, latent_dim)


@register_model("ae_classifier", task=AE_TASK,
                description="autoencoder around any registered classifier (base_arch)")
def build_ae_classifier(shapes: dict, base_arch: str, base_spec: dict, latent_dim: int = 32,
                        **_) -> nn.Module:
    spec = {**base_spec, "n_outputs": latent_dim}
    return ClassifierAutoencoder(build_model(base_arch, **spec), _shapes(shapes), latent_dim)


#: the own-encoder autoencoder per task, used when the task's classifier cannot be borrowed
AUTOENCODER_FOR_TASK = {"celltype": "ae_crops", "cellness": "ae_roi", "mixture": "ae_snippets"}
