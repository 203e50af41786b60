"""Any folder of class sub-folders of images (`imagefolder:PATH`), decoded with Pillow.

`PATH/<class>/<image>`: split deterministically into train/val/test. `PATH/train/<class>/...` and
`PATH/test/<class>/...` (and optionally `PATH/val/...`): those splits are used as given.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np

from seekdeploy.data._preprocessing import PixelSource
from seekdeploy.data._transform import RawDataset, resize_images
from seekdeploy.data.dataset import AugmentPolicy
from seekdeploy.errors import DatasetError, require

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm", ".pgm",
                            ".pbm", ".tif", ".tiff"})
_PIL_MODES = {1: "L", 3: "RGB"}
_LAYOUT_HELP = ("lay it out as PATH/<class name>/<image files>, or PATH/train/<class>/... plus "
                "PATH/test/<class>/...")


def _class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _decode(path: Path, mode: str, image_module: ModuleType) -> np.ndarray:
    try:
        with image_module.open(path) as image:
            pixels = np.asarray(image.convert(mode), dtype=np.uint8)
    except (OSError, ValueError, image_module.DecompressionBombError) as exc:
        raise DatasetError(f"cannot decode image {path}: {exc}; remove or replace the file"
                           ) from exc
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)  # (C, H, W)


def _load_images(paths: list[Path], channels: int, height: int, width: int) -> np.ndarray:
    """Decode and resize images of any sizes to uint8 (N, C, height, width), batched by size."""
    out = np.empty((len(paths), channels, height, width), dtype=np.uint8)
    by_size: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}
    image_module = require("PIL.Image", purpose="reading image folders")
    for index, path in enumerate(paths):
        pixels = _decode(path, _PIL_MODES[channels], image_module)
        by_size.setdefault(pixels.shape[1:], []).append((index, pixels))
    for group in by_size.values():
        indices = [index for index, _ in group]
        out[indices] = resize_images(np.stack([pixels for _, pixels in group]), height, width)
    return out


def _read_split(folder: Path, class_names: tuple[str, ...], channels: int, height: int,
                width: int, require_all: bool) -> tuple[np.ndarray, np.ndarray]:
    paths: list[Path] = []
    labels: list[int] = []
    for class_folder in _class_folders(folder):
        if class_folder.name not in class_names:
            raise DatasetError(f"{class_folder}: class {class_folder.name!r} is not among the "
                               f"training classes {list(class_names)}")
        files = _image_files(class_folder)
        if not files and require_all:
            suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
            raise DatasetError(f"{class_folder}: no image files ({suffixes})")
        paths += files
        labels += [class_names.index(class_folder.name)] * len(files)
    if not paths:
        raise DatasetError(f"{folder}: no images in any class sub-folder; " + _LAYOUT_HELP)
    return _load_images(paths, channels, height, width), np.asarray(labels, dtype=np.int64)


def load_imagefolder(path: str, *, channels: int, height: int, width: int) -> RawDataset:
    """Read a class-per-sub-folder image tree, already converted to (channels, height, width)."""
    if channels not in _PIL_MODES:
        raise DatasetError(f"cannot load {channels}-channel images; use channels 1 or 3")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist or is not a folder; "
                           + _LAYOUT_HELP)
    has_splits = (root / "train").is_dir() and (root / "test").is_dir()
    train_root = root / "train" if has_splits else root
    class_names = tuple(p.name for p in _class_folders(train_root))
    if len(class_names) < 2:
        raise DatasetError(f"{train_root}: found {len(class_names)} class sub-folder(s); a "
                           "classifier needs at least 2. " + _LAYOUT_HELP)
    load = dict(class_names=class_names, channels=channels, height=height, width=width)
    train_images, train_labels = _read_split(train_root, require_all=True, **load)
    test_images = test_labels = val_images = val_labels = None
    if has_splits:
        test_images, test_labels = _read_split(root / "test", require_all=False, **load)
        if (root / "val").is_dir():
            val_images, val_labels = _read_split(root / "val", require_all=False, **load)
    # Images are already at the target size, so the CIFAR-style 1/8 crop padding is set here.
    augment = AugmentPolicy(hflip=True, crop_padding=max(1, round(min(height, width) / 8)))
    mode = _PIL_MODES[channels]
    source = PixelSource(
        origin=f"image files decoded with Pillow, then Image.convert({mode!r})"
               + (" (Pillow's ITU-R 601-2 luma: L = R*299/1000 + G*587/1000 + B*114/1000)"
                  if mode == "L" else " (grey replicated to R = G = B; alpha dropped)"),
        colour="grey" if mode == "L" else "RGB", any_size=True)
    return RawDataset(train_images, train_labels, test_images, test_labels, class_names, augment,
                      val_images, val_labels, source)
