"""Where dataset files are looked for and downloaded to, and the torchvision download guard."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from seekdeploy.errors import DatasetError, require

# Installed by the Debian/Ubuntu package `dataset-fashion-mnist`.
SYSTEM_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


def default_download_dir() -> Path:
    """Folder downloads go to when no data dir is given: $SEEKDEPLOY_DATA_DIR or the user cache."""
    return _user_cache_folder("SEEKDEPLOY_DATA_DIR", "data")


def default_cache_dir() -> Path:
    """Where resized image folders are cached: $SEEKDEPLOY_CACHE_DIR or the user cache."""
    return _user_cache_folder("SEEKDEPLOY_CACHE_DIR", "images")


def _user_cache_folder(variable: str, leaf: str) -> Path:
    explicit = os.environ.get(variable)
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "seekdeploy" / leaf


def search_roots(data_dir: str | os.PathLike[str] | None, system_dirs: tuple[Path, ...] = ()
                 ) -> list[Path]:
    """Folders to search: only `data_dir` when given (the user said where), else system + cache."""
    if data_dir is not None:
        return [Path(data_dir).expanduser()]
    return [*system_dirs, default_download_dir()]


def describe_roots(roots: list[Path]) -> str:
    """'a, b' with each folder marked '(missing)' when it does not exist, for error messages."""
    return ", ".join(f"{root}" + ("" if root.is_dir() else " (missing)") for root in roots)


def run_download(what: str, target: Path, fetch: Callable[[Path], None]) -> None:
    """Run a torchvision download into `target`, turning network/disk failures into DatasetError.

    This path needs the network and cannot be exercised by the offline test suite.
    """
    require("torchvision", purpose=f"downloading {what}")
    try:
        target.mkdir(parents=True, exist_ok=True)
        fetch(target)
    except (OSError, RuntimeError, ValueError) as exc:
        # urllib errors are OSErrors; torchvision raises RuntimeError on checksum mismatch.
        raise DatasetError(
            f"downloading {what} into {target} failed ({exc}); check the network, or fetch the "
            "files yourself and pass --data-dir"
        ) from exc
