"""The dataset registry: `load_dataset` by name, `list_datasets`, `dataset_status` for doctor."""

from __future__ import annotations

import enum
import importlib.util
import os
from pathlib import Path

import numpy as np

from seekdeploy.data import _cifar, _fashion_mnist
from seekdeploy.data._locations import SYSTEM_FASHION_MNIST_DIR, search_roots
from seekdeploy.data._preprocessing import PixelSource
from seekdeploy.data._transform import RawDataset, build_dataset
from seekdeploy.data.dataset import AugmentPolicy, ImageDataset
from seekdeploy.errors import DatasetError, did_you_mean, require

IMAGEFOLDER_PREFIX = "imagefolder:"
_MAX_SIDE_PX = 4096
_DIGITS_LEVELS = 16  # sklearn's digits have 17 grey levels, 0..16
DIGITS_SOURCE = PixelSource(
    origin="sklearn.datasets.load_digits().images: float64 (N, 8, 8), one grey channel",
    colour="grey", value_range=(0.0, float(_DIGITS_LEVELS)),
    to_uint8=f"round_half_even(value * 255 / {_DIGITS_LEVELS}), clipped to [0, 255], uint8",
    polarity="bright ink on a dark background (0 = background, 16 = full ink)")


class DatasetName(str, enum.Enum):
    """The built-in dataset sources; `imagefolder` takes a path as `imagefolder:PATH`."""

    DIGITS = "digits"
    FASHION_MNIST = "fashion-mnist"
    CIFAR10 = "cifar10"
    CIFAR100 = "cifar100"
    IMAGEFOLDER = "imagefolder"


_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist",
            "cifar-10": "cifar10", "cifar_10": "cifar10",
            "cifar-100": "cifar100", "cifar_100": "cifar100"}


def list_datasets() -> list[str]:
    """Names `load_dataset` accepts; `imagefolder` is used as `imagefolder:PATH`."""
    return [member.value for member in DatasetName]


def parse_dataset_name(name: str) -> tuple[DatasetName, str | None]:
    """Split a user's dataset name into the source and, for `imagefolder:PATH`, the path."""
    text = name.strip()
    if text.lower().startswith(IMAGEFOLDER_PREFIX):
        path = text[len(IMAGEFOLDER_PREFIX):]
        if not path:
            raise DatasetError("imagefolder needs a path: use imagefolder:PATH")
        return DatasetName.IMAGEFOLDER, path
    key = _ALIASES.get(text.lower(), text.lower())
    if key == DatasetName.IMAGEFOLDER.value:
        raise DatasetError("imagefolder needs a path: use imagefolder:PATH, "
                           "e.g. imagefolder:./photos")
    try:
        return DatasetName(key), None
    except ValueError:
        raise DatasetError(
            f"unknown dataset {name!r}{did_you_mean(key, list_datasets())}; choose one of "
            f"{', '.join(list_datasets()[:-1])} or imagefolder:PATH"
        ) from None


def _load_digits() -> RawDataset:
    datasets = require("sklearn.datasets", purpose="the built-in digits dataset")
    bunch = datasets.load_digits()
    # 8x8 images with 17 grey levels (0..16): stretch to the full uint8 range (DIGITS_SOURCE).
    images = np.clip(np.rint(bunch.images * (255.0 / _DIGITS_LEVELS)), 0, 255).astype(np.uint8)
    return RawDataset(
        train_images=images[:, None],  # (1797, 1, 8, 8)
        train_labels=np.asarray(bunch.target, dtype=np.int64),
        test_images=None,
        test_labels=None,
        class_names=tuple(str(int(n)) for n in bunch.target_names),
        augment=AugmentPolicy(hflip=False, crop_padding=1),  # flipped digits are other glyphs
        source=DIGITS_SOURCE,
    )


def _check_options(channels: int, height: int, width: int, val_fraction: float) -> None:
    if channels not in (1, 3):
        raise DatasetError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    for label, side in (("height", height), ("width", width)):
        if not isinstance(side, int) or not 1 <= side <= _MAX_SIDE_PX:
            raise DatasetError(f"image {label} must be an integer 1..{_MAX_SIDE_PX}, got {side!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"val_fraction must be in [0, 1), got {val_fraction}")


def load_dataset(name: str, *, channels: int, height: int, width: int, seed: int = 0,
                 data_dir: str | os.PathLike[str] | None = None, val_fraction: float = 0.1,
                 download: bool = False, workers: int | None = None, skip_bad_files: bool = False,
                 image_cache: bool = True) -> ImageDataset:
    """Load a dataset by name, converted to (channels, height, width) and split from `seed`.

    `data_dir` is where to look for files (Fashion-MNIST, CIFAR); without it the system folder and
    the user cache are searched. `download=True` lets torchvision fetch a missing dataset. The same
    arguments always give identical splits. Raises `DatasetError` saying where it looked and how
    to get the data. Image folders only: `workers` decoding processes (None: one per core),
    `skip_bad_files` leaves unusable files out instead of failing, `image_cache=False` decodes
    into memory instead of the on-disk cache (see `_imagefolder`).
    """
    source, path = parse_dataset_name(name)
    _check_options(channels, height, width, val_fraction)
    if source is DatasetName.IMAGEFOLDER:
        from seekdeploy.data._imagefolder import load_imagefolder

        # An absolute path in the name lets a run's manifest reload the data from any folder.
        canonical = f"{IMAGEFOLDER_PREFIX}{Path(str(path)).expanduser().resolve()}"
        return load_imagefolder(str(path), name=canonical, channels=channels, height=height,
                                width=width, seed=seed, val_fraction=val_fraction,
                                workers=workers, skip_bad_files=skip_bad_files,
                                cache=image_cache)
    if source is DatasetName.DIGITS:
        raw = _load_digits()
    elif source is DatasetName.FASHION_MNIST:
        raw = _fashion_mnist.load_fashion_mnist(data_dir, download)
    else:
        layout = _cifar.CIFAR10 if source is DatasetName.CIFAR10 else _cifar.CIFAR100
        raw = _cifar.load_cifar(layout, data_dir, download)
    return build_dataset(source.value, raw, channels=channels, height=height, width=width,
                         seed=seed, val_fraction=val_fraction)


def dataset_status(data_dir: str | os.PathLike[str] | None = None) -> list[tuple[str, bool, str]]:
    """For `seekdeploy doctor`: (name, usable here without a download?, where found / how to get).

    Only checks that the files exist; it does not parse them.
    """
    rows: list[tuple[str, bool, str]] = []
    has_sklearn = importlib.util.find_spec("sklearn") is not None
    rows.append(("digits", has_sklearn, "bundled with scikit-learn" if has_sklearn
                 else "needs scikit-learn: pip install scikit-learn"))
    try:
        files = _fashion_mnist.find_files(search_roots(data_dir, (SYSTEM_FASHION_MNIST_DIR,)))
    except DatasetError as exc:
        rows.append(("fashion-mnist", False, str(exc)))
    else:
        rows.append(("fashion-mnist", files is not None,
                     f"found in {files['train_images'].parent}" if files else
                     "not found: sudo apt-get install dataset-fashion-mnist, or --data-dir, "
                     "or --download"))
    for title, layout in (("cifar10", _cifar.CIFAR10), ("cifar100", _cifar.CIFAR100)):
        folder = _cifar.find_folder(layout, search_roots(data_dir))
        rows.append((title, folder is not None, f"found in {folder}" if folder else
                     f"not found: --data-dir pointing at '{layout.folder}', or --download"))
    has_pil = importlib.util.find_spec("PIL") is not None
    rows.append(("imagefolder", has_pil, "use imagefolder:PATH (class sub-folders of images)"
                 if has_pil else "needs Pillow: pip install pillow"))
    return rows
