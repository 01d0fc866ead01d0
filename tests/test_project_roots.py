"""One data set, one project, whatever form of its path is typed; labels never silently lost.

Found by an adversarial review: labels made with ``--data rec/suite2p/plane0`` were missing
from ``export --data rec --write-back``; ``sess.tif`` and ``sess.hdf5`` shared one project;
a read-only project was silently replaced by an empty one; predictions of another recording
were written into ``iscell.npy``.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest

import napari_cellcurator.core.store.project as project_module
from napari_cellcurator.core.curation import check_predictions_match, curated_table
from napari_cellcurator.core.errors import InputError, InputWarning
from napari_cellcurator.core.io.roots import dataset_root
from napari_cellcurator.core.store.project import Project, default_folder
from napari_cellcurator.core.tasks import ReadOptions, get_task

SAMPLE_PLANE = Path(__file__).resolve().parents[1] / "sample_data" / "cellness_sim" / "plane0"


@pytest.fixture
def recording(tmp_path) -> Path:
    rec = tmp_path / "rec"
    shutil.copytree(SAMPLE_PLANE, rec / "suite2p" / "plane0")
    return rec


def test_every_form_of_a_suite2p_recording_is_one_data_set(recording):
    plane = recording / "suite2p" / "plane0"
    forms = [recording, recording / "suite2p", plane, plane / "stat.npy", plane / "F.npy"]
    assert {dataset_root(f) for f in forms} == {recording / "suite2p"}
    folders = {default_folder(dataset_root(f)) for f in forms}
    # inside the recording folder: the labels travel when it is copied or moved
    assert folders == {recording / "suite2p.cellcurator"}


def test_other_data_are_their_own_root(tmp_path):
    movie = tmp_path / "movie.tif"
    movie.write_bytes(b"")
    assert dataset_root(movie) == movie.resolve()
    minian = tmp_path / "minian"
    for store in ("A.zarr", "C.zarr"):
        (minian / store).mkdir(parents=True)
    assert dataset_root(minian / "A.zarr") == minian


def test_labels_set_through_a_plane_are_found_from_the_recording(recording, monkeypatch):
    with Project.for_data(recording / "suite2p" / "plane0") as p:
        p.journal.set_label("rec/suite2p/plane0:0", "not_cell")
    monkeypatch.chdir(recording.parent)
    with Project.for_data("rec") as p:
        assert p.journal.label_of("rec/suite2p/plane0:0") == "not_cell"


def test_suite2p_ids_do_not_depend_on_the_working_folder(recording, monkeypatch):
    task = get_task("cellness")
    absolute = task.read_many([recording / "suite2p" / "plane0"], ReadOptions())
    monkeypatch.chdir(recording / "suite2p")
    relative = task.read_many(["plane0"], ReadOptions())
    assert list(relative.table["item_id"]) == list(absolute.table["item_id"])
    assert absolute.table["item_id"].iloc[0] == "rec/suite2p/plane0:0"


def test_files_with_one_stem_have_their_own_projects(tmp_path):
    movie, results = tmp_path / "sess.tif", tmp_path / "sess.hdf5"
    movie.write_bytes(b"")
    results.write_bytes(b"")
    assert default_folder(movie) != default_folder(results)
    assert default_folder(movie) == tmp_path / "sess.tif.cellcurator"


def test_a_project_of_an_earlier_version_is_still_found(tmp_path):
    data = tmp_path / "plate1.tif"
    data.write_bytes(b"")
    legacy = tmp_path / "plate1.cellcurator"
    legacy.mkdir()
    (legacy / "project.json").write_text(f'{{"data": ["{data.resolve()}"]}}')
    assert default_folder(data) == legacy
    other = tmp_path / "plate1.png"  # same stem, not named by that project
    other.write_bytes(b"")
    assert default_folder(other) == tmp_path / "plate1.png.cellcurator"


def _read_only(monkeypatch, *folders: Path) -> None:
    """Root ignores chmod: make ``folders`` (and everything in them) look unwritable."""
    real = project_module._writable
    blocked = [f.resolve() for f in folders]
    monkeypatch.setattr(project_module, "_writable", lambda f: real(f) and not any(
        Path(f).resolve() == b or b in Path(f).resolve().parents for b in blocked))


@pytest.mark.parametrize("name", ["plate1.tif", "crops"])
def test_a_read_only_project_is_continued_in_a_copy_not_replaced(tmp_path, monkeypatch, name):
    monkeypatch.setenv("CELLCURATOR_DATA_DIR", str(tmp_path / "home"))
    data = tmp_path / "share" / name
    data.parent.mkdir()
    if data.suffix:
        data.write_bytes(b"")
    else:  # a folder: its project's name is also what earlier versions called it
        data.mkdir()
    with Project.for_data(data) as p:
        beside = p.folder
        p.journal.set_label("a", "G2")
    _read_only(monkeypatch, data.parent)
    with pytest.warns(InputWarning, match="cannot be written.*copied"):
        p = Project.for_data(data)
    with p:
        assert p.folder.is_relative_to(tmp_path / "home")
        assert p.journal.label_of("a") == "G2"  # the read-only project's label is kept
        p.journal.set_label("b", "G1")
    assert (beside / "labels.sqlite").is_file()  # the original is untouched


def test_labels_made_while_read_only_are_found_when_writable_again(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLCURATOR_DATA_DIR", str(tmp_path / "home"))
    data = tmp_path / "share" / "plate1.tif"
    data.parent.mkdir()
    data.write_bytes(b"")
    with monkeypatch.context() as m:
        _read_only(m, data.parent)
        with Project.for_data(data) as p:
            p.journal.set_label("a", "G2")
    with pytest.warns(InputWarning, match="move that folder"):
        p = Project.for_data(data)
    with p:
        assert p.journal.label_of("a") == "G2"


def test_predictions_of_other_data_are_refused(recording, tmp_path):
    recording = recording.resolve()
    items = pd.DataFrame({"item_id": ["a:0", "a:1"], "source": str(recording)})
    other = tmp_path / "other"
    other.mkdir()
    ours = pd.DataFrame({"item_id": ["a:0"], "source": str(recording), "prediction": "cell"})
    check_predictions_match(items, ours, "p.csv")
    with pytest.raises(InputError, match="predicted for"):
        check_predictions_match(items, ours.assign(source=str(other)), "p.csv")
    with pytest.raises(InputError, match="none of this data's items"):
        check_predictions_match(items, ours.assign(item_id="b:0"), "p.csv")
    # relative sources cannot be judged (they depend on the folder predict ran in)
    check_predictions_match(items, ours.assign(source="day1/plane0"), "p.csv")
    # predict records the data set it read: judged exactly, however --data was typed
    recorded = ours.assign(source="day1/plane0", data_root=str(recording / "suite2p"))
    check_predictions_match(items, recorded, "p.csv", data=recording / "suite2p")
    with pytest.raises(InputError, match="predicted for"):
        check_predictions_match(items, recorded.assign(data_root=str(other)), "p.csv",
                                data=recording)


def test_predict_records_the_data_set_it_read(recording, tmp_path, monkeypatch):
    from napari_cellcurator.core.batch import predict_to_file
    from napari_cellcurator.core.tasks import get_task

    monkeypatch.chdir(recording / "suite2p")
    out = predict_to_file(get_task("cellness").shipped_model(), "plane0", str(tmp_path / "p.csv"),
                          device="cpu")
    assert set(pd.read_csv(out)["data_root"]) == {str(recording / "suite2p")}


def test_journal_labels_of_no_item_are_reported_on_export():
    items = pd.DataFrame({"item_id": ["new:0", "new:1"], "label": ["cell", None]})
    journal = pd.DataFrame({"item_id": ["old:0"], "label": ["not_cell"], "source": ["human"]})
    with pytest.warns(InputWarning, match="1 label.*no item.*old:0"):
        curated_table(items, None, journal)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        curated_table(items, None, journal.assign(item_id="new:0"))


def test_plane_projects_of_an_earlier_version_are_merged_once(recording):
    # versions before December 2026 kept a project beside the path as typed: one per plane
    # (and rec.cellcurator for the recording folder); their labels join the recording's
    plane = recording / "suite2p" / "plane0"
    for folder, item in ((plane.parent / "plane0.cellcurator", "rec/suite2p/plane0:0"),
                         (recording.parent / "rec.cellcurator", "rec/suite2p/plane0:1")):
        with Project(folder) as p:
            p.journal.set_label(item, "not_cell")
    with pytest.warns(InputWarning, match="1 label.*earlier version") as record:
        p = Project.for_data(plane)
    assert len(record) == 2
    with p:
        assert p.folder == recording / "suite2p.cellcurator"
        assert p.journal.label_of("rec/suite2p/plane0:0") == "not_cell"
        assert p.journal.label_of("rec/suite2p/plane0:1") == "not_cell"
        assert list(p.journal.history("rec/suite2p/plane0:0")["user"])[-1]  # who is kept
        assert p.journal.undo() == []  # an undo never takes back the earlier curation
        p.journal.set_label("rec/suite2p/plane0:1", "cell")  # a newer decision
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # merged once: no second copy, no warning
        with Project.for_data(recording) as p:
            assert p.journal.label_of("rec/suite2p/plane0:1") == "cell"


def test_labels_of_another_plane_are_not_orphans():
    # one project holds every plane; exporting plane 0 alone must not report plane 1's labels
    items = pd.DataFrame({"item_id": ["rec/suite2p/plane0:0", "rec/suite2p/plane0:1"],
                          "label": [None, None]})
    journal = pd.DataFrame({"item_id": ["rec/suite2p/plane1:3", "old/suite2p/plane0:1"],
                            "label": ["cell", "cell"], "source": ["human", "human"]})
    with pytest.warns(InputWarning) as record:
        curated_table(items, None, journal)
    assert len(record) == 1 and "old/suite2p/plane0:1" in str(record[0].message)
    assert "plane1" not in str(record[0].message)


def test_an_unreadable_earlier_project_is_warned_not_fatal(recording):
    broken = recording / "suite2p" / "plane0.cellcurator"
    broken.mkdir(parents=True)
    (broken / "labels.sqlite").write_bytes(b"SQLite format 3\x00" + b"\x01" * 200)
    with pytest.warns(InputWarning, match="could not be read"):
        p = Project.for_data(recording)
    with p:  # the recording still gets its project
        p.journal.set_label("rec/suite2p/plane0:0", "cell")


def test_earlier_journals_are_read_without_writing(recording):
    from napari_cellcurator.core.store.journal import read_current_labels

    folder = recording / "suite2p" / "plane0.cellcurator"
    with Project(folder) as p:
        p.journal.set_label("rec/suite2p/plane0:0", "cell")
    before = {f.name: f.stat().st_mtime_ns for f in folder.iterdir()}
    labels = read_current_labels(folder / "labels.sqlite")
    assert list(labels["label"]) == ["cell"]
    assert {f.name: f.stat().st_mtime_ns for f in folder.iterdir()} == before


def test_an_earlier_project_that_could_not_be_read_is_tried_again(recording, monkeypatch):
    import sqlite3

    folder = recording / "suite2p" / "plane0.cellcurator"
    with Project(folder) as p:
        p.journal.set_label("rec/suite2p/plane0:0", "not_cell")
    real = project_module.read_current_labels

    def busy(path):
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(project_module, "read_current_labels", busy)
    with pytest.warns(InputWarning, match="could not be read"):
        Project.for_data(recording).close()
    monkeypatch.setattr(project_module, "read_current_labels", real)
    with pytest.warns(InputWarning, match="1 label"), Project.for_data(recording) as p:
        assert p.journal.label_of("rec/suite2p/plane0:0") == "not_cell"


def test_an_immutable_read_overtaken_by_a_writer_is_read_again(recording, monkeypatch):
    import sqlite3

    import napari_cellcurator.core.store.journal_read as journal_module

    folder = recording / "suite2p" / "plane0.cellcurator"
    with Project(folder) as p:
        p.journal.set_label("rec/suite2p/plane0:0", "cell")
    real, modes = journal_module._read_labels, []

    def racing(path, mode):
        modes.append(mode)
        if mode == "immutable=1":  # a writer checkpointed under the immutable reader
            raise sqlite3.DatabaseError("database disk image is malformed")
        return real(path, mode)

    monkeypatch.setattr(journal_module, "_read_labels", racing)
    labels = journal_module.read_current_labels(folder / "labels.sqlite")
    assert list(labels["label"]) == ["cell"] and modes == ["immutable=1", "mode=ro"]


def test_journal_uris_of_windows_drives_and_network_paths():
    import sqlite3
    from pathlib import PurePosixPath, PureWindowsPath

    from napari_cellcurator.core.store.journal import sqlite_uri

    assert sqlite_uri(PureWindowsPath(r"C:\data\rec.cellcurator\labels.sqlite")) == \
        "file:///C:/data/rec.cellcurator/labels.sqlite"
    unc = sqlite_uri(PureWindowsPath(r"\\nas\lab\rec 1\labels.sqlite"))
    assert unc == "file:////nas/lab/rec%201/labels.sqlite"  # empty authority, UNC path
    assert sqlite_uri(PurePosixPath("/d/a#b?c/labels.sqlite")) == \
        "file:///d/a%23b%3Fc/labels.sqlite"
    with pytest.raises(sqlite3.OperationalError, match="authority"):  # as_uri()'s form
        sqlite3.connect(PureWindowsPath(r"\\nas\lab\x.sqlite").as_uri() + "?mode=ro", uri=True)


def test_predictions_made_on_another_machine_fit_the_same_recording(tmp_path):
    day1 = tmp_path / "lab" / "mouseA" / "2024-05-01" / "suite2p"
    day1.mkdir(parents=True)
    items = pd.DataFrame({"item_id": ["a:0", "a:1"], "source": str(day1)})
    preds = pd.DataFrame({"item_id": ["a:0"], "prediction": "cell"})
    for root in ("/mnt/lab/mouseA/2024-05-01/suite2p",  # a server
                 r"\\nas\lab\MouseA\2024-05-01\suite2p"):  # a PC
        with pytest.warns(InputWarning, match="same last three folders"):
            check_predictions_match(items, preds.assign(data_root=root), "p.csv", day1)
    for other in ("/mnt/lab/mouseB/2024-05-01/suite2p",  # another animal, same date
                  "/mnt/2024-05-01/suite2p", "suite2p"):  # too little to tell
        with pytest.raises(InputError, match="not for this data"):
            check_predictions_match(items, preds.assign(data_root=other), "p.csv", day1)


def test_processes_opening_one_project_at_once_keep_every_data_entry(tmp_path):
    """project.json is read, changed and written back when data open the project: four
    processes (a napari window, CLI commands) recording data at the same moment must not
    lose each other's entries (the journal's write lock serialises them)."""
    import json
    import subprocess
    import sys

    folder = tmp_path / "shared.cellcurator"
    Project(folder).close()  # the journal exists before the writers start
    code = ("import sys\nfrom pathlib import Path\n"
            "from napari_cellcurator.core.store.project import Project\n"
            "p = Project(sys.argv[1])\n"
            "for i in range(25):\n"
            "    p._record_data(Path(f'/data/{sys.argv[2]}/{i}'))\n"
            "p.close()\n")
    writers = [subprocess.Popen([sys.executable, "-c", code, str(folder), f"w{k}"])
               for k in range(4)]
    assert all(w.wait(timeout=120) == 0 for w in writers)
    data = json.loads((folder / "project.json").read_text())["data"]
    assert len(data) == len(set(data)) == 100
