"""Fluorescence trace preprocessing: neuropil subtraction, ΔF/F, robust scaling, length.

Every function accepts traces as (T,) or (N, T) and is safe on NaN, constant and empty traces
(they come out finite, constant traces as zeros).
"""

from __future__ import annotations

import numpy as np

#: Suite2p's default neuropil coefficient.
NEUROPIL_COEF = 0.7


def _as2d(traces: np.ndarray, dtype=np.float64) -> tuple[np.ndarray, bool]:
    arr = np.asarray(traces, dtype=dtype)
    return (arr[None] if arr.ndim == 1 else arr), arr.ndim == 1


def fill_nan(traces: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Replace NaN/inf by linear interpolation along time (all-NaN rows become 0).

    Finite input already of ``dtype`` is returned as is (not copied): do not write into it."""
    x, one = _as2d(traces, dtype)
    finite = np.isfinite(x)
    if finite.all():  # the common case: no copy, no per-row loop
        return x[0] if one else x
    x = x.copy()
    t = np.arange(x.shape[1])
    for i in np.flatnonzero(~finite.all(axis=1)):
        row = x[i]  # a view: filled in place
        bad = ~finite[i]
        if bad.all():
            row[:] = 0.0
        elif bad.any():
            row[bad] = np.interp(t[bad], t[~bad], row[~bad])
    return x[0] if one else x


def neuropil_subtract(f: np.ndarray, fneu: np.ndarray | None,
                      coef: float = NEUROPIL_COEF) -> np.ndarray:
    """``F - coef * Fneu`` (Suite2p's convention); ``F`` unchanged when ``fneu`` is None."""
    f = np.asarray(f, dtype=np.float32)
    if fneu is None or coef == 0:
        return f
    fneu = np.asarray(fneu, dtype=np.float32)
    if fneu.shape != f.shape:
        raise ValueError(f"F {f.shape} and Fneu {fneu.shape} differ in shape")
    return f - np.float32(coef) * fneu


def delta_f_over_f(traces: np.ndarray, percentile: float = 20.0) -> np.ndarray:
    """ΔF/F with a per-trace percentile baseline F0 (guarded against F0 ≈ 0)."""
    x, one = _as2d(fill_nan(traces))
    if x.shape[1] == 0:
        return (x[0] if one else x).astype(np.float32)
    f0 = np.percentile(x, percentile, axis=1, keepdims=True)
    scale = np.maximum(np.abs(f0), 1e-3 * (np.abs(x).max(axis=1, keepdims=True) + 1e-12))
    out = ((x - f0) / np.where(scale > 0, scale, 1.0)).astype(np.float32)
    return out[0] if one else out


def row_median(x: np.ndarray) -> np.ndarray:
    """Median of each row of a 2-D array, (N, 1), from one partition (faster than np.median)."""
    n = x.shape[1]
    part = np.partition(x, n // 2, axis=1)
    upper = part[:, n // 2:n // 2 + 1]
    if n % 2:
        return upper
    # even n: the lower middle value is the largest of the left part of the partition
    return (part[:, :n // 2].max(axis=1, keepdims=True) + upper) / 2


def noise_sigma(traces: np.ndarray) -> np.ndarray:
    """Robust per-trace noise level: MAD of the first difference / √2 (ignores slow transients)."""
    # float32 input stays float32 (twice as fast medians); anything else is computed in float64
    dtype = np.float32 if np.asarray(traces).dtype == np.float32 else np.float64
    x, _ = _as2d(fill_nan(traces, dtype), dtype)
    if x.shape[1] < 3:
        return np.zeros(x.shape[0])
    d = np.diff(x, axis=1)
    mad = row_median(np.abs(d - row_median(d)))[:, 0]
    sigma = 1.4826 * mad / np.sqrt(2.0)
    fallback = x.std(axis=1)
    return np.where(sigma > 1e-12 * (np.abs(x).max(axis=1) + 1), sigma, fallback)


def robust_normalise(traces: np.ndarray, clip: tuple[float, float] = (-10.0, 40.0),
                     scale: float = 5.0) -> np.ndarray:
    """Scale-free trace: (F - median) / noise σ, clipped, divided by ``scale``.

    Makes traces from any format (raw photon counts, ΔF/F, CaImAn ``C``) comparable: what is
    left is the shape and size of transients relative to the noise.
    """
    # float32 halves the time of the medians (the scoring path runs this on every batch);
    # other input is centred in float64 first, so large raw counts lose nothing
    dtype = np.float32 if np.asarray(traces).dtype == np.float32 else np.float64
    x, one = _as2d(fill_nan(traces, dtype), dtype)
    if x.shape[1] == 0:
        return (x[0] if one else x).astype(np.float32)
    x = (x - row_median(x)).astype(np.float32, copy=False)
    sigma = noise_sigma(x)[:, None]
    z = np.divide(x, sigma, out=np.zeros_like(x), where=sigma > 0)
    out = (np.clip(z, *clip) / scale).astype(np.float32)
    return out[0] if one else out


def resample(traces: np.ndarray, length: int) -> np.ndarray:
    """Linear-interpolation resampling along time to ``length`` samples."""
    x, one = _as2d(fill_nan(traces))
    if x.shape[1] == length:
        out = x
    elif x.shape[1] == 0:
        out = np.zeros((x.shape[0], length))
    elif x.shape[1] == 1:
        out = np.repeat(x, length, axis=1)
    else:
        old = np.linspace(0.0, 1.0, x.shape[1])
        new = np.linspace(0.0, 1.0, length)
        out = np.stack([np.interp(new, old, row) for row in x])
    out = out.astype(np.float32)
    return out[0] if one else out


def centre_fit(traces: np.ndarray, length: int) -> np.ndarray:
    """The middle ``length`` samples; shorter traces are zero-padded around the centre (3CNet)."""
    x, one = _as2d(traces)
    t = x.shape[1]
    if t >= length:
        start = (t - length) // 2
        out = x[:, start:start + length]
    else:
        out = np.zeros((x.shape[0], length))
        start = (length - t) // 2
        out[:, start:start + t] = x
    out = out.astype(np.float32)
    return out[0] if one else out
