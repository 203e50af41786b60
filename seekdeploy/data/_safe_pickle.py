"""A restricted unpickler for dataset batches (CIFAR's "python version"): data only, no code.

Plain `pickle.load` on a user-supplied file runs whatever callables the file names. This
unpickler resolves only the handful of globals that numpy arrays and builtin containers need;
any other global (os.system, builtins.eval, subprocess.Popen, ...) is refused before it is
called, and the file is reported as a `DatasetError`.
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from seekdeploy.errors import DatasetError

_MAX_BATCH_BYTES = 1 << 30  # a CIFAR batch is ~30 MiB; refuse absurd files before reading them


class RefusedGlobal(pickle.UnpicklingError):
    """The file names a callable outside the allow-list; nothing of it was run."""


def _encode_latin1(text: str, encoding: str = "latin1") -> bytes:
    # Protocol-2 pickles of `bytes` use _codecs.encode(str, "latin1"); allow nothing else.
    if encoding not in {"latin1", "latin-1"} or not isinstance(text, str):
        raise RefusedGlobal(f"refused _codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    # Resolve numpy's private reconstruct helpers from real objects, not from their module paths,
    # which moved between numpy 1 (numpy.core) and numpy 2 (numpy._core).
    reconstruct = np.empty(0).__reduce__()[0]
    scalar = np.float64(0).__reduce__()[0]
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _encode_latin1,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = reconstruct
        allowed[(module, "scalar")] = scalar
    for module in ("builtins", "__builtin__"):
        for container in (set, frozenset, bytearray, list, dict, tuple):
            allowed[(module, container.__name__)] = container
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only builds numpy arrays, numpy scalars/dtypes and builtin containers."""

    _ALLOWED = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        """Return an allowed global or refuse the whole file."""
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise RefusedGlobal(
                f"refused to load global {module}.{name}: only numpy arrays and builtin "
                "containers are allowed in a dataset batch"
            ) from None


def load_pickle_data(path: Path) -> Any:
    """Unpickle a dataset file with `RestrictedUnpickler` (latin1 strings for Python 2 files)."""
    try:
        size = path.stat().st_size
        if size > _MAX_BATCH_BYTES:
            raise DatasetError(f"{path}: {size} bytes is too large for a dataset batch file")
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except RefusedGlobal as exc:
        raise DatasetError(
            f"{path}: not a safe dataset batch ({exc}); it was not loaded. Use the official "
            "'python version' files"
        ) from exc
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, AttributeError,
            KeyError) as exc:
        raise DatasetError(
            f"{path}: damaged or not a pickled batch ({type(exc).__name__}: {exc}); delete it "
            "and re-download the dataset"
        ) from exc
