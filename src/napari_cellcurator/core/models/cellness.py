"""Cell / not-cell classifiers of calcium-imaging ROI candidates (image patch + trace).

Both take ``image`` (B, C, S, S) and ``trace`` (B, T) and return logits (B, 2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from napari_cellcurator.core.models.registry import register_model

#: 3CNet's input side: the ROI image is zero-centred into 92×92, 92·92 trace samples fill ch. 2
THREECNET_SIDE = 92


def _crb(cin: int, cout: int) -> list[nn.Module]:
    # the report's order: Conv → ReLU → BatchNorm, 3×3, stride 1, no padding
    return [nn.Conv2d(cin, cout, 3), nn.ReLU(inplace=True), nn.BatchNorm2d(cout)]


def centre_into(image: torch.Tensor, side: int) -> torch.Tensor:
    """Zero-pad (or centre-crop) (B, S, S) images to (B, side, side), ROI kept in the middle."""
    s = image.shape[-1]
    if s >= side:
        o = (s - side) // 2
        return image[..., o:o + side, o:o + side]
    lo = (side - s) // 2
    return F.pad(image, (lo, side - s - lo, lo, side - s - lo))


def middle_samples(trace: torch.Tensor, n: int) -> torch.Tensor:
    """The middle ``n`` samples of (B, T) traces; short traces zero-padded around the centre."""
    t = trace.shape[-1]
    if t >= n:
        o = (t - n) // 2
        return trace[:, o:o + n]
    lo = (n - t) // 2
    return F.pad(trace, (lo, n - t - lo))


class ThreeCNet(nn.Module):
    """3CNet (Woo & Kim): 92×92×2 input = ROI image + middle 8464 trace samples as an image.

    INPUT → [CRB×2](16) → MP → [CRB×2](32) → MP → CRB(64) → MP → FC 72 → FC 2.
    """

    def __init__(self, n_outputs: int = 2, image_channel: int = 0, side: int = THREECNET_SIDE):
        super().__init__()
        self.side = side
        self.image_channel = image_channel
        self.features = nn.Sequential(
            *_crb(2, 16), *_crb(16, 16), nn.MaxPool2d(2),
            *_crb(16, 32), *_crb(32, 32), nn.MaxPool2d(2),
            *_crb(32, 64), nn.MaxPool2d(2),
        )
        with torch.no_grad():
            flat = self.features(torch.zeros(1, 2, side, side)).numel()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(flat, 72), nn.ReLU(inplace=True),
                                  nn.Linear(72, n_outputs))

    def to_input(self, image: torch.Tensor, trace: torch.Tensor) -> torch.Tensor:
        """The report's (B, 2, 92, 92) input built from a ROI patch and a trace."""
        roi = centre_into(image[:, self.image_channel], self.side)
        tr = middle_samples(trace, self.side * self.side).reshape(-1, self.side, self.side)
        return torch.stack([roi, tr], dim=1)

    def forward(self, image: torch.Tensor, trace: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.to_input(image, trace)))


class TwoBranch(nn.Module):
    """Ours: a 2-D CNN on the ROI patch and a 1-D CNN on the whole trace, fused before the head.

    The trace branch ends in global mean + max pooling, so any trace length works; the image
    branch sees footprint weights and mask (plus context channels if configured).
    """

    def __init__(self, in_channels: int = 2, n_outputs: int = 2, width: int = 16,
                 dropout: float = 0.3):
        super().__init__()
        w = width

        def c2(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                    nn.ReLU(inplace=True)]

        def c1(cin, cout, k):
            return [nn.Conv1d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm1d(cout),
                    nn.ReLU(inplace=True)]

        self.image_branch = nn.Sequential(
            *c2(in_channels, w), nn.MaxPool2d(2), *c2(w, 2 * w), nn.MaxPool2d(2),
            *c2(2 * w, 4 * w), nn.MaxPool2d(2), *c2(4 * w, 4 * w),
        )
        self.trace_branch = nn.Sequential(
            *c1(1, w, 7), nn.MaxPool1d(2), *c1(w, 2 * w, 5), nn.MaxPool1d(2),
            *c1(2 * w, 4 * w, 5), nn.MaxPool1d(2), *c1(4 * w, 4 * w, 3),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(16 * w, 4 * w),
                                  nn.ReLU(inplace=True), nn.Dropout(dropout),
                                  nn.Linear(4 * w, n_outputs))

    def embed(self, image: torch.Tensor, trace: torch.Tensor) -> torch.Tensor:
        """Fused features (B, 16·width) before the head."""
        im = self.image_branch(image)
        im = torch.cat([im.mean(dim=(2, 3)), im.amax(dim=(2, 3))], dim=1)
        tr = trace[:, None, :]
        if tr.shape[-1] < 16:  # the pooling stages need a few samples
            tr = F.pad(tr, (0, 16 - tr.shape[-1]))
        tr = self.trace_branch(tr)
        tr = torch.cat([tr.mean(dim=2), tr.amax(dim=2)], dim=1)
        return torch.cat([im, tr], dim=1)

    def forward(self, image: torch.Tensor, trace: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(image, trace))


@register_model("3cnet", task="cellness",
                description="3CNet (report): 92×92×2 ROI image + reshaped trace, hinge loss")
def build_3cnet(n_outputs: int = 2, **_) -> nn.Module:
    return ThreeCNet(n_outputs)


@register_model("twobranch", task="cellness",
                description="2-D CNN on ROI patch + 1-D CNN on the whole trace (default)")
def build_twobranch(in_channels: int = 2, n_outputs: int = 2, width: int = 16, **_) -> nn.Module:
    return TwoBranch(in_channels, n_outputs, width)
