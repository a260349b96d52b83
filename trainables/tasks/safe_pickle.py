"""An unpickler that builds numpy arrays and plain containers, and nothing else.

``pickle.load`` calls whatever global a file names, so a data file could run code (see the
"Restricting Globals" section of the ``pickle`` documentation, which this follows). Dicts,
lists, tuples, strings, numbers and bytes are pickle opcodes and need no globals; numpy arrays
need the few globals in ``ALLOWED_GLOBALS``. Any other global is refused.

Both module spellings are admitted: ``numpy.core`` (pickles written by numpy 1.x, such as the
NAS-Bench-360 files) and ``numpy._core`` (numpy 2.x). Allowed names are resolved to the
objects of the installed numpy directly, never by importing the module a file names.
"""
from __future__ import annotations

import _codecs
import importlib
import pickle
from typing import IO, Any, Callable

import numpy as np

# (module, name) pairs that numpy's own pickles use:
#   _reconstruct + ndarray + dtype: ndarray.__reduce__ (protocols 2-4, and 5 for non-contiguous);
#   _frombuffer: ndarray.__reduce_ex__ with protocol 5 (contiguous arrays);
#   scalar: numpy scalars (e.g. np.int64(3));
#   _codecs.encode: how protocol 2 writes the bytes of an array's buffer;
#   bytes: how protocol 2 writes empty bytes (the buffer of an empty array). Below protocol 3
#   the module is "__builtin__"; Python 3's Unpickler renames it only in its own find_class.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
        ("__builtin__", "bytes"),
        ("builtins", "bytes"),
    }
)


def _numpy_core(submodule: str) -> Any:
    """The installed numpy's ``_core.<submodule>`` (numpy >= 1.26) or ``core.<submodule>``."""
    try:
        return importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:  # numpy without the _core alias
        return importlib.import_module(f"numpy.core.{submodule}")


def _resolve(module: str, name: str) -> Callable[..., Any]:
    """The object an allowed (module, name) pair stands for in the installed numpy."""
    if module == "numpy":
        return {"ndarray": np.ndarray, "dtype": np.dtype}[name]
    if module == "_codecs":
        return _codecs.encode
    if module in ("__builtin__", "builtins"):
        return bytes
    submodule = module.rsplit(".", 1)[1]  # "numpy._core.multiarray" -> "multiarray"
    return getattr(_numpy_core(submodule), name)


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` admits only ``ALLOWED_GLOBALS``."""

    def find_class(self, module: str, name: str) -> Any:
        """Resolve an allowed global.

        Raises:
            pickle.UnpicklingError: naming the refused global, for anything not allowed.
        """
        if (module, name) not in ALLOWED_GLOBALS:
            allowed = ", ".join(sorted(f"{m}.{n}" for m, n in ALLOWED_GLOBALS))
            raise pickle.UnpicklingError(
                f"refused global {module}.{name}: this loader builds only numpy arrays and "
                f"plain containers (allowed globals: {allowed})"
            )
        return _resolve(module, name)


def restricted_load(fileobj: IO[bytes], encoding: str = "ASCII") -> Any:
    """Unpickle ``fileobj`` admitting only numpy arrays and plain containers.

    Args:
        fileobj: A binary file object positioned at the start of a pickle.
        encoding: How Python-2 ``str`` objects are decoded (``"bytes"`` for CIFAR-10's
            python batches, as its documentation says).

    Returns:
        The unpickled object.

    Raises:
        pickle.UnpicklingError: if the pickle names a global outside ``ALLOWED_GLOBALS``
            or is malformed.

    Example:
        >>> import io
        >>> data = pickle.dumps({"x": np.arange(3, dtype=np.uint8)}, protocol=5)
        >>> restricted_load(io.BytesIO(data))["x"].tolist()
        [0, 1, 2]
    """
    return RestrictedUnpickler(fileobj, encoding=encoding).load()
