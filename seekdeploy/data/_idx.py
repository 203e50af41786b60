"""Strict reader for IDX files (the MNIST / Fashion-MNIST format), raw or gzip-compressed.

Layout: two zero bytes, a dtype code, the number of dimensions, one big-endian uint32 per
dimension, then exactly prod(dims) big-endian values. Anything else is a `DatasetError` that names
the file and what is wrong, so a truncated download is never silently half-loaded.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from seekdeploy.errors import DatasetError

_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_MAX_DIMS = 4


def read_file_bytes(path: Path) -> bytes:
    """Read a file, transparently decompressing `.gz`; a damaged file is a `DatasetError`."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        # gzip raises BadGzipFile (an OSError) or EOFError for a truncated stream.
        raise DatasetError(
            f"cannot read {path}: {exc}; the file is damaged or incomplete - delete it and "
            "reinstall or re-download the dataset"
        ) from exc


def parse_idx(data: bytes, source: str) -> np.ndarray:
    """Parse IDX bytes into a native-endian numpy array; `source` names the file in errors."""
    if len(data) < 4:
        raise DatasetError(f"{source}: only {len(data)} bytes, too short for an IDX header")
    if data[0] != 0 or data[1] != 0:
        raise DatasetError(
            f"{source}: bad magic number 0x{data[:4].hex()} (an IDX file starts with two zero "
            "bytes); this is not an IDX file"
        )
    code, ndims = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise DatasetError(f"{source}: unknown IDX dtype code 0x{code:02x} in the magic number")
    if not 1 <= ndims <= _MAX_DIMS:
        raise DatasetError(f"{source}: {ndims} dimensions in the header; expected 1 to {_MAX_DIMS}")
    header_bytes = 4 + 4 * ndims
    if len(data) < header_bytes:
        raise DatasetError(f"{source}: truncated header ({len(data)} of {header_bytes} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndims, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = header_bytes + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "has trailing bytes"
        raise DatasetError(
            f"{source}: {state}: header says shape {dims} ({expected} bytes) but the file has "
            f"{len(data)} bytes; delete it and reinstall or re-download the dataset"
        )
    values = np.frombuffer(data, dtype=dtype, offset=header_bytes).reshape(dims)
    return values.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (raw or `.gz`) into a numpy array."""
    return parse_idx(read_file_bytes(path), str(path))
