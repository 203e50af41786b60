"""Atomic file writes and hashing: nothing is ever left truncated under its final name.

Every artifact (checkpoint, ONNX model, manifest, report) is written to a temporary file in the
same folder, flushed and fsynced, then renamed over the final name; a crash leaves either the old
file or the new one, plus at most a stray `.tmp-*` file that readers ignore.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from seekdeploy.errors import SeekdeployError

TMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `final`; on success fsync it and rename it onto `final`.

    The caller writes the temporary path however it likes (torch.save, onnx.save, …). On any
    exception the temporary file is removed and `final` is untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{final.name}.", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # mkstemp creates 0600 files; artifacts are ordinary files meant to be copied to devices
        # and shared, so give them the permissions a plain open() would (0666 less the umask).
        os.chmod(tmp, 0o666 & ~_current_umask())
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SeekdeployError(
            f"could not write {final}: {exc.strerror or exc}; the previous file (if any) is kept. "
            "Free some disk space or choose another output folder."
        ) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    # Make the rename itself durable; not every filesystem allows opening a folder.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(final: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `final` atomically and return the final path."""
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
    return Path(final)


def atomic_write_text(final: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 `text` to `final` atomically and return the final path."""
    return atomic_write_bytes(final, text.encode("utf-8"))


def atomic_write_json(final: str | os.PathLike[str], obj: Any) -> Path:
    """Write `obj` as indented JSON to `final` atomically and return the final path."""
    return atomic_write_text(final, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json_object(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON object in `path`, or {} when the file is missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def sha256_file(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's contents."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


def safe_name(name: str, what: str = "name") -> str:
    """Return `name` if it is a plain file/folder name (no separators, no '..'), else raise.

    Used for run names, export names and anything else that becomes a path component.
    """
    bad = (
        not name
        or name in {".", ".."}
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or name.startswith("-")
    )
    if bad:
        raise SeekdeployError(
            f"invalid {what} {name!r}: use a plain name of letters, digits, '-', '_' and '.', "
            "without path separators or '..'"
        )
    return name
