"""Occlusion sensitivity (Zeiler & Fergus 2014): how much the explained score drops when a patch
of the image (or a window of the trace) is hidden.

All occluded copies go through the model in a few large batches under ``inference_mode``.
The ``*_iter`` generators yield ``(fraction_done, partial_map)`` after every batch so a viewer
can fill the heatmap in progressively; closing the generator cancels the run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.explain.common import ScoreFn

FILLS = ("mean", "zero", "blur")


def default_patch(size: int) -> tuple[int, int]:
    """Patch ≈ size/8 and stride ≈ patch/2 (e.g. 16/8 for 128-px crops, 5/2 for 40 px)."""
    patch = max(2, int(round(size / 8)))
    return patch, max(1, patch // 2)


def positions(size: int, patch: int, stride: int) -> np.ndarray:
    """Start offsets of patches along one axis; the last patch always touches the far edge."""
    if patch > size:
        patch = size
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return np.asarray(starts, dtype=np.int64)


def _check(patch: int, stride: int, fill: str) -> None:
    if patch < 1 or stride < 1:
        raise InputError(None, f"occlusion patch {patch} / stride {stride} must be ≥ 1")
    if fill not in FILLS:
        raise InputError(None, f"unknown occlusion fill {fill!r}", f"one of {FILLS}")


def fill_image(x: torch.Tensor, fill: str, patch: int) -> torch.Tensor:
    """What an occluded pixel becomes, per channel/frame: ``x`` is ``(1, C, H, W)``.

    ``mean`` = the item's own channel mean, ``zero`` = 0 (the training mean after
    normalisation), ``blur`` = a Gaussian blur (σ = patch/4) that keeps the local intensity but
    removes the detail inside the patch.
    """
    if fill == "zero":
        return torch.zeros_like(x)
    if fill == "mean":
        return x.mean(dim=(-2, -1), keepdim=True).expand_as(x).contiguous()
    sigma = max(1.0, patch / 4)
    radius = int(3 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    y = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    y = F.conv2d(y, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(y, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def occlusion_iter(model: nn.Module, inputs: Mapping[str, torch.Tensor], score_fn: ScoreFn,
                   key: str = "image", patch: int | None = None, stride: int | None = None,
                   fill: str = "mean", batch_size: int | None = None,
                   channels_last: bool = False,
                   incremental: bool | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """Occlude square patches of ``inputs[key]`` and map the score drop back to pixels.

    Parameters
    ----------
    model
        Called as ``model(**inputs)`` (set to eval mode here).
    inputs
        Model-ready tensors of ONE item (batch axis 1); ``inputs[key]`` is ``(1, C, H, W)``
        (channels or frames: all are hidden together). Other inputs are passed unchanged.
    score_fn
        ``logits -> (B,)`` with a fixed target (see ``make_score_fn``).
    patch, stride
        Patch side and step in pixels (default: :func:`default_patch` of the smaller side,
        stride = patch/2). 0 or None = default.
    fill
        ``"mean"``, ``"zero"`` or ``"blur"`` (see :func:`fill_image`).
    batch_size
        Occluded copies per forward pass (default 256 incremental — windows are small and
        one big batch was fastest in ``bench/occlusion.py`` — or 64 plain).
    channels_last
        Use the NHWC memory format for 4-D inputs in plain batches.
    incremental
        Recompute only what a patch changes (:mod:`.incremental`, exact, several times faster
        for large inputs). ``None`` = when the model can be traced, checked against a plain
        forward on the first block and dropped for plain batches on any disagreement;
        ``True`` = required (errors raise); ``False`` = plain batches.

    Yields
    ------
    fraction_done, partial_map
        After each batch; the map is float32 ``(H, W)``, the mean drop of the score
        (unoccluded − occluded) over the patches covering each pixel, 0 where none ran yet.
    """
    x = inputs[key]
    h, w = int(x.shape[-2]), int(x.shape[-1])
    patch, stride = patch or None, stride or None  # 0 = automatic (the widget's spin boxes)
    patch = patch or default_patch(min(h, w))[0]
    stride = stride or max(1, patch // 2)
    _check(patch, stride, fill)
    ph, pw = min(patch, h), min(patch, w)
    ys, xs = positions(h, ph, stride), positions(w, pw, stride)
    grid = np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)
    model.eval()
    total = np.zeros((h, w), np.float64)
    count = np.zeros((h, w), np.float64)
    with torch.inference_mode():
        base = float(score_fn(model(**inputs))[0])
        filled = fill_image(x, fill, patch)
        runner = _incremental_runner(model, inputs, key, incremental)
        batch_size = batch_size or (256 if runner is not None else 64)

        def plain(block: np.ndarray) -> torch.Tensor:
            return score_fn(model(**_occluded_batch(inputs, key, filled, block, ph, pw,
                                                    channels_last)))

        for start in range(0, len(grid), batch_size):
            block = grid[start:start + batch_size]
            scores = None
            if runner is not None:
                scores, runner = _incremental_scores(runner, plain, score_fn, filled, block,
                                                     ph, pw, check=start == 0,
                                                     strict=bool(incremental))
            if scores is None:
                scores = plain(block)
            drops = base - scores.float().cpu().numpy()
            for (y0, x0), d in zip(block, drops, strict=True):
                total[y0:y0 + ph, x0:x0 + pw] += d
                count[y0:y0 + ph, x0:x0 + pw] += 1
            yield (start + len(block)) / len(grid), _mean(total, count)


def _occluded_batch(inputs, key, filled, block, ph, pw, channels_last):
    """Plain copies of the item with one patch each replaced by ``filled``."""
    x = inputs[key]
    n = len(block)
    batch = x.expand(n, *x.shape[1:]).clone()
    for i, (y0, x0) in enumerate(block):
        batch[i, ..., y0:y0 + ph, x0:x0 + pw] = filled[0, ..., y0:y0 + ph, x0:x0 + pw]
    if channels_last and batch.ndim == 4:
        batch = batch.contiguous(memory_format=torch.channels_last)
    others = {k: v.expand(n, *v.shape[1:]) for k, v in inputs.items() if k != key}
    return {key: batch, **others}


def _incremental_runner(model, inputs, key, incremental: bool | None):
    """An :class:`IncrementalOcclusion` when asked/possible, else None (plain batches)."""
    if incremental is False or inputs[key].ndim != 4:
        return None
    from napari_cellcurator.core.explain.incremental import IncrementalOcclusion

    try:
        return IncrementalOcclusion(model, dict(inputs), key)
    except Exception:  # torch.fx cannot trace every model (control flow...): plain batches
        if incremental:
            raise
        return None


def _incremental_scores(runner, plain, score_fn, filled, block, ph, pw, check: bool,
                        strict: bool):
    """Scores of a block by incremental inference; on the first block two copies are also
    run plainly and must agree, otherwise (or on any error) the run goes on plainly."""
    try:
        scores = score_fn(runner.logits(filled, block[:, 0], block[:, 1], ph, pw))
        if check:
            ref = plain(block[:2])
            if not torch.allclose(scores[:2].float(), ref.float(), rtol=1e-3, atol=1e-5):
                raise RuntimeError("incremental occlusion disagrees with the plain forward")
        return scores, runner
    except Exception:  # an op the incremental pass got wrong: never return a wrong map
        if strict:
            raise
        return None, None


def trace_occlusion_iter(model: nn.Module, inputs: Mapping[str, torch.Tensor],
                         score_fn: ScoreFn, key: str = "trace", window: int | None = None,
                         stride: int | None = None, batch_size: int = 64
                         ) -> Iterator[tuple[float, np.ndarray]]:
    """Occlude time windows of a trace ``(1, T)`` with its baseline (median); 1-D importance.

    ``window`` defaults to T/10 and ``stride`` to window/2. Yields ``(fraction_done, (T,) map)``.
    """
    tr = inputs[key]
    t_len = int(tr.shape[-1])
    window, stride = window or None, stride or None
    if window is None:
        window = max(2, int(round(t_len / 10)))
    stride = stride or max(1, window // 2)
    _check(window, stride, "mean")
    window = min(window, t_len)
    starts = positions(t_len, window, stride)
    baseline = tr.median(dim=-1, keepdim=True).values
    model.eval()
    total = np.zeros(t_len, np.float64)
    count = np.zeros(t_len, np.float64)
    with torch.inference_mode():
        base = float(score_fn(model(**inputs))[0])
        for start in range(0, len(starts), batch_size):
            block = starts[start:start + batch_size]
            n = len(block)
            batch = tr.expand(n, *tr.shape[1:]).clone()
            for i, t0 in enumerate(block):
                batch[i, ..., t0:t0 + window] = baseline[0]
            others = {k: v.expand(n, *v.shape[1:]) for k, v in inputs.items() if k != key}
            drops = base - score_fn(model(**{key: batch, **others})).float().cpu().numpy()
            for t0, d in zip(block, drops, strict=True):
                total[t0:t0 + window] += d
                count[t0:t0 + window] += 1
            yield (start + n) / len(starts), _mean(total, count)


def run_to_end(it: Iterator[tuple[float, np.ndarray]]) -> np.ndarray:
    """The final map of an ``*_iter`` generator."""
    result = None
    for _, partial in it:
        result = partial
    return result


def occlusion_map(model: nn.Module, inputs: Mapping[str, torch.Tensor], score_fn: ScoreFn,
                  **kwargs) -> np.ndarray:
    """:func:`occlusion_iter` run to the end: the float32 ``(H, W)`` map."""
    return run_to_end(occlusion_iter(model, inputs, score_fn, **kwargs))


def trace_occlusion(model: nn.Module, inputs: Mapping[str, torch.Tensor], score_fn: ScoreFn,
                    **kwargs) -> np.ndarray:
    """:func:`trace_occlusion_iter` run to the end: the float32 ``(T,)`` importance."""
    return run_to_end(trace_occlusion_iter(model, inputs, score_fn, **kwargs))


def _mean(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    out = np.zeros_like(total)
    np.divide(total, count, out=out, where=count > 0)
    return out.astype(np.float32)
