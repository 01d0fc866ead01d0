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
    # written again: replaced whole, nothing left beside it
    predict_to_file(str(tiny_celltype_model), str(jurkat_subset), str(out), device="cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.zarr"]
    taken = tmp_path / "taken.zarr"
    taken.write_text("a file, not a folder")
    from napari_cellcurator.core.errors import InputError

    with pytest.raises(InputError, match="taken.zarr.*is a file"):
        predict_to_file(str(tiny_celltype_model), str(jurkat_subset), str(taken), device="cpu")
    assert taken.read_text() == "a file, not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.zarr", "taken.zarr"]


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


def test_no_items_give_an_empty_table_with_every_column(tiny_celltype_model, jurkat_subset):
    """A Suite2p plane without ROIs or a frame without points: empty results, not a crash."""
    model, config = load_model(tiny_celltype_model)
    items = read_for_model(config, str(jurkat_subset)).subset([])
    table, scores = predict_items(model, config, items, device="cpu")
    assert scores.shape == (0, len(config.classes)) and len(table) == 0
    assert {"prediction", "probability", "uncertainty"} <= set(table.columns)
    assert {f"prob_{c}" for c in config.classes} <= set(table.columns)
    batch_scores = score_items(str(tiny_celltype_model), items, "cpu")
    assert batch_scores.shape == (0, len(config.classes))


def test_a_model_saved_over_its_folder_is_scored_anew(tiny_celltype_model, jurkat_subset,
                                                      tmp_path):
    """Batch scoring caches the model per process; saving another model into the same folder
    (a notebook's train → predict → train again) must not score with the old one."""
    import shutil

    import torch

    from napari_cellcurator.core.store.modelio import save_model

    folder = tmp_path / "model"
    shutil.copytree(tiny_celltype_model, folder)
    model, config = load_model(folder)
    items = read_for_model(config, str(jurkat_subset))
    before = score_items(str(folder), items, "cpu")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    save_model(folder, model, config)
    after = score_items(str(folder), items, "cpu")
    _, direct = predict_items(load_model(folder)[0], config, items, device="cpu")
    np.testing.assert_allclose(after, direct, atol=1e-5)
    assert not np.allclose(after, before, atol=1e-3)
