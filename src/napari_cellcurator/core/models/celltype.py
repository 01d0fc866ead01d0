"""Cell-type classifiers on single-cell crops: the seed paper's CNN and a compact ResNet."""

from __future__ import annotations

import torch
from torch import nn

from napari_cellcurator.core.models.registry import register_model


class SeedCNN(nn.Module):
    """The label-free cell classification paper's network.

    First conv 11×11 then kernels shrinking to 3×3, three conv + max-pool stages, two fully
    connected layers and a softmax head (softmax is applied by the loss / task).
    """

    def __init__(self, in_channels: int, n_outputs: int, input_size: int = 64):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 11, padding=5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        side = input_size // 8
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(128 * side * side, 256), nn.ReLU(inplace=True),
            nn.Dropout(0.5), nn.Linear(256, n_outputs),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image))


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = (nn.Identity() if stride == 1 and cin == cout else
                     nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                   nn.BatchNorm2d(cout)))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.skip(x))


class SmallResNet(nn.Module):
    """A compact ResNet (4 stages of basic blocks, BN, global average pooling)."""

    def __init__(self, in_channels: int, n_outputs: int, input_size: int = 64,
                 width: int = 32, dropout: float = 0.2, stem_stride: int = 1):
        super().__init__()
        w = width
        # stride-2 stem for large inputs (≥ 48 px): 4× cheaper on CPU, cells stay > 10 px
        self.stem = nn.Sequential(nn.Conv2d(in_channels, w, 3, stem_stride, 1, bias=False),
                                  nn.BatchNorm2d(w), nn.ReLU(inplace=True))
        self.layer1 = _Block(w, w, 1)
        self.layer2 = _Block(w, 2 * w, 2)
        self.layer3 = _Block(2 * w, 4 * w, 2)
        self.layer4 = _Block(4 * w, 8 * w, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(8 * w, n_outputs))

    def features(self, image: torch.Tensor) -> torch.Tensor:
        x = self.stem(image)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(image)))


@register_model("seedcnn", task="celltype", description="seed paper CNN (11×11 → 3×3, 3 stages)")
def build_seedcnn(in_channels: int, n_outputs: int, input_size: int = 64, **_) -> nn.Module:
    return SeedCNN(in_channels, n_outputs, input_size)


@register_model("resnet", task="celltype", description="compact ResNet with BN (default)")
def build_resnet(in_channels: int, n_outputs: int, input_size: int = 64, width: int = 32,
                 stem_stride: int = 1, dropout: float = 0.2, **_) -> nn.Module:
    return SmallResNet(in_channels, n_outputs, input_size, width, dropout, stem_stride)


def stem_stride_for(input_size: int) -> int:
    """Stem stride the task asks for: 2 for inputs of 48 px and more, else 1."""
    return 2 if input_size >= 48 else 1
