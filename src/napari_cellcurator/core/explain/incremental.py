"""Exact, faster occlusion by incremental inference (the idea of Nakandala et al. 2019, Krypton).

An occluded copy differs from the item only inside the patch, and through convolutions only
inside the patch's growing receptive field. So instead of running every copy through the
whole network, each value of the traced graph is kept as the item's own activation (computed
once) plus, per copy, a small window where it differs; convs, pools, BatchNorm and
element-wise ops run on the windows only, global average pooling folds the window back into a
per-copy vector, and whatever this module does not know runs on fully materialised copies.
Results equal the plain batched forward up to float rounding (tests check it).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn


@dataclass
class _Dense:
    """Same for every copy (the item's own value); ``batched`` = has the batch axis of 1."""

    value: torch.Tensor
    batched: bool


@dataclass
class _Patched:
    """Copy n = ``base`` except on ``[oy[n]:oy[n]+h, ox[n]:ox[n]+w]`` where it is ``win[n]``."""

    base: torch.Tensor  # (1, C, H, W)
    win: torch.Tensor  # (N, C, h, w)
    oy: np.ndarray
    ox: np.ndarray


_ELEMENTWISE_MODULES = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh,
                        nn.BatchNorm2d, nn.Dropout, nn.Dropout2d, nn.Identity, nn.ReLU6)
_ELEMENTWISE_FUNCS = {torch.relu, F.relu, torch.sigmoid, torch.tanh, F.gelu, F.silu,
                      F.leaky_relu, F.elu, torch.nn.functional.relu6}
_BINARY = {operator.add: torch.add, torch.add: torch.add, operator.sub: torch.sub,
           operator.mul: torch.mul, torch.mul: torch.mul}


class _Recorder(fx.Interpreter):
    """One plain forward pass keeping (a copy of) every node's output."""

    def __init__(self, gm: fx.GraphModule):
        super().__init__(gm)
        self.values: dict[fx.Node, object] = {}

    def run_node(self, n: fx.Node):
        out = super().run_node(n)
        # clone: an in-place op later in the graph must not change what we recorded
        self.values[n] = out.clone() if torch.is_tensor(out) else out
        return out


class IncrementalOcclusion:
    """Scores of occluded copies of one item, computed incrementally.

    Parameters
    ----------
    model
        Traced with ``torch.fx``; raises if it cannot be (callers fall back to plain batches).
    inputs
        The item's inputs (batch axis 1); ``inputs[key]`` is ``(1, C, H, W)``.
    key
        The occluded input.
    """

    def __init__(self, model: nn.Module, inputs: dict[str, torch.Tensor], key: str):
        if inputs[key].ndim != 4:
            raise ValueError("incremental occlusion needs a (1, C, H, W) input")
        self.gm = fx.symbolic_trace(model.eval())
        self.modules = dict(self.gm.named_modules())
        self.key = key
        placeholders = [n for n in self.gm.graph.nodes if n.op == "placeholder"]
        if key not in {n.target for n in placeholders}:
            raise ValueError(f"model has no input {key!r}")
        rec = _Recorder(self.gm)
        with torch.inference_mode():
            rec.run(*[inputs[n.target] for n in placeholders])
        self.base = rec.values

    # ---- public --------------------------------------------------------------------------
    def logits(self, filled: torch.Tensor, oy: np.ndarray, ox: np.ndarray, ph: int, pw: int
               ) -> torch.Tensor:
        """Outputs of the copies where ``filled`` replaces ``[oy:oy+ph, ox:ox+pw]``."""
        oy = np.asarray(oy, dtype=np.int64)
        ox = np.asarray(ox, dtype=np.int64)
        self.n = len(oy)
        env: dict[fx.Node, object] = {}
        with torch.inference_mode():
            for node in self.gm.graph.nodes:
                if node.op == "placeholder":
                    base = self.base[node]
                    if node.target == self.key:
                        win = _gather(filled, oy, ox, ph, pw)
                        env[node] = _Patched(base, win, oy, ox)
                    else:
                        env[node] = _Dense(base, True)
                elif node.op == "get_attr":
                    env[node] = _Dense(self.base[node], False)
                elif node.op == "output":
                    return self._materialise(_map_args(node.args[0], env))
                else:
                    env[node] = self._run(node, env)
        raise RuntimeError("graph without output")

    # ---- dispatch ------------------------------------------------------------------------
    def _run(self, node: fx.Node, env):
        args = _map_args(node.args, env)
        kwargs = _map_args(node.kwargs, env)
        flat = _flatten(args) + _flatten(kwargs)
        has_patched = any(isinstance(a, _Patched) for a in flat)
        has_full = any(torch.is_tensor(a) for a in flat)  # already one value per copy
        if not has_patched and not has_full:
            batched = any(isinstance(a, _Dense) and a.batched for a in flat)
            return _Dense(self.base[node], batched)
        if has_patched and not has_full:
            fast = self._fast(node, args, kwargs)
            if fast is not None:
                return fast
        return self._fallback(node, args, kwargs)

    def _fast(self, node, args, kwargs):
        base_out = self.base[node]
        if node.op == "call_module":
            mod = self.modules[node.target]
            x = args[0] if len(args) == 1 and not kwargs else None
            if not isinstance(x, _Patched):
                return None
            if isinstance(mod, nn.Conv2d):
                return self._conv(mod, x, base_out)
            if isinstance(mod, nn.MaxPool2d | nn.AvgPool2d):
                return self._pool(mod, x, base_out)
            if isinstance(mod, nn.AdaptiveAvgPool2d) and _is_one(mod.output_size):
                return self._global_mean(x, base_out)
            if isinstance(mod, _ELEMENTWISE_MODULES):
                win = x.win.clone() if getattr(mod, "inplace", False) else x.win
                return _Patched(base_out, mod(win), x.oy, x.ox)
            return None
        if node.op == "call_function" and node.target in _ELEMENTWISE_FUNCS:
            x = args[0]
            rest = [a for a in list(args[1:]) + list(kwargs.values()) if isinstance(a, _Patched)]
            if isinstance(x, _Patched) and not rest:
                kw = {k: v for k, v in kwargs.items() if k != "inplace"}
                return _Patched(base_out, node.target(x.win, *args[1:], **kw), x.oy, x.ox)
            return None
        if node.op == "call_function" and node.target in _BINARY and len(args) == 2 and not kwargs:
            return self._binary(_BINARY[node.target], args[0], args[1], base_out)
        if node.op == "call_function" and node.target is operator.getitem:
            return self._getitem(args[0], args[1], base_out)
        if node.op == "call_function" and node.target is torch.cat:
            return self._cat(args, kwargs, base_out)
        if node.op == "call_method" and node.target == "mean" and isinstance(args[0], _Patched):
            dims = args[1] if len(args) > 1 else kwargs.get("dim")
            if dims is not None and sorted(d % 4 for d in dims) == [2, 3]:
                return self._global_mean(args[0], base_out)
        return None

    # ---- fast ops ------------------------------------------------------------------------
    def _conv(self, mod: nn.Conv2d, x: _Patched, base_out):
        if mod.padding_mode != "zeros" or isinstance(mod.padding, str) or mod.dilation != (1, 1):
            return None
        return self._windowed(x, base_out, mod.kernel_size, mod.stride, mod.padding, 0.0,
                              lambda r: F.conv2d(r, mod.weight, mod.bias, mod.stride, 0, 1,
                                                 mod.groups))

    def _pool(self, mod, x: _Patched, base_out):
        k, s, p = (_pair(mod.kernel_size), _pair(mod.stride or mod.kernel_size),
                   _pair(mod.padding))
        if mod.ceil_mode or getattr(mod, "dilation", 1) not in (1, (1, 1)):
            return None
        if isinstance(mod, nn.MaxPool2d):
            return self._windowed(x, base_out, k, s, p, float("-inf"),
                                  lambda r: F.max_pool2d(r, k, s, 0))
        if p != (0, 0) and not mod.count_include_pad:
            return None
        return self._windowed(x, base_out, k, s, p, 0.0, lambda r: F.avg_pool2d(r, k, s, 0))

    def _windowed(self, x: _Patched, base_out, k, s, p, pad_value, op):
        h, w = x.win.shape[-2:]
        hout, wout = base_out.shape[-2:]
        ly = min(hout, (h + k[0] - 2) // s[0] + 1)
        lx = min(wout, (w + k[1] - 2) // s[1] + 1)
        # first output whose receptive field reaches the window, kept inside the output
        oy = np.clip(-((-(x.oy + p[0] - k[0] + 1)) // s[0]), 0, hout - ly)
        ox = np.clip(-((-(x.ox + p[1] - k[1] + 1)) // s[1]), 0, wout - lx)
        region = _region(x, oy * s[0] - p[0], ox * s[1] - p[1], (ly - 1) * s[0] + k[0],
                         (lx - 1) * s[1] + k[1], pad_value)
        return _Patched(base_out, op(region), oy, ox)

    def _global_mean(self, x: _Patched, base_out):
        h, w = x.win.shape[-2:]
        old = _gather(x.base, x.oy, x.ox, h, w)
        delta = (x.win.sum(dim=(2, 3)) - old.sum(dim=(2, 3))) / float(
            x.base.shape[-2] * x.base.shape[-1])
        return base_out.expand(self.n, *base_out.shape[1:]) + delta.reshape(
            self.n, *base_out.shape[1:])

    def _binary(self, fn, a, b, base_out):
        if isinstance(a, _Patched) and isinstance(b, int | float):
            return _Patched(base_out, fn(a.win, b), a.oy, a.ox)
        if isinstance(b, _Patched) and isinstance(a, int | float):
            return _Patched(base_out, fn(a, b.win), b.oy, b.ox)
        if not (isinstance(a, _Patched) and isinstance(b, _Patched)):
            return None
        if a.base.shape != b.base.shape:
            return None
        sy, sx, ly, lx = _union([a, b])
        return _Patched(base_out, fn(_region(a, sy, sx, ly, lx), _region(b, sy, sx, ly, lx)),
                        sy, sx)

    def _getitem(self, x, idx, base_out):
        """Channel/frame selection ``x[:, a:b]`` keeps the spatial window."""
        if not isinstance(x, _Patched):
            return None
        idx = idx if isinstance(idx, tuple) else (idx,)
        full = slice(None)
        if len(idx) > 4 or any(i is Ellipsis or i is None for i in idx):
            return None
        if not (idx[0] == full and all(i == full for i in idx[2:])):
            return None
        if len(idx) > 1 and not isinstance(idx[1], slice | int):
            return None
        win = x.win[idx]
        if win.ndim != 4:  # an int index dropped the channel axis
            return None
        return _Patched(base_out, win, x.oy, x.ox)

    def _cat(self, args, kwargs, base_out):
        """Concatenation along channels of windows (union of windows)."""
        tensors = args[0]
        dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
        if dim not in (1, -3) or not all(isinstance(t, _Patched) for t in tensors):
            return None
        if len({t.base.shape[-2:] for t in tensors}) != 1:
            return None
        sy, sx, ly, lx = _union(tensors)
        return _Patched(base_out, torch.cat([_region(t, sy, sx, ly, lx) for t in tensors], 1),
                        sy, sx)

    # ---- anything else: full copies -------------------------------------------------------
    def _materialise(self, v):
        if isinstance(v, _Patched):
            full = v.base.expand(self.n, *v.base.shape[1:]).clone()
            h, w = v.win.shape[-2:]
            for i in range(self.n):
                full[i, :, v.oy[i]:v.oy[i] + h, v.ox[i]:v.ox[i] + w] = v.win[i]
            return full
        if isinstance(v, _Dense):
            if v.batched and torch.is_tensor(v.value):
                return v.value.expand(self.n, *v.value.shape[1:]).contiguous()
            return v.value
        if isinstance(v, list | tuple):
            return type(v)(self._materialise(a) for a in v)
        if isinstance(v, dict):
            return {k: self._materialise(a) for k, a in v.items()}
        return v

    def _fallback(self, node, args, kwargs):
        args, kwargs = self._materialise(args), self._materialise(kwargs)
        if node.op == "call_module":
            return self.modules[node.target](*args, **kwargs)
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        obj, *rest = args
        return getattr(obj, node.target)(*rest, **kwargs)


def _union(values: list[_Patched]) -> tuple[np.ndarray, np.ndarray, int, int]:
    """One fixed-size window per copy covering the windows of all ``values``."""
    hh, ww = values[0].base.shape[-2:]
    sy = np.min([v.oy for v in values], axis=0)
    sx = np.min([v.ox for v in values], axis=0)
    ey = np.max([v.oy + v.win.shape[-2] for v in values], axis=0)
    ex = np.max([v.ox + v.win.shape[-1] for v in values], axis=0)
    ly, lx = int(min(hh, np.max(ey - sy))), int(min(ww, np.max(ex - sx)))
    return np.clip(sy, 0, hh - ly), np.clip(sx, 0, ww - lx), ly, lx


def _region(x: _Patched, oy, ox, h: int, w: int, pad_value: float = 0.0) -> torch.Tensor:
    """Values of each copy on ``[oy:oy+h, ox:ox+w]`` (may reach past the edges: padded)."""
    hh, ww = x.base.shape[-2:]
    top, left = max(0, int(-oy.min())), max(0, int(-ox.min()))
    bottom, right = max(0, int((oy + h).max()) - hh), max(0, int((ox + w).max()) - ww)
    base = x.base
    if top or left or bottom or right:
        base = F.pad(base, (left, right, top, bottom), value=pad_value)
    out = _gather(base, oy + top, ox + left, h, w)
    wh, wwin = x.win.shape[-2:]
    for i in range(len(oy)):
        y0, x0 = max(x.oy[i], oy[i]), max(x.ox[i], ox[i])
        y1, x1 = min(x.oy[i] + wh, oy[i] + h), min(x.ox[i] + wwin, ox[i] + w)
        if y1 > y0 and x1 > x0:
            out[i, :, y0 - oy[i]:y1 - oy[i], x0 - ox[i]:x1 - ox[i]] = \
                x.win[i, :, y0 - x.oy[i]:y1 - x.oy[i], x0 - x.ox[i]:x1 - x.ox[i]]
    return out


def _gather(base: torch.Tensor, oy, ox, h: int, w: int) -> torch.Tensor:
    """``(N, C, h, w)`` windows of a ``(1, C, H, W)`` tensor at per-copy offsets."""
    b = base[0]
    # stacking slices beats advanced indexing / unfold here (measured 4-10x on CPU)
    return torch.stack([b[:, y:y + h, x:x + w] for y, x in zip(np.asarray(oy).tolist(),
                                                               np.asarray(ox).tolist(),
                                                               strict=True)])


def _map_args(a, env):
    return fx.node.map_arg(a, lambda n: env[n])


def _flatten(a) -> list:
    if isinstance(a, list | tuple):
        return [y for x in a for y in _flatten(x)]
    if isinstance(a, dict):
        return [y for x in a.values() for y in _flatten(x)]
    return [a]


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _is_one(size) -> bool:
    return size == 1 or tuple(size) == (1, 1)
