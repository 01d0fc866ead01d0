"""The explanation API behind ``cellcurator explain`` and the napari Explain widget.

* :func:`explain_iter` / :func:`explain` — a loaded model + one item's tensors or numpy arrays;
  the generator yields ``(fraction_done, partial_map)`` and returns the result dict (a napari
  ``thread_worker`` emits it as ``returned``).
* :func:`explain_item` — a model folder + data path + item id (the CLI), optional ``out`` file.
* :func:`explain_batch` — many items into one zarr array.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.explain.activations import layer_activations
from napari_cellcurator.core.explain.common import make_score_fn, to_batch
from napari_cellcurator.core.explain.gradcam import combine_streams, gradcam
from napari_cellcurator.core.explain.occlusion import occlusion_iter, trace_occlusion_iter
from napari_cellcurator.core.explain.output import item_placement, write_map, write_maps_zarr
from napari_cellcurator.core.store.atomic import (
    OUTPUT_MARK,
    check_not_input,
    check_replaceable,
    zarr_attrs,
)

METHODS = ("occlusion", "gradcam", "activations")
#: the :data:`OUTPUT_MARK` of explanation zarr outputs (and .tif descriptions)
EXPLANATION_MARK = "explanation"

Progress = Generator[tuple[float, np.ndarray], None, dict[str, Any]]


def resolve_target(target: int | str | None, classes: Sequence[str]) -> int | None:
    """Class index from an index, a digit string or a class name (None = predicted class)."""
    if target is None or (isinstance(target, str) and target.strip() == ""):
        return None
    if isinstance(target, str) and target in classes:
        return list(classes).index(target)
    try:
        return int(target)
    except (TypeError, ValueError):
        raise InputError(None, f"unknown target class {target!r}",
                         f"a class index or one of {list(classes)}") from None


def explain_iter(model: torch.nn.Module, task, inputs: Mapping[str, Any], method: str,
                 target: int | None = None, layer: str | list[str] | None = None,
                 patch: int | None = None, stride: int | None = None, fill: str | None = None,
                 batch_size: int | None = None, classes: Sequence[str] | None = None
                 ) -> Progress:
    """Explain one item progressively.

    Parameters
    ----------
    model
        A loaded model (``load_model``), called as ``model(**inputs)``.
    task
        The :class:`~napari_cellcurator.core.tasks.base.Task` or its name.
    inputs
        Model-ready inputs of ONE item (as ``task.make_batch`` returns them, or numpy arrays
        with or without a batch axis of 1).
    method
        ``"occlusion"``, ``"gradcam"`` or ``"activations"``.
    target
        Class index to explain (default: the predicted class; mixture: the proportion).
    layer
        Conv layer(s) for Grad-CAM / activations (default: last / first conv of each stream).
    patch, stride, fill, batch_size
        Occlusion settings (default patch ≈ size/8, stride ≈ patch/2, fill the task's
        ``occlusion_fill``: the item's channel means, zero for cellness footprints).
    classes
        Class names, only to name the target in the result.

    Yields
    ------
    fraction_done, partial_map
        Occlusion yields after each batch; the other methods once at the end.

    Returns
    -------
    dict
        ``map`` (float32: ``(H, W)``; ``(F, H, W)`` for activations), ``maps`` (per layer),
        ``trace_importance`` ``(T,)`` for occlusion of items with a trace, ``target``,
        ``target_name``, ``score`` (the explained score of the unoccluded item), ``method``,
        ``input_key`` and the settings used.
    """
    if isinstance(task, str):
        from napari_cellcurator.core.tasks import get_task

        task = get_task(task)
    if method not in METHODS:
        raise InputError(None, f"unknown explanation method {method!r}", f"one of {METHODS}")
    batch = to_batch(_with_batch_axis(inputs), model, batched=True)
    key = task.explain_input
    if key not in batch:
        raise InputError(None, f"inputs lack {key!r}", f"inputs {list(task.input_keys)}")
    was_training = model.training
    model.eval()
    try:
        return (yield from _explain_steps(model, task, batch, key, method, target, layer,
                                          (patch, stride, fill, batch_size), classes))
    finally:  # a model explained mid-training goes back to training mode
        model.train(was_training)


def _explain_steps(model, task, batch, key, method, target, layer, occlusion, classes):
    patch, stride, fill, batch_size = occlusion
    with torch.inference_mode():
        logits = model(**batch)
    score_fn, target = make_score_fn(task, logits, target)
    with torch.inference_mode():
        score = float(score_fn(logits)[0])
    result: dict[str, Any] = {
        "method": method, "input_key": key, "target": target, "score": score,
        "target_name": (list(classes)[target] if classes is not None and target is not None
                        and target < len(classes) else None),
    }
    if method == "occlusion":
        fill = fill or task.occlusion_fill
        result.update((yield from _occlusion(model, batch, score_fn, key, patch, stride, fill,
                                              batch_size)))
    elif method == "gradcam":
        logit_fn, _ = make_score_fn(task, logits, target, logit=True)
        maps = gradcam(model, batch, logit_fn, layer, key=key)
        spatial = {k: v for k, v in maps.items() if v.ndim == 2}
        result.update(maps=maps, layers=list(maps),
                      map=combine_streams(spatial or maps).astype(np.float32))
        yield 1.0, result["map"]
    else:
        maps = layer_activations(model, batch, layer, key=key)
        first = next(iter(maps.values()))
        result.update(maps=maps, layers=list(maps), map=first)
        yield 1.0, first
    return result


def _occlusion(model, batch, score_fn, key, patch, stride, fill, batch_size):
    has_trace = "trace" in batch and key != "trace"
    image_map = None
    # progress is split by the share of forward passes each part needs (about 4:1)
    share = 0.8 if has_trace else 1.0
    for frac, image_map in occlusion_iter(model, batch, score_fn, key=key, patch=patch,
                                          stride=stride, fill=fill, batch_size=batch_size):
        yield frac * share, image_map
    out = {"map": image_map, "maps": {"occlusion": image_map}, "fill": fill}
    from napari_cellcurator.core.explain.occlusion import default_patch

    size = min(batch[key].shape[-2:])
    patch = patch or default_patch(int(size))[0]
    out.update(patch=int(patch), stride=int(stride or max(1, patch // 2)))
    if has_trace:
        for frac, trace_map in trace_occlusion_iter(model, batch, score_fn, key="trace",
                                                    batch_size=batch_size or 64):
            out["trace_importance"] = trace_map
            yield share + frac * (1 - share), image_map
    return out


#: dimensions of one item's input without a batch axis: images/snippets (C|ℓ, H, W),
#: traces (T,)
ITEM_NDIM = {"trace": 1}


def _with_batch_axis(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Tensors from ``make_batch`` carry a batch axis; numpy arrays of one item may or may
    not, each on its own (an image with one and a trace without)."""
    out = {}
    for key, value in inputs.items():
        if not torch.is_tensor(value) and np.ndim(value) == ITEM_NDIM.get(key, 3):
            value = np.asarray(value)[None]
        out[key] = value
    return out


def explain(model: torch.nn.Module, task, inputs: Mapping[str, Any], method: str,
            on_progress: Callable[[float, np.ndarray], None] | None = None,
            **kwargs) -> dict[str, Any]:
    """:func:`explain_iter` run to the end (optionally reporting progress)."""
    gen = explain_iter(model, task, inputs, method, **kwargs)
    while True:
        try:
            frac, partial = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(frac, partial)


def _load(model_dir: str | Path, data, device: str, out: str | Path | None):
    """Model, config, task and items; ``out`` is checked safe to write before any work."""
    from napari_cellcurator.core.batch import check_not_a_source
    from napari_cellcurator.core.pipeline import read_for_model
    from napari_cellcurator.core.store.modelio import check_predictor, load_model
    from napari_cellcurator.core.tasks import get_task

    if out is not None:
        _check_out(Path(out), data)
    model, config = load_model(model_dir, device=device)
    check_predictor(config, model_dir)
    task = get_task(config.task)
    items = read_for_model(config, data, task)
    if out is not None:
        check_not_a_source(out, items.table)
    return model, config, task, items


def _check_out(out: Path, data) -> None:
    """Refuse an output that is (or holds) the input data, an existing folder that is not an
    earlier explanation ``.zarr`` (writing a ``.zarr`` replaces the whole folder), or an
    existing file inside the data (a ``.tif`` there may be one of its images). A new file
    inside a data folder is fine."""
    from napari_cellcurator.core.batch import data_paths, inside_data

    check_not_input(out, data_paths(_as_list(data)), inside_ok=True)
    if out.suffix.lower() == ".zarr":
        check_replaceable(out, _is_explanation_zarr, "an explanation .zarr")
    elif out.is_dir():
        raise InputError(out, "is a folder", f"a {out.suffix or '.npy'} file name")
    elif out.is_file() and inside_data(out, _as_list(data)):
        raise InputError(out, "exists inside the input data; writing would replace it",
                         "a new file name, or one outside the data")


def _is_explanation_zarr(folder: Path) -> bool:
    """An earlier ``explain --out X.zarr`` (marked; unmarked ones by their attributes)."""
    attrs = zarr_attrs(folder)
    return attrs.get(OUTPUT_MARK) == EXPLANATION_MARK or attrs.get("method") in METHODS


def _as_list(data) -> list:
    return [data] if isinstance(data, str | Path) else list(data)


def find_item(items, item_id: str, data) -> int:
    """Row of ``item_id`` (or of the item whose former id it is); :class:`InputError`
    listing a few valid ids otherwise."""
    from napari_cellcurator.core.io.items import current_item_id

    ids = items.table["item_id"].astype(str).to_numpy()
    hits = np.flatnonzero(ids == (current_item_id(items.table, item_id) or str(item_id)))
    if len(hits) == 0:
        few = ", ".join(repr(i) for i in ids[:5])
        more = f" … ({len(ids)} items)" if len(ids) > 5 else ""
        where = data if isinstance(data, str | Path) else ", ".join(map(str, data))
        raise InputError(where, f"has no item {str(item_id)!r}", f"an item id such as {few}{more}")
    return int(hits[0])


def _item_inputs(task, items, row: int, prep: dict, device: str) -> dict[str, torch.Tensor]:
    batch = task.make_batch(items, np.array([row]), prep, augment=False,
                            rng=np.random.default_rng(0))
    return {k: v.to(device) for k, v in batch.items()}


def explain_item(model_dir: str | Path, data: str | Path | Sequence[str], item_id: str,
                 method: str, target: int | str | None = None, out: str | Path | None = None,
                 layer: str | None = None, patch: int | None = None, stride: int | None = None,
                 fill: str | None = None, device: str = "cpu") -> dict[str, Any]:
    """Explain one item of ``data`` with the model in ``model_dir`` (``cellcurator explain``).

    Returns the :func:`explain_iter` result plus ``item_id`` and ``placement`` (crop origin and
    size in the source frame, where the reader recorded them; see
    :mod:`napari_cellcurator.core.explain.align`). ``out`` (``.npy``, ``.tif`` or ``.zarr``) gets
    ``result["map"]``: a float32 array with the item's spatial shape (``(F, H, W)`` for
    activations), written atomically.
    """
    model, config, task, items = _load(model_dir, data, device, out)
    row = find_item(items, item_id, data)
    inputs = _item_inputs(task, items, row, config.preprocessing, device)
    result = explain(model, task, inputs, method, target=resolve_target(target, config.classes),
                     layer=layer, patch=patch, stride=stride, fill=fill, classes=config.classes)
    result["item_id"] = str(items.table["item_id"].iloc[row])
    result["placement"] = item_placement(items.table.iloc[row], result["map"].shape[-2:],
                                         config.preprocessing)
    if out is not None:
        write_map(out, result["map"], _attrs(result))
    return result


def explain_batch(model_dir: str | Path, data: str | Path | Sequence[str],
                  item_ids: Sequence[str] | None, method: str, out_zarr: str | Path,
                  target: int | str | None = None, layer: str | None = None,
                  patch: int | None = None, stride: int | None = None, fill: str | None = None,
                  device: str = "cpu",
                  on_progress: Callable[[int, int], None] | None = None) -> Path:
    """Explain many items (None = all) into one zarr array ``(N, *map_shape)``.

    The array's attributes hold ``item_ids``, ``targets``, ``scores`` and the settings. Ids are
    all checked before any work; the zarr appears only when complete. Only ``map`` is stored:
    the trace importance of cellness occlusion comes from :func:`explain_item`.
    """
    model, config, task, items = _load(model_dir, data, device, out_zarr)
    ids = list(items.table["item_id"].astype(str)) if item_ids is None else list(map(str, item_ids))
    rows = [find_item(items, i, data) for i in ids]
    ids = [str(items.table["item_id"].iloc[r]) for r in rows]  # former ids → current
    tgt = resolve_target(target, config.classes)
    results = []

    def maps():
        for n, row in enumerate(rows):
            inputs = _item_inputs(task, items, row, config.preprocessing, device)
            res = explain(model, task, inputs, method, target=tgt, layer=layer, patch=patch,
                          stride=stride, fill=fill, classes=config.classes)
            res["placement"] = item_placement(items.table.iloc[row], res["map"].shape[-2:],
                                              config.preprocessing)
            results.append(res)
            if on_progress is not None:
                on_progress(n + 1, len(rows))
            yield res["map"]

    def attrs() -> dict:
        first = results[0] if results else {}
        return {OUTPUT_MARK: EXPLANATION_MARK, "item_ids": ids, "method": method,
                "targets": [r["target"] for r in results],
                "scores": [r["score"] for r in results],
                "placements": [r["placement"] for r in results],
                "layers": first.get("layers"), "patch": first.get("patch"),
                "stride": first.get("stride"), "fill": first.get("fill")}

    return write_maps_zarr(out_zarr, len(rows), maps(), attrs)


def _attrs(result: dict) -> dict:
    keep = ("method", "item_id", "target", "target_name", "score", "layers", "patch", "stride",
            "fill", "input_key", "placement")
    return {OUTPUT_MARK: EXPLANATION_MARK, **{k: result[k] for k in keep if k in result}}


__all__ = ["METHODS", "explain", "explain_batch", "explain_item", "explain_iter",
           "find_item", "resolve_target"]
