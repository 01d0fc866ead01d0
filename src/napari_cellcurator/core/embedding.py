"""Penultimate-layer features of a trained model and their 2-D embedding."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from napari_cellcurator.core.io.items import ItemSet


def _last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no linear head to take features before")
    return linears[-1]


def extract_features(model: nn.Module, config, items: ItemSet, batch_size: int = 256,
                     device: str | torch.device = "cpu") -> np.ndarray:
    """Input of the model's last linear layer (the penultimate representation), ``(N, D)``.

    ``config`` is the model's :class:`ModelConfig` (task and preprocessing). Batched, no
    augmentation, under ``inference_mode``.
    """
    from napari_cellcurator.core.tasks import get_task
    from napari_cellcurator.core.training import iterate_batches

    task = get_task(config.task)
    captured: list[torch.Tensor] = []
    hook = _last_linear(model).register_forward_hook(
        lambda _m, inp, _out: captured.append(inp[0].detach().float().cpu()))
    rng = np.random.default_rng(0)
    model = model.to(device).eval()
    try:
        with torch.inference_mode():
            for idx in iterate_batches(len(items), batch_size):
                batch = task.make_batch(items, idx, config.preprocessing, augment=False, rng=rng)
                model(**{k: v.to(device) for k, v in batch.items()})
    finally:
        hook.remove()
    if not captured:
        return np.zeros((0, _last_linear(model).in_features), dtype=np.float32)
    return torch.cat(captured).reshape(len(items), -1).numpy()


def embed_2d(features: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """``(N, D)`` features → ``(N, 2)`` coordinates by PCA or t-SNE (standardised first)."""
    n = len(features)
    if n == 0:  # no items (everything filtered out): nothing to place
        return np.zeros((0, 2), np.float32)
    x = np.asarray(features, dtype=np.float64).reshape(n, -1)
    if n < 3 or x.shape[1] < 2:  # nothing to project: spread points on a line
        out = np.zeros((n, 2))
        out[:, 0] = x[:, 0] if x.shape[1] else np.arange(n)
        return out.astype(np.float32)
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-8)
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(x).astype(np.float32)
    if method == "tsne":
        from sklearn.decomposition import PCA
        from sklearn.manifold import TSNE

        if x.shape[1] > 50 and n > 50:  # usual speed-up: t-SNE on the top principal components
            x = PCA(n_components=50, random_state=seed).fit_transform(x)
        perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
        return TSNE(n_components=2, perplexity=perplexity, init="pca",
                    random_state=seed).fit_transform(x).astype(np.float32)
    raise ValueError(f"unknown embedding method {method!r}; use 'pca' or 'tsne'")
