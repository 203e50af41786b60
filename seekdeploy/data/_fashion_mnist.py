"""Fashion-MNIST from its four IDX files (raw or .gz): official train/test, 28x28 grey."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from seekdeploy.data._idx import read_idx
from seekdeploy.data._locations import (
    SYSTEM_FASHION_MNIST_DIR,
    default_download_dir,
    describe_roots,
    run_download,
    search_roots,
)
from seekdeploy.data._preprocessing import PixelSource
from seekdeploy.data._transform import RawDataset
from seekdeploy.data.dataset import AugmentPolicy
from seekdeploy.errors import DatasetError

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
AUGMENT = AugmentPolicy(hflip=True, crop_padding=2)
SOURCE = PixelSource(origin="Fashion-MNIST IDX files: uint8 (N, 28, 28), one grey channel",
                     colour="grey",
                     polarity="bright garment on a black background (0 = background)")
_LAYOUTS = (".", "FashionMNIST/raw", "fashion-mnist")  # plain, torchvision's, a named sub-folder
_HOW_TO_GET = (
    "install it with `sudo apt-get install dataset-fashion-mnist` (files land in "
    f"{SYSTEM_FASHION_MNIST_DIR}), pass --data-dir pointing at a folder holding the four IDX "
    "files, or enable download (--download) where the network allows"
)


def _find_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find_files(roots: list[Path]) -> dict[str, Path] | None:
    """The four IDX paths from the first folder (under any known layout) that has all of them.

    A folder holding only some of the four is an error, since it is almost certainly a broken copy.
    """
    for root in roots:
        for layout in _LAYOUTS:
            folder = root / layout
            if not folder.is_dir():
                continue
            found = {key: _find_file(folder, stem) for key, stem in FILES.items()}
            if all(found.values()):
                return {key: path for key, path in found.items() if path is not None}
            present = [key for key, path in found.items() if path]
            if present:
                missing = [FILES[key] for key, path in found.items() if path is None]
                raise DatasetError(
                    f"Fashion-MNIST in {folder} is incomplete: missing {', '.join(missing)} "
                    "(raw or .gz); " + _HOW_TO_GET
                )
    return None


def _download(target: Path) -> None:
    def fetch(root: Path) -> None:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(root), train=True, download=True)  # fetches all four files

    run_download("Fashion-MNIST", target, fetch)


def _check_pair(images: np.ndarray, labels: np.ndarray, image_path: Path, label_path: Path
                ) -> None:
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DatasetError(f"{image_path}: expected uint8 images (N, H, W), got {images.dtype} "
                           f"{images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DatasetError(f"{label_path}: expected uint8 labels (N,), got {labels.dtype} "
                           f"{labels.shape}")
    if len(images) != len(labels):
        raise DatasetError(f"{image_path} has {len(images)} images but {label_path} has "
                           f"{len(labels)} labels; one of them is from another dataset or damaged")
    if len(labels) and int(labels.max()) >= len(CLASS_NAMES):
        raise DatasetError(f"{label_path}: label {int(labels.max())} is out of range 0-9")


def load_fashion_mnist(data_dir: str | os.PathLike[str] | None, download: bool) -> RawDataset:
    """Read the four IDX files from `data_dir` (else system folder / cache); download if allowed."""
    roots = search_roots(data_dir, (SYSTEM_FASHION_MNIST_DIR,))
    files = find_files(roots)
    if files is None and download:
        _download(roots[0] if data_dir is not None else default_download_dir())
        files = find_files(roots)
    if files is None:
        raise DatasetError(
            f"Fashion-MNIST not found; looked in {describe_roots(roots)}. " + _HOW_TO_GET
        )
    arrays = {key: read_idx(path) for key, path in files.items()}
    for split in ("train", "test"):
        _check_pair(arrays[f"{split}_images"], arrays[f"{split}_labels"],
                    files[f"{split}_images"], files[f"{split}_labels"])
    return RawDataset(
        train_images=arrays["train_images"][:, None],  # (N, 1, 28, 28)
        train_labels=arrays["train_labels"].astype(np.int64),
        test_images=arrays["test_images"][:, None],
        test_labels=arrays["test_labels"].astype(np.int64),
        class_names=CLASS_NAMES,
        augment=AUGMENT,
        source=SOURCE,
    )
