"""Crops: normalisation and augmentation (numpy, batched)."""

from __future__ import annotations

import numpy as np


def normalise_crops(crops: np.ndarray, mean, std) -> np.ndarray:
    """Per-channel standardisation with training-set statistics; crops are (N, C, H, W)."""
    mean = np.asarray(mean, dtype=np.float32)[None, :, None, None]
    std = np.asarray(std, dtype=np.float32)[None, :, None, None]
    return (crops - mean) / std


def augment_crops(crops: np.ndarray, rng: np.random.Generator, max_shift: int = 2,
                  noise: float = 0.05) -> np.ndarray:
    """Random flips, 90° rotations, small translations and noise, per crop (square crops)."""
    out = np.empty_like(crops)
    for i, c in enumerate(crops):
        c = np.rot90(c, k=int(rng.integers(4)), axes=(1, 2))
        if rng.random() < 0.5:
            c = c[:, :, ::-1]
        if max_shift:
            dy, dx = rng.integers(-max_shift, max_shift + 1, size=2)
            c = np.roll(c, (int(dy), int(dx)), axis=(1, 2))
        out[i] = c
    if noise:
        out += rng.normal(0, noise, size=out.shape).astype(np.float32)
    return out
