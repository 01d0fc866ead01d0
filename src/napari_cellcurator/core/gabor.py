"""The dCNN paper's classical baseline: Gabor filter-bank features + a linear regressor.

Each snippet (normalised like the CNN inputs) gives two images: the mean frame X̄ (texture) and
the mean absolute frame difference |dX| (motion). Each is filtered with a bank of complex
Gabor kernels (4 orientations × 3 frequencies); the features are the mean amplitude and the
energy (mean squared amplitude) of every response. A linear SVR maps features to the
proportion (clipped to [0, 1]).
"""

from __future__ import annotations

import numpy as np

from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.metrics import proportion_metrics

FREQUENCIES = (0.08, 0.16, 0.32)
N_ORIENTATIONS = 4


def gabor_bank(frequencies=FREQUENCIES, n_orientations: int = N_ORIENTATIONS) -> list[np.ndarray]:
    """Complex Gabor kernels (skimage.filters.gabor_kernel)."""
    from skimage.filters import gabor_kernel

    return [np.asarray(gabor_kernel(f, theta=np.pi * k / n_orientations))
            for f in frequencies for k in range(n_orientations)]


def gabor_features(snippets: np.ndarray, bank: list[np.ndarray] | None = None) -> np.ndarray:
    """(N, ℓ, S, S) snippets → (N, 2 images × len(bank) × 2) mean amplitudes and energies."""
    from scipy.signal import fftconvolve

    bank = gabor_bank() if bank is None else bank
    feats = []
    for x in np.asarray(snippets, dtype=np.float32):
        images = (x.mean(axis=0), np.abs(np.diff(x, axis=0)).mean(axis=0))
        row = []
        for img in images:
            for k in bank:
                # FFT convolution: same result as scipy.ndimage.convolve (constant padding)
                # for these large kernels, many times faster
                amp = np.abs(fftconvolve(img, k, mode="same"))
                row += [amp.mean(), (amp ** 2).mean()]
        feats.append(row)
    return np.asarray(feats, dtype=np.float64)


def _load_all(items: ItemSet, batch: int = 256) -> np.ndarray:
    idx = np.arange(len(items))
    return np.concatenate([items.load(idx[i:i + batch], "frames")
                           for i in range(0, len(items), batch)])


def gabor_baseline(train_items: ItemSet, val_items: ItemSet, c: float = 1.0,
                   seed: int = 0) -> dict:
    """Fit the Gabor + linear SVR baseline on labelled ``train_items``; score ``val_items``.

    Returns
    -------
    dict
        ``A`` (1 − mean |y − ŷ|), ``bce``, ``mae``, ``n`` on the labelled validation items,
        plus ``predictions`` (list of floats, validation order).
    """
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVR

    tr = train_items.subset(np.flatnonzero(train_items.labelled))
    va = val_items.subset(np.flatnonzero(val_items.labelled))
    x_tr, x_va = gabor_features(_load_all(tr)), gabor_features(_load_all(va))
    y_tr = tr.table["label"].astype(float).to_numpy()
    y_va = va.table["label"].astype(float).to_numpy()
    model = make_pipeline(StandardScaler(), LinearSVR(C=c, epsilon=0.0, max_iter=20000,
                                                      random_state=seed, dual="auto"))
    model.fit(x_tr, y_tr)
    pred = np.clip(model.predict(x_va), 0.0, 1.0)
    out = proportion_metrics(y_va, pred)
    out["predictions"] = pred.tolist()
    return out
