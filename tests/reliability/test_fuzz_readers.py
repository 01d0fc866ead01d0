"""Hypothesis-generated broken inputs for every reader family: each case must end in the
package's error or a valid :class:`ItemSet` — never any other exception type.

The counts of cases tried are kept in :data:`COUNTS`; the last test prints them (``-s``) and
asserts enough were tried. Each family's test is capped so the file runs in well under a minute.
"""

from __future__ import annotations

import io
import itertools
import json
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tifffile
from _reliability_helpers import class_folders
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from napari_cellcurator.core.errors import CellCuratorError
from napari_cellcurator.core.io.items import ItemSet
from napari_cellcurator.core.tasks import ReadOptions, get_task

COUNTS: Counter = Counter()
_UNIQUE = itertools.count()  # file names of generated cases (never reused, even on early exit)
OUTCOMES: Counter = Counter()
FAST = settings(max_examples=50, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


def outcome(family: str, fn) -> object:
    """Run ``fn``; count it; return the ItemSet/value or the package's error."""
    COUNTS[family] += 1
    try:
        result = fn()
    except CellCuratorError as exc:
        OUTCOMES[f"{family}: error"] += 1
        assert str(exc).strip(), "an error must say what is wrong"
        return exc
    OUTCOMES[f"{family}: read"] += 1
    return result


def check_itemset(items) -> None:
    if isinstance(items, ItemSet):
        for arr in items.arrays.values():
            a = np.asarray(arr)
            assert a.shape[0] == len(items)
            if a.dtype.kind == "f":
                assert np.isfinite(a).all(), "readers must not hand NaN/inf to a model"


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return class_folders(tmp_path_factory.mktemp("fuzz_base"), per_class=2)


def _fresh(base: Path, tmp: Path) -> Path:
    import shutil

    dst = tmp / f"case{next(_UNIQUE)}"
    shutil.copytree(base, dst)
    return dst


# ---- celltype: image files ---------------------------------------------------------------------
@FAST
@given(data=st.binary(max_size=600), suffix=st.sampled_from([".tif", ".png", ".jpg", ".bmp"]),
       prefix=st.sampled_from([b"", b"II*\x00", b"MM\x00*", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff",
                               b"BM"]))
def test_random_bytes_as_images(base, tmp_path_factory, data, suffix, prefix):
    root = _fresh(base, tmp_path_factory.getbasetemp())
    (root / "A" / f"fuzz{suffix}").write_bytes(prefix + data)
    check_itemset(outcome("image bytes", lambda: get_task("celltype").read_many([root])))


_shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=9)
_dtypes = st.sampled_from(["uint8", "uint16", "int8", "int32", "float16", "float32", "float64",
                           "bool", "complex64"])


@FAST
@given(arr=_dtypes.flatmap(lambda dt: hnp.arrays(dt, _shapes)),
       crop=st.sampled_from([None, 1, 5, 32]), channels=st.sampled_from([None, [0], [0, 2], [7]]))
def test_random_shapes_and_dtypes_as_tiff(base, tmp_path_factory, arr, crop, channels):
    root = _fresh(base, tmp_path_factory.getbasetemp())
    try:
        tifffile.imwrite(root / "B" / "fuzz.tif", arr)
    except Exception:  # tifffile cannot even write it: nothing to read
        return
    opts = ReadOptions(channels=channels, crop_size=crop)
    check_itemset(outcome("image arrays", lambda: get_task("celltype").read_many([root], opts)))


@FAST
@given(cut=st.floats(0, 1), flip=st.lists(st.integers(0, 10_000), max_size=8))
def test_truncated_and_bit_flipped_tiffs(base, tmp_path_factory, cut, flip):
    root = _fresh(base, tmp_path_factory.getbasetemp())
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.arange(3 * 20 * 20, dtype=np.uint16).reshape(3, 20, 20),
                     photometric="minisblack", compression="zlib")
    data = bytearray(buf.getvalue())
    for i in flip:
        data[i % len(data)] ^= 0xFF
    (root / "A" / "fuzz.tif").write_bytes(bytes(data[: max(0, int(len(data) * cut))]))
    check_itemset(outcome("image truncated", lambda: get_task("celltype").read_many([root])))


# ---- .npy files and the restricted unpickler (Suite2p's object arrays) -------------------------
def _safe_pickle():
    return pytest.importorskip("napari_cellcurator.core.io.safe_pickle")


def _npy_bytes(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


@FAST
@given(kind=st.sampled_from(["bytes", "numeric", "object", "truncated", "flipped"]),
       data=st.binary(max_size=400), cut=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_random_npy_files(tmp_path_factory, kind, data, cut, seed):
    sp = _safe_pickle()
    rng = np.random.default_rng(seed)
    rois = np.empty(2, dtype=object)
    rois[:] = [{"ypix": np.arange(3), "xpix": np.arange(3), "lam": rng.random(3)}] * 2
    blobs = {
        "bytes": data,
        "numeric": _npy_bytes(rng.random((3, 4)))[:128] + data,
        "object": _npy_bytes(rois)[:128] + data,
        "truncated": _npy_bytes(rois)[: int(len(_npy_bytes(rois)) * cut)],
        "flipped": bytes(b ^ (0xFF if rng.random() < 0.05 else 0) for b in _npy_bytes(rois)),
    }
    path = tmp_path_factory.getbasetemp() / f"f{next(_UNIQUE)}.npy"
    path.write_bytes(blobs[kind])
    outcome("npy files", lambda: sp.load_npy(path))


@FAST
@given(data=st.binary(min_size=1, max_size=300), proto=st.sampled_from([b"", b"\x80\x02",
                                                                        b"\x80\x04"]))
def test_random_pickle_streams(data, proto):
    sp = _safe_pickle()
    outcome("pickle streams", lambda: sp.safe_loads(proto + data, "stat.npy"))


# ---- JSON: model configs and Allen ROI files ---------------------------------------------------
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
        st.sampled_from(["task", "arch", "model_spec", "classes", "preprocessing",
                         "format_version", "coo_rows", "coo_cols", "coo_data", "image_shape",
                         "trace", "label", "rois", "x"]), kids, max_size=6),
    max_leaves=25)


@FAST
@given(doc=_json, raw=st.binary(max_size=60), use_raw=st.booleans())
def test_random_model_configs(tmp_path_factory, doc, raw, use_raw):
    from napari_cellcurator.core.store.modelio import load_model

    folder = tmp_path_factory.getbasetemp() / f"model{next(_UNIQUE)}"
    folder.mkdir()
    (folder / "config.json").write_bytes(raw if use_raw else json.dumps(doc).encode())
    outcome("model configs", lambda: load_model(folder))


_roi = st.fixed_dictionaries({
    "coo_rows": st.lists(st.integers(-3, 600), max_size=5) | _json,
    "coo_cols": st.lists(st.integers(-3, 600), max_size=5),
    "coo_data": st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=5),
    "image_shape": st.lists(st.integers(-1, 600), min_size=0, max_size=3) | _json,
    "trace": st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=6),
}, optional={"label": _json, "metadata": _json, "experiment_id": _json})


@FAST
@given(doc=st.lists(_roi, max_size=3) | _json, raw=st.binary(max_size=60),
       use_raw=st.booleans())
def test_random_allen_json(tmp_path_factory, doc, raw, use_raw):
    allen = pytest.importorskip("napari_cellcurator.core.io.allen")
    rois = pytest.importorskip("napari_cellcurator.core.io.rois")
    path = tmp_path_factory.getbasetemp() / f"allen{next(_UNIQUE)}.json"
    path.write_bytes(raw if use_raw else json.dumps(doc).encode())
    reader = _cellness_reader(lambda p: rois.roiset_to_items(allen.read_allen_json(p)))
    check_itemset(outcome("allen json", lambda: reader(path)))


def _cellness_reader(fallback):
    """Through the cellness task (with the read_many safety net) once it exists."""
    try:
        task = get_task("cellness")
    except ImportError:
        return fallback
    return lambda p: task.read_many([p])


# ---- the tally -------------------------------------------------------------------------------
def test_zz_every_generated_case_was_counted():
    """Runs last in this file: prints the tally and asserts enough cases were tried."""
    if not COUNTS:
        pytest.skip("run with the rest of this file")
    total = sum(COUNTS.values())
    lines = [f"  {k:>16}: {v} cases" for k, v in sorted(COUNTS.items())]
    lines += [f"  {k}: {v}" for k, v in sorted(OUTCOMES.items())]
    print(f"\nreliability fuzz: {total} broken inputs tried, each ended in the package's error "
          "or a valid ItemSet\n" + "\n".join(lines))
    assert total >= 200
    assert all(v >= 20 for v in COUNTS.values()), COUNTS


def test_pickle_of_plain_data_is_not_an_error():
    """Guard against a tally of only errors: valid object arrays load."""
    sp = _safe_pickle()
    arr = np.empty(1, dtype=object)
    arr[0] = {"a": [1, 2.5, "x"]}
    assert sp.safe_loads(pickle.dumps(arr, protocol=4), "x")[0]["a"] == [1, 2.5, "x"]
