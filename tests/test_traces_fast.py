"""The trace preprocessing's fast paths give the same numbers as the plain numpy versions."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellcurator.core.data.traces import fill_nan, noise_sigma, robust_normalise, row_median


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 200, 201])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_median_equals_numpy(n, dtype):
    x = np.random.default_rng(n).normal(size=(6, n)).astype(dtype)
    assert np.allclose(row_median(x)[:, 0], np.median(x, axis=1))


def test_fill_nan_fills_only_bad_rows_and_leaves_input_alone():
    x = np.arange(20, dtype=np.float64).reshape(2, 10)
    x[1, 3:5] = np.nan
    original = x.copy()
    out = fill_nan(x)
    assert np.array_equal(out[0], original[0])
    assert np.allclose(out[1], np.arange(10, 20))  # linear interpolation over the gap
    assert np.array_equal(np.isnan(x), np.isnan(original))  # the caller's array is unchanged
    assert np.array_equal(fill_nan(np.full((1, 5), np.nan)), np.zeros((1, 5)))


def test_robust_normalise_float32_matches_float64():
    rng = np.random.default_rng(0)
    traces = 1e4 + 30 * rng.normal(size=(8, 500))
    traces[:, 100:110] += 600  # a transient
    a = robust_normalise(traces.astype(np.float32))
    b = robust_normalise(traces)
    assert a.dtype == b.dtype == np.float32
    assert np.allclose(a, b, atol=2e-3)
    assert np.allclose(noise_sigma(traces.astype(np.float32)), noise_sigma(traces), rtol=1e-3)
