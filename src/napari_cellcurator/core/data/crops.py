"""Crops: squaring, resizing, normalisation and augmentation (numpy, batched)."""

from __future__ import annotations

import numpy as np
import torch


def pad_to_square(arr: np.ndarray) -> np.ndarray:
    """Pad a ``(C, H, W)`` crop to a square with its per-channel border median.

    Keeps the aspect ratio (cell shape is a class feature, e.g. ovalocytes) when crops of
    varying size are brought to one input size.
    """
    h, w = arr.shape[1:]
    return arr if h == w else pad_centred(arr, max(h, w))


def pad_centred(arr: np.ndarray, side: int) -> np.ndarray:
    """A ``(C, H, W)`` crop (H, W ≤ ``side``) centred on a ``side`` square filled with the
    per-channel median of its border (the background around a cell); float32."""
    c, h, w = arr.shape
    border = np.concatenate([arr[:, 0, :], arr[:, -1, :], arr[:, :, 0], arr[:, :, -1]], axis=1)
    out = np.empty((c, side, side), dtype=np.float32)
    # float64: the median averages two values, which can overflow float32 near its maximum
    out[:] = np.median(border.astype(np.float64), axis=1).astype(np.float32)[:, None, None]
    y0, x0 = (side - h) // 2, (side - w) // 2
    out[:, y0:y0 + h, x0:x0 + w] = arr
    return out


def resize_chw(arr: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a ``(C, H, W)`` image to ``(C, size, size)`` (float32)."""
    if arr.shape[1:] == (size, size):
        return arr.astype(np.float32)
    from skimage.transform import resize

    shrinking = max(arr.shape[1:]) > size
    return resize(arr.astype(np.float32), (arr.shape[0], size, size), order=1,
                  preserve_range=True, anti_aliasing=shrinking).astype(np.float32)


def normalise_crops(crops: np.ndarray, mean, std) -> np.ndarray:
    """Per-channel standardisation with training-set statistics; crops are (N, C, H, W).

    Dataset statistics (not per-cell) keep the absolute brightness and size of a cell, which
    carry class information (e.g. DNA content / cell size over the cell cycle).
    """
    mean = np.asarray(mean, dtype=np.float32)[None, :, None, None]
    std = np.asarray(std, dtype=np.float32)[None, :, None, None]
    return (crops - mean) / std


def normalise_per_cell(crops: np.ndarray) -> np.ndarray:
    """Per-crop, per-channel standardisation (removes brightness; for varying illumination)."""
    mean = crops.mean(axis=(2, 3), keepdims=True)
    std = crops.std(axis=(2, 3), keepdims=True) + 1e-6
    return (crops - mean) / std


def _shift(c: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate a (C, H, W) crop, repeating edge pixels (no wrap-around of the far side)."""
    if dy == 0 and dx == 0:
        return c
    h, w = c.shape[1:]
    ys = np.clip(np.arange(h) - dy, 0, h - 1)
    xs = np.clip(np.arange(w) - dx, 0, w - 1)
    return c[:, ys][:, :, xs]


def augment_crops(crops: np.ndarray, rng: np.random.Generator, max_shift: int = 2,
                  noise: float = 0.05, blur_p: float = 0.0, gain: float = 0.0,
                  symmetries: list | None = None) -> np.ndarray:
    """Random flips, 90° rotations, small translations, blur, gain and noise, per crop.

    The seed paper's class-balancing augmentation (affine moves, blur and noise); crops are
    already normalised, so ``noise`` and ``gain`` are in units of the dataset std.
    ``symmetries``: the (quarter turns, mirror) pairs to draw from (default: all eight; see
    :func:`dataset_symmetries` for images with a fixed optical axis).
    """
    views = [tuple(v) for v in symmetries] if symmetries else list(VIEW_SETS[8])
    whole_group = set(views) == set(VIEW_SETS[8])
    out = np.empty_like(crops)
    for i, c in enumerate(crops):
        if whole_group:  # turn, then mirror half of the time (the draws models were trained on)
            turns, mirror = int(rng.integers(4)), bool(rng.random() < 0.5)
        else:
            turns, mirror = views[int(rng.integers(len(views)))]
        c = np.rot90(c, k=int(turns), axes=(1, 2))
        if mirror:
            c = c[:, :, ::-1]
        if max_shift:
            dy, dx = rng.integers(-max_shift, max_shift + 1, size=2)
            c = _shift(c, int(dy), int(dx))
        if blur_p and rng.random() < blur_p:
            from scipy.ndimage import gaussian_filter

            c = gaussian_filter(c, sigma=(0, *[float(rng.uniform(0.3, 1.0))] * 2))
        out[i] = c
    if gain:
        out *= rng.uniform(1 - gain, 1 + gain, size=(len(out), out.shape[1], 1, 1)).astype(
            np.float32)
    if noise:
        out += rng.normal(0, noise, size=out.shape).astype(np.float32)
    return out


#: a mean crop at least this correlated with its flipped/turned self counts as symmetric under
#: that transform (Jurkat IFC dark field: 0.93 up-down, 0.02 left-right; smears: > 0.9 all)
SYMMETRY_MIN_CORRELATION = 0.8
#: test-time views as (quarter turns, horizontal flip): 2 = identity + mirror, 4 = the four
#: rotations, 8 = the whole dihedral group of the square
VIEW_SETS = {
    1: ((0, False),),
    2: ((0, False), (0, True)),
    4: ((0, False), (1, False), (2, False), (3, False)),
    8: tuple((k, f) for f in (False, True) for k in range(4)),
}


def dihedral_transform(image: np.ndarray, turns: int, mirror: bool) -> np.ndarray:
    """``image`` (..., H, W) turned ``turns`` quarter turns, then mirrored left-right."""
    out = np.rot90(image, k=int(turns), axes=(-2, -1))
    return out[..., ::-1] if mirror else out


def dataset_symmetries(crops: np.ndarray, min_correlation: float = SYMMETRY_MIN_CORRELATION
                       ) -> list[tuple[int, bool]]:
    """The flips/rotations under which the data set's mean crop looks the same.

    Cells on a slide have no preferred orientation, but imaging flow cytometry has a fixed
    optical axis: its dark-field (side-scatter) channel is lit from one side, so its mean
    crop is far from mirror-symmetric, and turning crops in augmentation shows the network
    images the instrument never makes. A transform is kept when, in every channel with a
    consistent structure, the mean crop's correlation with its transformed self is at least
    ``min_correlation``.

    Parameters
    ----------
    crops
        ``(N, C, S, S)`` crops (a sample of the training set is enough).

    Returns
    -------
    list of (int, bool)
        ``(quarter turns, mirror)`` pairs, identity first; all eight for orientation-free data.
    """
    crops = np.asarray(crops, dtype=np.float32)
    mean = crops.mean(axis=0)
    mean = mean - mean.mean(axis=(1, 2), keepdims=True)
    spread = crops.std(axis=0).mean(axis=(1, 2)) + 1e-6
    # structure in the mean crop counts only when it stands out from the cell-to-cell spread
    # and from the mean's own sampling noise (a few random crops never look symmetric)
    noise_floor = np.maximum(0.1, 4.0 / np.sqrt(len(crops))) * spread
    structured = mean.std(axis=(1, 2)) > noise_floor
    keep = []
    for turns, mirror in VIEW_SETS[8]:
        moved = dihedral_transform(mean, turns, mirror)
        num = (mean * moved).sum(axis=(1, 2))
        den = np.sqrt((mean ** 2).sum(axis=(1, 2)) * (moved ** 2).sum(axis=(1, 2))) + 1e-12
        corr = num / den
        if np.all(corr[structured] >= min_correlation):
            keep.append((int(turns), bool(mirror)))
    return keep


def dihedral_views(image: torch.Tensor, n_views: int,
                   allowed: list | None = None) -> list[torch.Tensor]:
    """``n_views`` (1, 2, 4 or 8) flipped/rotated copies of a ``(B, C, H, W)`` batch.

    Cells have no preferred orientation and training already sees flips and rotations, so
    averaging predictions over such views removes orientation noise (test-time augmentation).
    ``allowed``: only the (quarter turns, mirror) pairs training augmented with (see
    :func:`dataset_symmetries`); the identity is always kept.
    """
    if n_views not in VIEW_SETS:
        raise ValueError(f"n_views must be one of {sorted(VIEW_SETS)}, not {n_views}")
    views = VIEW_SETS[n_views]
    if allowed is not None:
        keep = {(int(k), bool(m)) for k, m in allowed} | {(0, False)}
        views = tuple(v for v in views if v in keep)
    out = []
    for k, flip in views:
        view = torch.rot90(image, k, dims=(2, 3)) if k else image
        out.append(torch.flip(view, dims=(3,)) if flip else view)
    return out
