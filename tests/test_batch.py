"""Batch scoring on dask: threads, processes and a real dask.distributed LocalCluster agree."""

import numpy as np
import pandas as pd
import pytest

from napari_cellcurator.core.batch import predict_to_file, score_items
from napari_cellcurator.core.pipeline import predict_items, read_for_model
from napari_cellcurator.core.store.modelio import load_model


def test_threaded_dask_scores_match_plain_inference(tiny_celltype_model, jurkat_subset):
    model, config = load_model(tiny_celltype_model)
    items = read_for_model(config, str(jurkat_subset))
    _, direct = predict_items(model, config, items, device="cpu", batch_size=7)
    scored = score_items(str(tiny_celltype_model), items, "cpu", batch_size=7, scheduler="threads")
    np.testing.assert_allclose(scored, direct, atol=1e-5)


def test_lazy_dask_inputs_are_scored_batchwise(tiny_celltype_model, jurkat_subset):
    import dask.array as da

    model, config = load_model(tiny_celltype_model)
    items = read_for_model(config, str(jurkat_subset))
    _, direct = predict_items(model, config, items, device="cpu")
    items.arrays["image"] = da.from_array(items.arrays["image"], chunks=(5, -1, -1, -1))
    scored = score_items(str(tiny_celltype_model), items, "cpu", batch_size=5)
    np.testing.assert_allclose(scored, direct, atol=1e-5)


@pytest.mark.timeout(300)
def test_distributed_local_cluster_gives_identical_results(tiny_celltype_model, jurkat_subset,
                                                           tmp_path):
    pytest.importorskip("distributed")
    single = predict_to_file(str(tiny_celltype_model), str(jurkat_subset),
                             str(tmp_path / "single.csv"), device="cpu", batch_size=8)
    multi = predict_to_file(str(tiny_celltype_model), str(jurkat_subset),
                            str(tmp_path / "multi.parquet"), device="cpu", batch_size=8,
                            scheduler="local:2")
    a, b = pd.read_csv(single), pd.read_parquet(multi)
    assert list(a["item_id"]) == list(b["item_id"])
    assert list(a["prediction"]) == list(b["prediction"])
    np.testing.assert_allclose(a["probability"], b["probability"], atol=1e-5)


def test_zarr_output(tiny_celltype_model, jurkat_subset, tmp_path):
    import zarr

    out = predict_to_file(str(tiny_celltype_model), str(jurkat_subset), str(tmp_path / "p.zarr"),
                          device="cpu")
    root = zarr.open_group(str(out), mode="r")
    assert root["scores"].shape == (36, 3)
    assert len(root.attrs["item_ids"]) == 36


def test_default_batch_size_bounds_activation_memory():
    from napari_cellcurator.core.batch import default_batch_size
    from napari_cellcurator.core.io.items import ItemSet

    def items(**shapes):
        table = pd.DataFrame({"item_id": ["a"], "source": "", "label": [None]})
        return ItemSet(table, {k: np.zeros((1, *s), np.float32) for k, s in shapes.items()})

    crops = default_batch_size(items(image=(2, 40, 40)))
    snippets = default_batch_size(items(frames=(5, 64, 64)))
    assert crops == 256
    assert 16 <= snippets <= 128 and snippets & (snippets - 1) == 0
    assert default_batch_size(items(frames=(5, 512, 512))) == 16
