"""CIFAR-10 / CIFAR-100 from the standard "python version" batches folder, without plain pickle.

Each batch is a pickled dict with `data` uint8 (N, 3072) in channel-major order (R plane, G, B)
and `labels` (CIFAR-10) or `fine_labels` (CIFAR-100); the meta file holds the class names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seekdeploy.data._locations import (
    default_download_dir,
    describe_roots,
    run_download,
    search_roots,
)
from seekdeploy.data._preprocessing import PixelSource
from seekdeploy.data._safe_pickle import load_pickle_data
from seekdeploy.data._transform import RawDataset
from seekdeploy.data.dataset import AugmentPolicy
from seekdeploy.errors import DatasetError

AUGMENT = AugmentPolicy(hflip=True, crop_padding=4)
_SIDE = 32


@dataclass(frozen=True)
class CifarLayout:
    """File names of one CIFAR variant inside its batches folder."""

    title: str
    folder: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: str
    names_key: str
    torchvision_class: str


CIFAR10 = CifarLayout("CIFAR-10", "cifar-10-batches-py",
                      tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch",
                      "batches.meta", "labels", "label_names", "CIFAR10")
CIFAR100 = CifarLayout("CIFAR-100", "cifar-100-python", ("train",), "test", "meta",
                       "fine_labels", "fine_label_names", "CIFAR100")


def _required(layout: CifarLayout) -> tuple[str, ...]:
    return (*layout.train_files, layout.test_file, layout.meta_file)


def find_folder(layout: CifarLayout, roots: list[Path]) -> Path | None:
    """The first folder (a root itself or `root/<batches folder>`) holding every file."""
    for root in roots:
        for folder in (root, root / layout.folder):
            if all((folder / name).is_file() for name in _required(layout)):
                return folder
    return None


def _as_str_keys(obj: Any, path: Path) -> dict[str, Any]:
    # Python 2 batches give str keys under latin1; batches written by Python 3 give bytes keys.
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: expected a pickled dict, found {type(obj).__name__}")
    return {key.decode("latin1") if isinstance(key, bytes) else str(key): value
            for key, value in obj.items()}


def _read_batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    batch = _as_str_keys(load_pickle_data(path), path)
    if "data" not in batch or label_key not in batch:
        raise DatasetError(f"{path}: missing key 'data' or {label_key!r} (found "
                           f"{sorted(batch)}); is this the right CIFAR variant?")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch[label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * _SIDE * _SIDE:
        raise DatasetError(f"{path}: 'data' must be uint8 (N, 3072), got {data.dtype} "
                           f"{data.shape}")
    if labels.ndim != 1 or len(labels) != len(data) or labels.dtype.kind not in "iu":
        raise DatasetError(f"{path}: {label_key!r} must be {len(data)} integers, got "
                           f"{labels.dtype} {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetError(f"{path}: labels outside 0..{num_classes - 1}")
    return data.reshape(-1, 3, _SIDE, _SIDE), labels.astype(np.int64)  # (N, 3, 32, 32)


def _read_names(path: Path, names_key: str) -> tuple[str, ...]:
    meta = _as_str_keys(load_pickle_data(path), path)
    names = meta.get(names_key)
    if not isinstance(names, (list, tuple)) or not names:
        raise DatasetError(f"{path}: no class-name list under {names_key!r}")
    return tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)


def _download(layout: CifarLayout, target: Path) -> None:
    def fetch(root: Path) -> None:
        import torchvision.datasets as tv_datasets
        from torchvision.datasets.utils import download_and_extract_archive

        source = getattr(tv_datasets, layout.torchvision_class)
        # Only the archive download is used: torchvision's own reader calls plain pickle.load.
        download_and_extract_archive(source.url, str(root), filename=source.filename,
                                     md5=source.tgz_md5)

    run_download(layout.title, target, fetch)


def load_cifar(layout: CifarLayout, data_dir: str | os.PathLike[str] | None,
               download: bool) -> RawDataset:
    """Read a CIFAR batches folder from `data_dir` (or the cache), downloading if allowed."""
    roots = search_roots(data_dir)
    folder = find_folder(layout, roots)
    if folder is None and download:
        _download(layout, roots[0] if data_dir is not None else default_download_dir())
        folder = find_folder(layout, roots)
    if folder is None:
        raise DatasetError(
            f"{layout.title} not found; looked in {describe_roots(roots)} (and their "
            f"{layout.folder}/ sub-folder) for {', '.join(_required(layout))}. Pass --data-dir "
            f"pointing at the extracted '{layout.folder}' folder of the python version, or "
            "enable download (--download) where the network allows"
        )
    class_names = _read_names(folder / layout.meta_file, layout.names_key)
    parts = [_read_batch(folder / name, layout.label_key, len(class_names))
             for name in layout.train_files]
    test_images, test_labels = _read_batch(folder / layout.test_file, layout.label_key,
                                           len(class_names))
    return RawDataset(
        train_images=np.concatenate([images for images, _ in parts]),
        train_labels=np.concatenate([labels for _, labels in parts]),
        test_images=test_images,
        test_labels=test_labels,
        class_names=class_names,
        augment=AUGMENT,
        source=PixelSource(origin=f"{layout.title} python batches: uint8 (N, 3, 32, 32), "
                                  "planes in R, G, B order", colour="RGB"),
    )
