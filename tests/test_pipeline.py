"""End-to-end: train → save → load → predict → evaluate through the one pipeline."""

import json

import numpy as np
import pytest
import torch

from napari_cellcurator.core.errors import ModelFileError
from napari_cellcurator.core.pipeline import TrainRequest, evaluate, predict, train
from napari_cellcurator.core.store.modelio import load_model, read_config
from napari_cellcurator.core.training import EpochDone, StepDone, TrainingDone


@pytest.fixture(scope="module")
def trained(jurkat_subset, tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    updates = []
    saved = train(TrainRequest(task="celltype", data=[str(jurkat_subset)], out=str(out),
                               arch="seedcnn", channels=[0, 2], epochs=2, batch_size=8),
                  updates.append)
    return out, saved, updates


def test_training_yields_typed_updates(trained):
    _, saved, updates = trained
    assert any(isinstance(u, StepDone) for u in updates)
    epochs = [u for u in updates if isinstance(u, EpochDone)]
    assert [e.epoch for e in epochs] == [1, 2]
    assert all(np.isfinite(e.train_loss) for e in epochs)
    assert any(isinstance(u, TrainingDone) for u in updates)


def test_model_folder_has_weights_and_full_config(trained):
    out, saved, _ = trained
    assert (out / "weights.safetensors").is_file()
    cfg = json.loads((out / "config.json").read_text())
    for key in ("task", "arch", "classes", "channels", "preprocessing", "data_hash", "metrics",
                "seed", "package_version", "model_spec"):
        assert key in cfg
    assert cfg["channels"] == [0, 2]
    assert cfg["classes"] == ["G1", "G2", "Prophase"]
    # the precision it trained in is on record: bf16 where this CPU has it natively
    from napari_cellcurator.core.device import cpu_has_native_bf16

    hyper = cfg["hyperparameters"]
    assert hyper["amp"] is cpu_has_native_bf16()
    assert hyper["amp_dtype"] == ("bfloat16" if cpu_has_native_bf16() else None)


def test_reloaded_model_predicts_like_the_trained_one(trained, jurkat_subset):
    out, saved, _ = trained
    model, config = load_model(out)
    x = torch.randn(4, 2, 40, 40)
    with torch.inference_mode():
        assert torch.allclose(model(image=x), saved.model.eval()(image=x), atol=1e-5)
    table = predict(str(out), str(jurkat_subset), device="cpu")
    assert len(table) == 36
    assert {"item_id", "prediction", "probability", "uncertainty"} <= set(table.columns)
    assert table["probability"].between(0, 1).all()


def test_evaluate_reports_contract_fields(trained, jurkat_subset):
    out, _, _ = trained
    m = evaluate(str(out), str(jurkat_subset), device="cpu")
    for key in ("n", "accuracy", "macro_f1", "per_class", "confusion"):
        assert key in m
    assert m["n"] == 36
    assert set(m["per_class"]) == {"G1", "G2", "Prophase"}
    assert np.array(m["confusion"]).sum() == 36


def test_same_seed_same_predictions(jurkat_subset, tmp_path):
    tables = []
    for run in range(2):
        out = tmp_path / f"m{run}"
        train(TrainRequest(task="celltype", data=[str(jurkat_subset)], out=str(out),
                           arch="seedcnn", channels=[0, 2], epochs=1, batch_size=8, seed=3))
        tables.append(predict(str(out), str(jurkat_subset), device="cpu"))
    assert np.array_equal(tables[0]["probability"].to_numpy(), tables[1]["probability"].to_numpy())


def test_broken_config_is_refused(trained, tmp_path):
    out, _, _ = trained
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text('{"task": "celltype"}')
    with pytest.raises(ModelFileError, match="lacks"):
        read_config(bad)


def test_init_weights_that_do_not_fit_are_said(tiny_celltype_model, jurkat_subset, tmp_path):
    """The init model saw channels 0,2; training on all three leaves its stem random: say so
    (a new head for other classes is expected and silent)."""
    import warnings

    from napari_cellcurator.core.errors import InputWarning
    from napari_cellcurator.core.pipeline import TrainRequest, train

    with pytest.warns(InputWarning, match="do not fit the new model.*other channels"):
        train(TrainRequest(task="celltype", data=[str(jurkat_subset)], out=str(tmp_path / "a"),
                           arch="seedcnn", epochs=1, batch_size=8,
                           init=str(tiny_celltype_model)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)
        train(TrainRequest(task="celltype", data=[str(jurkat_subset)], out=str(tmp_path / "b"),
                           arch="seedcnn", channels=[0, 2], epochs=1, batch_size=8,
                           init=str(tiny_celltype_model)))
