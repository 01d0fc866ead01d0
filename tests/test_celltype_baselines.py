"""Celltype: baselines (CNN vs kNN/SVM, data-volume curve) and embeddings, on real crops."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_cellcurator.core.baselines import compare, stratified_fraction
from napari_cellcurator.core.embedding import embed_2d, extract_features


def test_stratified_fraction_keeps_every_class():
    y = np.array([0] * 50 + [1] * 10 + [2])
    idx = stratified_fraction(y, 0.1, seed=0)
    assert np.bincount(y[idx]).tolist() == [5, 1, 1]
    assert np.array_equal(idx, stratified_fraction(y, 0.1, seed=0))


def test_compare_runs_on_a_tiny_real_subset(jurkat_subset, tmp_path, monkeypatch):
    import napari_cellcurator.core.training as training

    kept = []

    def spy(task, model, train, val, prep, classes, config, arch=""):
        kept.append(config.keep)
        return real_fit(task, model, train, val, prep, classes, config, arch)

    real_fit = training.fit
    monkeypatch.setattr(training, "fit", spy)
    res = compare("celltype", [str(jurkat_subset)], [0, 2], str(tmp_path), fractions=(0.5, 1.0),
                  epochs=1)
    assert [p["fraction"] for p in res["curve"]] == [0.5, 1.0]
    assert [p["epochs"] for p in res["curve"]] == [2, 1]  # ~equal steps per point
    # the CNN's epoch is not picked on the validation set the comparison reports
    assert kept == ["last", "last"]
    assert res["curve"][0]["n_train"] < res["curve"][1]["n_train"] == res["n_train"]
    for method in ("cnn", "knn_pixels", "svm_pixels", "knn_cnn", "svm_cnn"):
        assert 0 <= res["curve"][1][method]["accuracy"] <= 1, method
        assert res["full"][method]["n"] == res["n_val"]
    saved = json.loads((tmp_path / "compare.json").read_text())
    assert saved["curve"] == res["curve"]
    assert (tmp_path / "compare.png").stat().st_size > 1000


def test_extract_features_and_embedding(tiny_celltype_model, jurkat_subset):
    from napari_cellcurator.core.pipeline import read_for_model
    from napari_cellcurator.core.store.modelio import load_model

    model, config = load_model(str(tiny_celltype_model))
    items = read_for_model(config, str(jurkat_subset))
    feats = extract_features(model, config, items, batch_size=7)  # several batches
    assert feats.shape == (len(items), 256) and np.isfinite(feats).all()
    again = extract_features(model, config, items.subset(np.arange(5)))
    np.testing.assert_allclose(again, feats[:5], rtol=1e-4, atol=1e-5)
    for method in ("pca", "tsne"):
        xy = embed_2d(feats, method)
        assert xy.shape == (len(items), 2) and np.isfinite(xy).all()
    assert embed_2d(feats[:2]).shape == (2, 2)
    with pytest.raises(ValueError):
        embed_2d(feats, "umap-nope")


def test_resnet_features_are_pooled_width(jurkat_subset):
    from napari_cellcurator.core.models.registry import build_model
    from napari_cellcurator.core.pipeline import TrainRequest, prepare_training
    from napari_cellcurator.core.store.modelio import ModelConfig

    task, arch, classes, prep, spec, _, train, _, _ = prepare_training(
        TrainRequest(task="celltype", data=[str(jurkat_subset)], channels=[0, 2], arch="resnet"))
    model = build_model(arch, **spec)
    config = ModelConfig(task="celltype", arch=arch, model_spec=spec, classes=classes,
                         preprocessing=prep)
    feats = extract_features(model, config, train.subset(np.arange(4)))
    assert feats.shape == (4, model.head[-1].in_features)
