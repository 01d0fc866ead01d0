"""Toy models with known answers for the explanation tests."""

from __future__ import annotations

import torch
from torch import nn


class RegionModel(nn.Module):
    """Two classes; the class-1 logit depends only on the pixels inside ``box``.

    The input is masked to the box, then a fixed positive 3×3 conv, ReLU, global average pool
    and a linear head: logit1 = w · mean(relu(conv(x·mask))), logit0 = 0.
    """

    def __init__(self, size: int = 32, box=(8, 16, 18, 26), channels: int = 2):
        super().__init__()
        y0, y1, x0, x1 = box
        mask = torch.zeros(1, 1, size, size)
        mask[..., y0:y1, x0:x1] = 1
        self.register_buffer("mask", mask)
        self.conv = nn.Conv2d(channels, 4, 3, padding=1, bias=False)
        self.head = nn.Linear(4, 2)
        with torch.no_grad():
            self.conv.weight.fill_(0.1)
            self.head.weight.zero_()
            self.head.weight[1].fill_(20.0)
            self.head.bias.copy_(torch.tensor([0.0, -5.0]))

    def forward(self, image):
        a = torch.relu(self.conv(image * self.mask))
        return self.head(a.mean(dim=(2, 3)))


class TwoStream(nn.Module):
    """Two independent conv streams on frames and their temporal difference (dCNN-like)."""

    def __init__(self, frames: int = 3):
        super().__init__()
        self.x_stream = nn.Sequential(nn.Conv2d(frames, 4, 3, padding=1), nn.ReLU(inplace=True),
                                      nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(inplace=True))
        self.dx_stream = nn.Sequential(nn.Conv2d(frames - 1, 4, 3, padding=1), nn.ReLU(),
                                       nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(8, 1)

    def forward(self, frames):
        dx = frames[:, 1:] - frames[:, :-1]
        a = self.x_stream(frames).mean(dim=(2, 3))
        b = self.dx_stream(dx).mean(dim=(2, 3))
        return self.head(torch.cat([a, b], dim=1))


class TraceWindowModel(nn.Module):
    """Image + trace model whose class-1 logit depends only on trace[t0:t1]."""

    def __init__(self, length: int = 100, window=(40, 60)):
        super().__init__()
        mask = torch.zeros(1, length)
        mask[:, window[0]:window[1]] = 1
        self.register_buffer("mask", mask)
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, image, trace):
        img = self.conv(image).mean(dim=(1, 2, 3)) * 0.0  # the image plays no part
        z = (trace * self.mask).sum(dim=1) * 0.2 - 2.0 + img
        return torch.stack([torch.zeros_like(z), z], dim=1)


class TinyC3D(nn.Module):
    """Frames (B, L, S, S) → a 3-D conv over (time, y, x) → proportion logit (B,)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv3d(4, 4, 3, stride=(1, 2, 2), padding=1)
        self.head = nn.Linear(4, 1)

    def forward(self, frames):
        a = torch.relu(self.conv2(torch.relu(self.conv(frames.unsqueeze(1)))))
        return self.head(a.mean(dim=(2, 3, 4)))[:, 0]
