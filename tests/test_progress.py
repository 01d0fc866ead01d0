"""Progress and cancel of long core jobs (PCA/ICA candidates, traces of ROIs in a movie)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from napari_cellcurator.core.data.simulate_calcium import simulate_recording
from napari_cellcurator.core.io import movie_stream, pcaica
from napari_cellcurator.core.progress import Cancelled, Progress, Stages, as_steps, counted


@pytest.fixture(scope="module")
def movie() -> np.ndarray:
    return simulate_recording(2, shape=(48, 48), n_frames=120, n_cells=6).movie.astype(
        np.float32)


@pytest.fixture(params=["in memory", "streamed"])
def small_blocks(request, monkeypatch):
    """Blocks of 10 frames; "streamed" takes the path of recordings longer than memory."""
    monkeypatch.setattr(movie_stream, "CHUNK_BYTES", 10 * 48 * 48 * 4)
    if request.param == "streamed":
        monkeypatch.setattr(pcaica, "IN_MEMORY_VALUES", 1000)
    return request.param


def test_stages_map_each_stage_onto_its_share_of_the_job():
    told = []
    stages = Stages(lambda f, s: told.append((round(f, 3), s)), [("a", 1), ("b", 3), ("c", 0)])
    stages.part("a")(0.5)
    stages.start("b")
    stages.part("b")(2.0)  # clipped to the stage
    stages.part("c")(0.5)
    assert told == [(0.125, "a"), (0.25, "b"), (1.0, "b"), (1.0, "c")]
    Stages(None, [("a", 1)]).part("a")(0.3)  # no callback: nothing happens


def test_candidates_report_every_stage_in_order_and_are_unchanged(movie, small_blocks):
    plain = pcaica.extract_candidates(movie)
    told: list[tuple[float, str]] = []
    reported = pcaica.extract_candidates(movie, progress=lambda f, s: told.append((f, s)))
    assert len(reported.footprints) == len(plain.footprints) > 0
    np.testing.assert_array_equal(reported.traces, plain.traces)
    np.testing.assert_array_equal(reported.neuropil, plain.neuropil)
    fractions = [f for f, _ in told]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    stages = list(dict.fromkeys(s for _, s in told))
    expected = ["mean frame", "PCA", "ICA", "segments", "traces", "neuropil"]
    assert stages == (["reading"] if small_blocks == "in memory" else []) + expected
    # the passes through the frames report block by block (12 blocks of 10 frames)
    assert sum(s == "traces" for _, s in told) >= 12


def test_as_steps_yields_updates_and_returns_the_result(movie, small_blocks):
    steps = as_steps(pcaica.extract_candidates, movie)
    updates = []
    while True:
        try:
            updates.append(next(steps))
        except StopIteration as stop:
            rois = stop.value
            break
    assert all(isinstance(u, Progress) for u in updates) and len(updates) > 20
    assert len(rois.footprints) > 0 and rois.neuropil.shape == rois.traces.shape


def test_cancel_stops_the_job_at_its_next_report(movie, small_blocks):
    cancel = threading.Event()
    steps = as_steps(pcaica.extract_candidates, movie, cancel=cancel)
    first = next(steps)
    assert 0 <= first.fraction < 0.5
    cancel.set()
    started = time.perf_counter()
    with pytest.raises(Cancelled, match="cancelled during"):
        for _ in steps:
            pass
    assert time.perf_counter() - started < 60  # stopped, not run to the end of a long job


def test_closing_the_generator_stops_the_job(movie, small_blocks):
    calls = []

    def job(progress):
        for i in range(10_000):
            calls.append(i)
            progress(i / 10_000, "counting")
            time.sleep(0.001)
        return "finished"

    steps = as_steps(job)
    next(steps)
    steps.close()  # waits for the job thread, which stops at its next report
    done = len(calls)
    time.sleep(0.05)
    assert len(calls) == done < 10_000


def test_a_failing_job_raises_its_own_error():
    def job(progress):
        progress(0.1, "reading")
        raise ValueError("bad frame 7")

    with pytest.raises(ValueError, match="bad frame 7"):
        list(as_steps(job))


def test_traces_of_masks_report_progress(movie):
    from napari_cellcurator.core.io.roi_masks import rois_from_masks

    labels = np.zeros(movie.shape[1:], np.int32)
    labels[5:12, 5:12], labels[30:38, 20:28] = 1, 2
    told = []
    rois = rois_from_masks(movie, labels, "m.tif", progress=lambda f, s: told.append(s))
    assert len(rois.footprints) == 2
    assert list(dict.fromkeys(told)) == ["traces", "neuropil", "mean frame"]


def test_counted_reports_about_a_hundred_times_and_ends_at_one():
    told = []
    assert list(counted(range(1000), lambda f, s: told.append((f, s)), "reading")) == list(
        range(1000))
    assert 100 <= len(told) <= 102 and told[-1] == (1.0, "reading")
    assert list(counted([], None, "x")) == []


def test_class_folders_report_reading_their_images(tmp_path):
    """A large folder of crops takes a while: the Load widget's bar follows the files."""
    from PIL import Image

    from napari_cellcurator.core.tasks import ReadOptions, get_task

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for k in range(30):
            Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8)).save(
                tmp_path / cls / f"{k}.png")
    told = []
    items = get_task("celltype").read(
        tmp_path, ReadOptions(progress=lambda f, s: told.append((f, s))))
    assert len(items) == 60
    assert {s for _, s in told} == {"reading images"} and len(told) >= 60
    assert told[-1][0] == 1.0
