"""Read ``.npy`` files, including Suite2p's object arrays, without running arbitrary pickles.

Suite2p stores ``stat.npy`` and ``ops.npy`` as pickled object arrays. ``np.load(...,
allow_pickle=True)`` would execute whatever a crafted file asks for, so object arrays are
rebuilt by an :class:`pickle.Unpickler` whose ``find_class`` only admits numpy's array/dtype/
scalar reconstruction functions, plain containers and ``datetime`` types.
"""

from __future__ import annotations

import io
import pickle
import tokenize
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npformat

from napari_cellcurator.core.errors import InputError

#: (module, name) pairs an object array pickle may reference. Everything else is refused.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    [(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray")
     for n in ("_reconstruct", "scalar")]
    + [(m, "_frombuffer") for m in ("numpy.core.numeric", "numpy._core.numeric")]
    + [("numpy", "ndarray"), ("numpy", "dtype")]
    + [("builtins", n) for n in ("dict", "list", "tuple", "set", "frozenset", "str", "bytes",
                                 "bytearray", "int", "float", "complex", "bool", "slice")]
    + [("__builtin__", n) for n in ("dict", "list", "tuple", "set", "frozenset", "str",
                                    "unicode", "bytearray", "int", "long", "float", "complex",
                                    "bool")]
    + [("_codecs", "encode")]  # protocol-2 pickles store bytes as latin-1 text
    + [("collections", "OrderedDict")]
    + [("datetime", n) for n in ("datetime", "date", "time", "timedelta", "timezone")]
)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global not in :data:`ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        # numpy scalar dtypes pickled by class (e.g. numpy.dtypes.Float64DType) are harmless
        if module in ("numpy", "numpy.dtypes") and _is_numpy_type(module, name):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load global {module}.{name}")


def _is_numpy_type(module: str, name: str) -> bool:
    import importlib

    obj = getattr(importlib.import_module(module), name, None)
    return isinstance(obj, type) and (issubclass(obj, np.generic) or issubclass(obj, np.dtype))


def safe_loads(data: bytes, path: str | Path | None = None) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`; InputError on anything refused."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError,
            ValueError, IndexError, KeyError, ArithmeticError, MemoryError,
            RecursionError) as exc:  # corrupt streams also overflow and recurse
        raise InputError(path, f"unsafe or corrupt pickled data ({exc})",
                         "numpy arrays, plain containers and datetimes only") from None


def _read_header(fh, path: Path) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = npformat.read_magic(fh)
        if version == (1, 0):
            return npformat.read_array_header_1_0(fh)
        if version == (2, 0):
            return npformat.read_array_header_2_0(fh)
        reader = getattr(npformat, "_read_array_header", None)
        if reader is None:
            raise ValueError(f"unsupported .npy version {version}")
        return reader(fh, version)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError,
            tokenize.TokenError) as exc:  # numpy parses the header text with ast/tokenize
        raise InputError(path, f"not a valid .npy file ({exc})") from None


def load_npy(path: str | Path) -> Any:
    """Load a ``.npy`` file safely.

    Numeric arrays go through ``np.load(allow_pickle=False)``; object arrays are rebuilt by the
    restricted unpickler. A 0-d object array (how ``np.save`` stores a dict such as Suite2p's
    ``ops``) is returned as its single element.

    Parameters
    ----------
    path
        The ``.npy`` file.

    Returns
    -------
    numpy.ndarray or object
        The array, or the dict/object held by a 0-d object array.

    Raises
    ------
    InputError
        Missing/corrupt file, or a pickle referencing anything outside the allow-list.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "does not exist")
    with open(path, "rb") as fh:
        shape, _, dtype = _read_header(fh, path)
        if not dtype.hasobject:
            fh.seek(0)
            try:
                return np.load(fh, allow_pickle=False)
            except (ValueError, MemoryError, OSError) as exc:  # short data, absurd shapes
                raise InputError(path, f"unreadable .npy data ({exc})") from None
        arr = safe_loads(fh.read(), path)
    if not isinstance(arr, np.ndarray):
        raise InputError(path, f"pickled payload is a {type(arr).__name__}, not an array")
    if arr.shape != tuple(shape):
        raise InputError(path, f"array shape {arr.shape} differs from header {tuple(shape)}")
    if arr.ndim == 0:
        return arr.item()
    return arr
