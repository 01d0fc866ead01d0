"""Model registry (versions, parent, current pointer, loading) and the project folder."""

from __future__ import annotations

import json

import pytest
import torch

from napari_cellcurator.core.errors import InputError, InputWarning, ModelFileError
from napari_cellcurator.core.models import build_model
from napari_cellcurator.core.store.modelio import ModelConfig, save_model
from napari_cellcurator.core.store.project import Project, default_folder
from napari_cellcurator.core.store.registry import ModelRegistry

SPEC = {"in_channels": 1, "n_outputs": 2, "input_size": 16}


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("seedcnn", **SPEC)


def _config(**kw) -> ModelConfig:
    return ModelConfig(task="celltype", arch="seedcnn", model_spec=dict(SPEC),
                       classes=["a", "b"], preprocessing={"read_options": {}}, **kw)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_versions_parent_and_current(tmp_path):
    reg = ModelRegistry(tmp_path / "models")
    assert reg.current() is None and reg.current_dir() is None and reg.versions() == []
    with pytest.raises(ModelFileError, match="no model"):
        reg.load()
    m1, m2, m3 = _model(1), _model(2), _model(3)
    c1 = _config(metrics={"macro_f1": 0.5})
    assert reg.add(m1, c1) == "v0001"
    assert c1.parent is None and c1.created  # first version has no parent
    c2 = _config(metrics={"macro_f1": 0.7})
    assert reg.add(m2, c2) == "v0002"
    assert c2.parent == "v0001" and reg.current() == "v0002"
    assert reg.add(m3, _config(), make_current=False) == "v0003"
    assert reg.current() == "v0002"
    assert reg.current_dir() == tmp_path / "models" / "v0002"

    versions = reg.versions()
    assert [v["name"] for v in versions] == ["v0001", "v0002", "v0003"]
    assert [v["parent"] for v in versions] == [None, "v0001", "v0002"]
    assert [v["current"] for v in versions] == [False, True, False]
    assert versions[1]["metrics"] == {"macro_f1": 0.7}
    assert {v["arch"] for v in versions} == {"seedcnn"} and versions[0]["task"] == "celltype"
    assert all(v["created"] and v["error"] is None for v in versions)


def test_load_current_and_named_versions(tmp_path):
    reg = ModelRegistry(tmp_path / "models")
    m1, m2 = _model(1), _model(2)
    reg.add(m1, _config())
    reg.add(m2, _config())
    loaded, cfg = reg.load()
    assert _same_weights(loaded, m2) and not loaded.training and cfg.parent == "v0001"
    old, _ = reg.load("v0001")
    assert _same_weights(old, m1)
    reg.set_current("v0001")
    assert _same_weights(reg.load()[0], m1)
    assert json.loads((tmp_path / "models" / "current.json").read_text()) == {
        "current": "v0001"}
    # a fresh registry object on the same folder sees the same state
    assert ModelRegistry(tmp_path / "models").current() == "v0001"
    x = torch.zeros(2, 1, 16, 16)
    assert torch.allclose(loaded(image=x), m2.eval()(image=x))


@pytest.mark.parametrize("bad", ["v9999", "../x", "latest", "v1"])
def test_set_current_refuses_unknown_versions(tmp_path, bad):
    reg = ModelRegistry(tmp_path / "models")
    reg.add(_model(0), _config())
    with pytest.raises(InputError):
        reg.set_current(bad)
    assert reg.current() == "v0001"


def test_corrupt_pointer_is_reported(tmp_path):
    reg = ModelRegistry(tmp_path / "models")
    reg.add(_model(0), _config())
    (tmp_path / "models" / "current.json").write_text("{not json")
    with pytest.raises(InputError, match="current.json"):
        reg.current()
    (tmp_path / "models" / "current.json").write_text('{"current": "v0007"}')
    with pytest.warns(InputWarning, match="v0007.*folder is gone"):
        assert reg.current() is None


def test_add_folder_copies_and_checks(tmp_path):
    src = save_model(tmp_path / "trained", _model(5), _config(metrics={"acc": 1.0}))
    reg = ModelRegistry(tmp_path / "models")
    reg.add(_model(1), _config())
    assert reg.add_folder(src) == "v0002"
    assert reg.current() == "v0002"
    assert _same_weights(reg.load()[0], _model(5))
    assert (src / "config.json").is_file()  # copied, not moved
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{}")
    with pytest.raises(ModelFileError):
        reg.add_folder(tmp_path / "broken")
    assert reg.names() == ["v0001", "v0002"]


def test_failed_save_leaves_no_version(tmp_path, monkeypatch):
    reg = ModelRegistry(tmp_path / "models")
    reg.add(_model(1), _config())

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        reg.add(_model(2), _config())
    assert reg.names() == ["v0001"] and reg.current() == "v0001"
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["current.json", "v0001"]


def test_leftover_temp_folders_are_ignored(tmp_path):
    models = tmp_path / "models"
    reg = ModelRegistry(models)
    (models / ".tmp-killed").mkdir()
    (models / ".tmp-killed" / "weights.safetensors").write_bytes(b"half")
    assert reg.add(_model(0), _config()) == "v0001"
    assert reg.names() == ["v0001"]


def test_project_folder(tmp_path):
    with Project(tmp_path / "proj", user="alice") as p:
        assert p.folder == tmp_path / "proj"
        assert p.journal.path == tmp_path / "proj" / "labels.sqlite"
        assert p.models.folder == tmp_path / "proj" / "models"
        p.journal.set_label("a", "x")
        p.models.add(_model(0), _config())
    with Project(tmp_path / "proj") as p:
        assert p.journal.label_of("a") == "x" and p.models.current() == "v0001"
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError):
        Project(tmp_path / "file")


def test_project_for_data_next_to_data(tmp_path):
    data = tmp_path / "exp" / "plate1.tif"
    data.parent.mkdir()
    data.write_bytes(b"")
    with Project.for_data(data, user="u") as p:
        assert p.folder == tmp_path / "exp" / "plate1.tif.cellcurator"
        assert p.info()["data"] == [str(data.resolve())]
        p.journal.set_label("a", "x")
    with Project.for_data(data) as p:  # same project again, data recorded once
        assert p.journal.label_of("a") == "x"
        assert p.info()["data"] == [str(data.resolve())]


def test_project_for_data_read_only_falls_back(tmp_path, monkeypatch):
    data = tmp_path / "share" / "plate1.tif"
    data.parent.mkdir()
    data.write_bytes(b"")
    monkeypatch.setenv("CELLCURATOR_DATA_DIR", str(tmp_path / "home"))
    # root ignores chmod, so simulate a read-only share by refusing file creation there
    import napari_cellcurator.core.store.project as project

    real = project._writable
    monkeypatch.setattr(project, "_writable",
                        lambda f: False if f == data.parent.resolve() else real(f))
    folder = default_folder(data)
    assert folder.parent == tmp_path / "home" / "projects"
    assert folder.name.startswith("plate1-") and folder.name.endswith(".cellcurator")
    with Project.for_data(data) as p:
        assert p.folder == folder and p.info()["data"] == [str(data.resolve())]
    assert not (tmp_path / "share" / "plate1.tif.cellcurator").exists()
    other = tmp_path / "share2" / "plate1.tif"  # same name elsewhere: another folder
    other.parent.mkdir()
    monkeypatch.setattr(project, "_writable", lambda f: False)
    assert default_folder(other) != folder


def test_saving_works_after_the_current_version_was_deleted_by_hand(tmp_path):
    import shutil

    reg = ModelRegistry(tmp_path / "models")
    reg.add(_model(1), _config())
    reg.add(_model(2), _config())
    shutil.rmtree(tmp_path / "models" / "v0002")
    with pytest.warns(InputWarning, match="folder is gone"):
        assert reg.current() is None  # no current model: train from scratch, predict says so
    config = _config()
    # never the deleted name again (journal events and lineage name it), nor a loop
    assert reg.add(_model(3), config) == "v0003"
    assert config.parent == "v0002" and reg.current() == "v0003"
    assert _same_weights(reg.load()[0], _model(3))


def test_the_trainers_parent_is_kept_and_the_newest_save_stays_current(tmp_path):
    reg = ModelRegistry(tmp_path / "models")
    reg.add(_model(1), _config())
    reg.add(_model(2), _config())
    started_from_v1 = _config(parent="v0001")  # a fine-tune of v0001 finishing after v0002
    assert reg.add(_model(3), started_from_v1) == "v0003"
    assert started_from_v1.parent == "v0001"
    # two saves finishing at once: the older one writing its pointer last stays behind
    reg._advance_current("v0002")
    assert reg.current() == "v0003"
    reg.set_current("v0001")  # a rollback by hand is still possible
    assert reg.current() == "v0001"


def test_saved_models_and_exports_are_readable_by_co_workers(tmp_path, monkeypatch):
    """Temp files are private (0600); what is published gets the umask's permissions, and a
    replaced file keeps its own."""
    import os
    import stat

    from napari_cellcurator.core.store import atomic

    monkeypatch.setattr(atomic, "_UMASK", 0o022)  # the usual one (read at import)
    reg = ModelRegistry(tmp_path / "models")
    reg.add(_model(1), _config())
    assert stat.S_IMODE((tmp_path / "models" / "v0001").stat().st_mode) == 0o755
    for f in (tmp_path / "models" / "v0001").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f
    assert stat.S_IMODE((tmp_path / "models" / "current.json").stat().st_mode) == 0o644
    shared = tmp_path / "labels.csv"
    atomic.atomic_write_text(shared, "a\n")
    os.chmod(shared, 0o664)
    atomic.atomic_write_text(shared, "b\n")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o664
