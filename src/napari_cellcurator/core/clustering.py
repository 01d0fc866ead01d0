"""Cluster items without labels on autoencoder features (the API behind ``cellcurator cluster``).

Pipeline: read items → train the task's autoencoder on them (or reuse a model folder) → latent
features (rotation-averaged, L2-normalised) → k-means (K by silhouette when not given) or
HDBSCAN → a 2-D PCA embedding for display → CSV ``item_id, cluster, x, y``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from napari_cellcurator.core.errors import CellCuratorError, InputError
from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.tasks import ReadOptions, Task, get_task
from napari_cellcurator.core.training import (
    TrainConfig,
    TrainingDone,
    TrainingFailed,
    TrainingUpdate,
)

#: total optimisation steps the default schedule aims at (a few minutes on a laptop CPU)
DEFAULT_STEPS = 200
MAX_SILHOUETTE_ITEMS = 2000


def default_config(n_items: int, epochs: int | None = None, seed: int = 0,
                   device: str = "cpu") -> TrainConfig:
    """Autoencoder schedule scaled to the data: ~``DEFAULT_STEPS`` steps, 3–40 epochs."""
    batch = int(min(64, max(8, n_items // 4)))
    steps = max(1, n_items // batch)
    if epochs is None:
        epochs = int(min(40, max(3, math.ceil(DEFAULT_STEPS / steps))))
    return TrainConfig(epochs=epochs, batch_size=batch, lr=2e-3, weight_decay=1e-4,
                       seed=seed, device=device)


@dataclass
class Features:
    """Latent features of items plus how they were obtained."""

    items: ItemSet
    features: np.ndarray
    model_dir: str | None
    trained: bool


def iter_item_features(task: Task, data: list[str] | str | None = None, channels=None,
                       model_dir: str | None = None, items: ItemSet | None = None,
                       epochs: int | None = None, seed: int = 0, device: str = "auto",
                       k: int | None = None) -> Generator[TrainingUpdate, None, Features]:
    """Autoencoder features of every item; yields training updates, returns :class:`Features`.

    ``model_dir`` holding a model folder is reused (its read options win); a ``model_dir``
    that does not exist yet receives the newly trained autoencoder. ``k`` (clusters to
    make) is checked against the items before any training.
    """
    from napari_cellcurator.core.device import resolve_device, seed_everything
    from napari_cellcurator.core.store.modelio import load_model
    from napari_cellcurator.core.unsupervised import encode_items

    dev = str(resolve_device(device))
    seed_everything(seed)
    if model_dir and (Path(model_dir) / "config.json").is_file():
        model, cfg = load_model(model_dir, dev)
        prep = cfg.preprocessing
        used = prep.get("read_options", {}).get("channels")
        if channels and list(channels) != list(used or []):
            import warnings

            from napari_cellcurator.core.errors import InputWarning

            warnings.warn(f"{model_dir}: reads channels {used or 'all'} as it was trained; "
                          f"channels {list(channels)} are not used", InputWarning, stacklevel=2)
        if items is None:
            items = task.read_many(_paths(data), task.read_options_from(prep))
        feats = encode_items(task, model, items, prep, device=dev)
        return Features(items, _normalise(feats), str(model_dir), False)
    options = ReadOptions(channels=list(channels) if channels else None)
    if items is None:
        items = task.read_many(_paths(data), options)
    if len(items) < 4:
        raise InputError(", ".join(_paths(data)) if data else None,
                         f"only {len(items)} items; clustering needs at least 4")
    if k is not None and not 1 <= k <= len(items):
        raise InputError(", ".join(_paths(data)) if data else None,
                         f"--k {k} clusters of {len(items)} items", "1 ≤ k ≤ the items")
    prep = task.fit_preprocessing(items, options)
    model = yield from _train_and_save(task, items, prep, options, epochs, seed, dev, model_dir)
    feats = encode_items(task, model, items, prep, device=dev)
    return Features(items, _normalise(feats), model_dir, True)


def _train_and_save(task, items, prep, options, epochs, seed, dev, model_dir):
    import torch

    from napari_cellcurator.core.models.registry import build_model
    from napari_cellcurator.core.store.modelio import ModelConfig, save_model
    from napari_cellcurator.core.unsupervised import (
        autoencoder_spec,
        fit_autoencoder,
        input_shapes,
    )

    config = default_config(len(items), epochs, seed, dev)
    ae_arch, ae_spec = autoencoder_spec(task, prep, input_shapes(task, items, prep))
    torch.manual_seed(seed)
    done = None
    for update in fit_autoencoder(task, build_model(ae_arch, **ae_spec), items, None, prep,
                                  config):
        if isinstance(update, TrainingFailed):
            raise CellCuratorError(f"autoencoder training failed: {update.message}")
        if isinstance(update, TrainingDone):
            done = update
        yield update
    if model_dir:
        cfg = ModelConfig(
            task=task.name, arch=ae_arch, model_spec=ae_spec, classes=[], preprocessing=prep,
            channels=options.channels, metrics={"kind": "autoencoder", "n_items": len(items)},
            seed=seed, hyperparameters=asdict(config), history=done.history,
            created=datetime.now(UTC).isoformat(timespec="seconds"))
        save_model(model_dir, done.model.cpu(), cfg)
    return done.model


def _paths(data) -> list[str]:
    if data is None:
        raise InputError(None, "no data given to cluster")
    return [str(data)] if isinstance(data, str | Path) else [str(d) for d in data]


def _normalise(feats: np.ndarray) -> np.ndarray:
    # cosine geometry: autoencoder latents differ in scale along directions that do not matter
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    return feats / np.maximum(norms, 1e-8)


def cluster_features(features: np.ndarray, k: int | None = None, method: str = "kmeans",
                     seed: int = 0, k_range: tuple[int, int] = (2, 10)
                     ) -> tuple[np.ndarray, dict]:
    """Cluster labels (-1 = HDBSCAN noise) and a summary (``k``, ``silhouette``, scores per K)."""
    from sklearn.cluster import HDBSCAN, KMeans

    n = len(features)
    if method == "hdbscan":
        labels = HDBSCAN(min_cluster_size=max(5, n // 50), copy=True).fit_predict(features)
        found = int(len(set(labels) - {-1}))
        return labels, {"k": found, "silhouette": _silhouette(features, labels, seed),
                        "noise": int((labels == -1).sum())}
    if method != "kmeans":
        raise ValueError(f"method must be 'kmeans' or 'hdbscan', not {method!r}")
    if k is not None:
        if not 1 <= k <= n:
            raise InputError(None, f"{k} clusters of {n} items", "1 ≤ k ≤ the items")
        labels = KMeans(k, n_init=4, random_state=seed).fit_predict(features)
        return labels, {"k": int(k), "silhouette": _silhouette(features, labels, seed)}
    scores, best = {}, (-np.inf, None, 0)
    for kk in range(k_range[0], min(k_range[1], n - 1) + 1):
        labels = KMeans(kk, n_init=4, random_state=seed).fit_predict(features)
        s = _silhouette(features, labels, seed)
        scores[kk] = s
        if s is not None and s > best[0]:
            best = (s, labels, kk)
    if best[1] is None:
        labels = np.zeros(n, dtype=int)
        return labels, {"k": 1, "silhouette": None, "silhouette_by_k": scores}
    return best[1], {"k": best[2], "silhouette": best[0], "silhouette_by_k": scores}


def _silhouette(features: np.ndarray, labels: np.ndarray, seed: int) -> float | None:
    from sklearn.metrics import silhouette_score

    keep = labels >= 0
    if len(set(labels[keep])) < 2 or keep.sum() < 3:
        return None
    size = min(int(keep.sum()), MAX_SILHOUETTE_ITEMS)
    return float(silhouette_score(features[keep], labels[keep], sample_size=size,
                                  random_state=seed))


def embed_2d(features: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(N, 2) display coordinates: PCA (fast, stable) or t-SNE (better separated groups)."""
    if len(features) < 3:
        return np.zeros((len(features), 2))
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(2, (len(features) - 1) / 3)))
        return TSNE(2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(
            features)
    from sklearn.decomposition import PCA

    return PCA(2, random_state=seed).fit_transform(features)


def agreement(labels_true, clusters: np.ndarray) -> dict:
    """NMI and ARI of clusters against the labelled items (None where no item is labelled)."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    truth = pd.Series(labels_true)
    mask = truth.notna().to_numpy()
    if mask.sum() < 2:
        return {"nmi": None, "ari": None, "n_labelled": int(mask.sum())}
    t = truth[mask].astype(str).to_numpy()
    return {"nmi": float(normalized_mutual_info_score(t, clusters[mask])),
            "ari": float(adjusted_rand_score(t, clusters[mask])), "n_labelled": int(mask.sum())}


def cluster(task: str = "celltype", data: list[str] | str | None = None,
            out_csv: str | None = None, k: int | None = None, channels: list[int] | None = None,
            model_dir: str | None = None, method: str = "kmeans", seed: int = 0,
            epochs: int | None = None, embedding: str = "pca", device: str = "auto",
            on_update: Callable[[TrainingUpdate], None] | None = None) -> dict:
    """Cluster unlabelled items of any task on autoencoder features (JSON-able result).

    See :func:`cluster_items` for the parameters and the result.
    """
    _, result = cluster_items(task, data, out_csv, k=k, channels=channels, model_dir=model_dir,
                              method=method, seed=seed, epochs=epochs, embedding=embedding,
                              device=device, on_update=on_update)
    return result


def cluster_items(*args, on_update: Callable[[TrainingUpdate], None] | None = None, **kwargs
                  ) -> tuple[pd.DataFrame, dict]:
    """:func:`iter_cluster_items` run to its end (``on_update`` sees every update)."""
    gen = iter_cluster_items(*args, **kwargs)
    while True:
        try:
            update = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_update is not None:
            on_update(update)


def iter_cluster_items(task: str = "celltype", data: list[str] | str | None = None,
                       out_csv: str | None = None, k: int | None = None,
                       channels: list[int] | None = None, model_dir: str | None = None,
                       method: str = "kmeans", seed: int = 0, epochs: int | None = None,
                       embedding: str = "pca", device: str = "auto",
                       items: ItemSet | None = None
                       ) -> Generator[TrainingUpdate, None, tuple[pd.DataFrame, dict]]:
    """Cluster unlabelled items of any task on autoencoder features.

    A generator: it yields the autoencoder's training updates (for progress bars and
    ``thread_worker``) and returns ``(table, result)``.

    Parameters
    ----------
    task, data, channels
        What to read (``channels`` e.g. ``[0, 2]`` for label-free Jurkat).
    out_csv
        Written atomically: ``item_id, cluster, x, y`` (x, y = 2-D embedding).
    k, method
        K-means with ``k`` clusters (chosen by silhouette over 2–10 when None), or HDBSCAN.
    model_dir
        Reuse the autoencoder (or any model) in this folder; if it does not exist, the
        autoencoder trained here is saved there.
    items
        Already-read items (widgets); ``data`` is then only used for messages.

    Returns
    -------
    table, result
        ``item_id, cluster, x, y`` per item (item order), and a JSON-able dict:
        ``n_items``, ``k``, ``silhouette``, ``cluster_sizes``, ``nmi``/``ari`` against
        existing labels (None without labels), ``majority_label`` per cluster, ``out``.
    """
    t = get_task(task)
    feats = yield from iter_item_features(t, data, channels, model_dir, items, epochs, seed,
                                          device, k)
    clusters, summary = cluster_features(feats.features, k, method, seed)
    xy = embed_2d(feats.features, embedding, seed)
    table = pd.DataFrame({"item_id": feats.items.table["item_id"].to_numpy(),
                          "cluster": clusters.astype(int), "x": xy[:, 0], "y": xy[:, 1]})
    if out_csv:
        from napari_cellcurator.core.store.atomic import atomic_write_text

        atomic_write_text(out_csv, table.to_csv(index=False))
    labels = feats.items.table["label"]
    result = {
        "task": t.name, "method": method, "n_items": len(table), **summary,
        "cluster_sizes": {str(c): int(n) for c, n in table["cluster"].value_counts()
                          .sort_index().items()},
        **agreement(labels, clusters), "majority_label": _majority(labels, clusters),
        "model_dir": feats.model_dir, "trained_autoencoder": feats.trained, "out": out_csv,
    }
    from napari_cellcurator.core.pipeline import _jsonable

    return table, _jsonable(result)


def _majority(labels: pd.Series, clusters: np.ndarray) -> dict:
    out = {}
    frame = pd.DataFrame({"label": labels.to_numpy(), "cluster": clusters})
    for c, grp in frame.dropna().groupby("cluster"):
        counts = grp["label"].astype(str).value_counts()
        out[str(c)] = {"label": counts.index[0], "fraction": float(counts.iloc[0] / len(grp))}
    return out
