"""The on-disk cache of an image folder's resized pixels: decoded once, memory-mapped ever after.

One folder per (image folder, file list with sizes and modification times, target mode and size)
under `default_cache_dir()`:

    <folder name>-<key>/decoded.npy    uint8 (N, C, H, W), every file in listing order (bad: zero)
    <folder name>-<key>/decoded.json   what was decoded, and every bad file with its reason
    <folder name>-<key>/split-<h>.npy  the good rows in split order (train, val, test), so each
                                       split is one contiguous memory-mapped slice
    <folder name>-<key>/split-<h>.json the split sizes and the train split's channel histogram

Each file is written to a temporary name and renamed when complete, its `.json` last (the `.json`
is the mark of a finished entry). A lock file makes concurrent builders (torchrun ranks, two runs)
wait for the first: one process decodes, every other reads. Reading maps the file copy-on-write:
pages come from the disk as batches touch them, so memory does not grow with the folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seekdeploy._io import atomic_path, atomic_write_json, read_json_object
from seekdeploy.data._decode import DecodeTarget, decode_into
from seekdeploy.data._transform import channel_histogram

FORMAT_VERSION = 1
DECODED = "decoded"
_COPY_ROWS = 1024  # rows per chunk when arranging splits: bounds the temporary copy


@dataclass(frozen=True)
class FileEntry:
    """One listed image: path relative to the folder, size in bytes, modification time in ns."""

    relative: str
    size_bytes: int
    mtime_ns: int


def list_entries(root: Path, paths: Sequence[Path]) -> list[FileEntry]:
    """Size and modification time of each path (what the cache key is made of)."""
    entries = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:  # a dangling link, or a file removed meanwhile: decoding will say so
            stat = None
        entries.append(FileEntry(path.relative_to(root).as_posix(),
                                 stat.st_size if stat else -1, stat.st_mtime_ns if stat else -1))
    return entries


def cache_key(root: Path, entries: Sequence[FileEntry], target: DecodeTarget) -> str:
    """Hex digest naming the cache entry: any change to the files or the target gives a new one."""
    payload = json.dumps({"version": FORMAT_VERSION, "root": str(root),
                          "files": [[e.relative, e.size_bytes, e.mtime_ns] for e in entries],
                          "mode": target.mode, "height": target.height, "width": target.width,
                          "max_pixels": target.max_pixels})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:20]


def entry_folder(cache_dir: Path, root: Path, key: str) -> Path:
    """Where the cache entry of `root` with `key` lives."""
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in root.name) or "images"
    return cache_dir / f"{name}-{key}"


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # no flock (Windows): concurrent builders each write, the last rename wins
        yield
        return
    with open(folder / "lock", "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # released when the handle closes
        yield


def _open(path: Path) -> np.ndarray:
    # Copy-on-write: writable for torch.from_numpy, while the file itself never changes.
    return np.load(path, mmap_mode="c")


def load_or_decode(folder: Path, root: Path, paths: Sequence[Path], target: DecodeTarget,
                   workers: int, progress: Callable[[int, str], contextlib.AbstractContextManager]
                   ) -> tuple[np.ndarray, dict[str, str], bool]:
    """The decoded pixels of `paths` (memory-mapped), {relative path: reason} of the bad files,
    and whether this call decoded them (False: read from the cache)."""
    meta_path, data_path = folder / f"{DECODED}.json", folder / f"{DECODED}.npy"
    built = False
    with _locked(folder):
        if not (meta_path.is_file() and data_path.is_file()):
            _remove_stale(folder, root, target)
            shape = (len(paths), 1 if target.mode == "L" else 3, target.height, target.width)
            with atomic_path(data_path) as tmp:
                pixels = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
                with progress(len(paths), f"decoding {len(paths)} images of {root}") as advance:
                    bad_rows = decode_into(pixels, paths, target, workers, advance)
                pixels.flush()
                del pixels
            bad = {paths[row].relative_to(root).as_posix(): reason
                   for row, reason in sorted(bad_rows.items())}
            atomic_write_json(meta_path, {"format": FORMAT_VERSION, "root": str(root),
                                          "target": _target_json(target), "images": len(paths),
                                          "bad_files": bad})
            built = True
    meta = read_json_object(meta_path)
    return _open(data_path), dict(meta.get("bad_files", {})), built


def _target_json(target: DecodeTarget) -> list:
    return [target.mode, target.height, target.width, target.max_pixels]


def _remove_stale(folder: Path, root: Path, target: DecodeTarget) -> None:
    # An older entry of the same folder at the same size will not be read again: its files have
    # changed since. Entries at other sizes (another profile) stay.
    for other in folder.parent.glob(f"{folder.name.rsplit('-', 1)[0]}-*"):
        meta = read_json_object(other / f"{DECODED}.json")
        if (other != folder and meta.get("root") == str(root)
                and meta.get("target") == _target_json(target)):
            shutil.rmtree(other, ignore_errors=True)


def load_or_arrange(folder: Path | None, decoded: np.ndarray, order: np.ndarray,
                    train_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows `order` of `decoded` (train rows first), memory-mapped from `folder`, and the train
    rows' (C, 256) channel histogram. `folder` None: built in memory, nothing written."""
    order = np.ascontiguousarray(order, dtype=np.int64)
    if folder is None:
        arranged = np.empty((len(order), *decoded.shape[1:]), dtype=np.uint8)
        return arranged, _copy_rows(arranged, decoded, order, train_count)
    digest = hashlib.sha256(order.tobytes() + str(train_count).encode()).hexdigest()[:16]
    meta_path, data_path = folder / f"split-{digest}.json", folder / f"split-{digest}.npy"
    with _locked(folder):
        if not (meta_path.is_file() and data_path.is_file()):
            with atomic_path(data_path) as tmp:
                arranged = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                                     shape=(len(order), *decoded.shape[1:]))
                histogram = _copy_rows(arranged, decoded, order, train_count)
                arranged.flush()
                del arranged
            atomic_write_json(meta_path, {"format": FORMAT_VERSION, "rows": len(order),
                                          "train_rows": train_count,
                                          "train_histogram": histogram.tolist()})
    meta = read_json_object(meta_path)
    return _open(data_path), np.asarray(meta["train_histogram"], dtype=np.int64)


def _copy_rows(out: np.ndarray, decoded: np.ndarray, order: np.ndarray,
               train_count: int) -> np.ndarray:
    histogram = np.zeros((decoded.shape[1], 256), dtype=np.int64)
    for start in range(0, len(order), _COPY_ROWS):
        rows = decoded[order[start:start + _COPY_ROWS]]  # (n, C, H, W), at most _COPY_ROWS
        out[start:start + len(rows)] = rows
        if start < train_count:
            histogram += channel_histogram(rows[:max(0, train_count - start)])
    return histogram
