"""Any folder of class sub-folders of images (`imagefolder:PATH`), decoded with Pillow.

`PATH/<class>/<image>`: split deterministically into train/val/test. `PATH/train/<class>/...` and
`PATH/test/<class>/...` (and optionally `PATH/val/...`): those splits are used as given.

Images are decoded and resized one by one in worker processes (`_decode`) into a memory-mapped
cache (`_image_cache`), so memory holds at most one full-size image per worker and the resized
pixels come from the disk as batches need them. Every file is checked before training starts.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seekdeploy.data import _image_cache
from seekdeploy.data._decode import PIL_MODES, DecodeTarget, decode_into, default_max_pixels
from seekdeploy.data._decode import default_workers
from seekdeploy.data._locations import default_cache_dir
from seekdeploy.data._preprocessing import PixelSource, describe_preprocessing
from seekdeploy.data._transform import carve_splits, stats_from_histogram
from seekdeploy.data.dataset import AugmentPolicy, ImageDataset, ImageSplit
from seekdeploy.errors import DatasetError, require

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm", ".pgm",
                            ".pbm", ".tif", ".tiff"})
_LAYOUT_HELP = ("lay it out as PATH/<class name>/<image files>, or PATH/train/<class>/... plus "
                "PATH/test/<class>/...")
_LISTED_BAD_FILES = 10


@dataclass(frozen=True)
class FolderListing:
    """Every image file of a folder in decode order (official train, then test, then val), its
    label, and which official split it belongs to (0 train, 1 test, 2 val)."""

    root: Path
    class_names: tuple[str, ...]
    paths: list[Path]
    labels: np.ndarray  # int64 (N,)
    official: np.ndarray  # int8 (N,)
    has_test: bool
    has_val: bool


def _class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _list_split(folder: Path, class_names: tuple[str, ...],
                require_all: bool) -> tuple[list[Path], list[int]]:
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
    return paths, labels


def list_folder(path: str) -> FolderListing:
    """Find the classes and image files of an image folder (nothing is decoded)."""
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist or is not a folder; "
                           + _LAYOUT_HELP)
    has_test = (root / "train").is_dir() and (root / "test").is_dir()
    train_root = root / "train" if has_test else root
    class_names = tuple(p.name for p in _class_folders(train_root))
    if len(class_names) < 2:
        raise DatasetError(f"{train_root}: found {len(class_names)} class sub-folder(s); a "
                           "classifier needs at least 2. " + _LAYOUT_HELP)
    has_val = has_test and (root / "val").is_dir()
    folders = [train_root] + ([root / "test"] if has_test else []) + ([root / "val"] if has_val
                                                                      else [])
    paths: list[Path] = []
    labels: list[int] = []
    official: list[int] = []
    for kind, folder in enumerate(folders):
        split_paths, split_labels = _list_split(folder, class_names, require_all=kind == 0)
        paths += split_paths
        labels += split_labels
        official += [kind] * len(split_paths)
    return FolderListing(root, class_names, paths, np.asarray(labels, dtype=np.int64),
                         np.asarray(official, dtype=np.int8), has_test, has_val)


@contextlib.contextmanager
def _progress_bar(total: int, description: str) -> Iterator[Callable[[int], None]]:
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeRemainingColumn)

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    # Transient: the bar leaves no line behind (a log gets none), so that a refusal found by the
    # decode stays the one line it prints; load_imagefolder says the decode was done once checked.
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda count: progress.advance(task, count)


def _check_bad_files(listing: FolderListing, bad: dict[str, str], skip: bool,
                     cache_note: str) -> np.ndarray:
    """Boolean mask of usable files; bad files are an error unless `skip` (then reported)."""
    good = np.ones(len(listing.paths), dtype=bool)
    if not bad:
        return good
    relative = [p.relative_to(listing.root).as_posix() for p in listing.paths]
    good = np.asarray([name not in bad for name in relative], dtype=bool)
    named = [f"{listing.root / name}: {reason}"
             for name, reason in list(bad.items())[:_LISTED_BAD_FILES]]
    if len(bad) > _LISTED_BAD_FILES:
        named.append(f"... and {len(bad) - _LISTED_BAD_FILES} more{cache_note}")
    if not skip:  # one line, as every refused input is
        raise DatasetError(
            f"{len(bad)} of {len(listing.paths)} files in {listing.root} are not usable images "
            f"(found before training started): {'; '.join(named)}; remove or replace them, or "
            "train without them with --skip-bad-files")
    print(f"skipped {len(bad)} bad image file(s) of {len(listing.paths)} in {listing.root}:\n"
          + "\n".join(f"  {line}" for line in named), file=sys.stderr)
    return good


def _split_order(listing: FolderListing, good: np.ndarray, seed: int,
                 val_fraction: float) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Rows (train, then val, then test) of the good files, and the three split sizes."""
    rows = {kind: np.flatnonzero(good & (listing.official == kind)) for kind in (0, 1, 2)}
    given = {0: True, 1: listing.has_test, 2: listing.has_val}
    for kind, name in ((0, "train"), (1, "test"), (2, "val")):
        if given[kind] and not len(rows[kind]):
            raise DatasetError(f"{listing.root}: no usable images left in the {name} split after "
                               "skipping bad files; add images")
    keep, val, test = carve_splits(listing.labels[rows[0]], carve_test=not listing.has_test,
                                   carve_val=not listing.has_val, seed=seed,
                                   val_fraction=val_fraction)
    val_rows = rows[2] if listing.has_val else rows[0][val]
    test_rows = rows[1] if listing.has_test else rows[0][test]
    order = np.concatenate([rows[0][keep], val_rows, test_rows])
    return order, (len(keep), len(val_rows), len(test_rows))


def _pixel_source(mode: str) -> PixelSource:
    return PixelSource(
        origin=f"image files decoded with Pillow, then Image.convert({mode!r})"
               + (" (Pillow's ITU-R 601-2 luma: L = R*299/1000 + G*587/1000 + B*114/1000)"
                  if mode == "L" else " (grey replicated to R = G = B; alpha dropped)"),
        colour="grey" if mode == "L" else "RGB", any_size=True)


def load_imagefolder(path: str, *, name: str, channels: int, height: int, width: int, seed: int,
                     val_fraction: float, workers: int | None = None,
                     skip_bad_files: bool = False, cache: bool = True) -> ImageDataset:
    """Read a class-per-sub-folder image tree as an `ImageDataset` at (channels, height, width).

    `workers`: decoding processes (None: one per core for large folders, 0: this process).
    `cache=False` decodes into memory and writes nothing (the same pixels, every run again).
    """
    if channels not in PIL_MODES:
        raise DatasetError(f"cannot load {channels}-channel images; use channels 1 or 3")
    require("PIL.Image", purpose="reading image folders")
    listing = list_folder(path)
    target = DecodeTarget(PIL_MODES[channels], height, width, default_max_pixels())
    workers = default_workers(len(listing.paths)) if workers is None else workers
    folder = None
    if cache:
        entries = _image_cache.list_entries(listing.root, listing.paths)
        key = _image_cache.cache_key(listing.root, entries, target)
        folder = _image_cache.entry_folder(default_cache_dir(), listing.root, key)
        decoded, bad, built = _image_cache.load_or_decode(folder, listing.root, listing.paths,
                                                          target, workers, _progress_bar)
    else:
        decoded = np.empty((len(listing.paths), channels, height, width), dtype=np.uint8)
        with _progress_bar(len(listing.paths), f"decoding {listing.root}") as advance:
            bad_rows = decode_into(decoded, listing.paths, target, workers, advance)
        bad = {listing.paths[row].relative_to(listing.root).as_posix(): reason
               for row, reason in bad_rows.items()}
        built = True
    note = f" (all listed in {folder / 'decoded.json'})" if folder else ""
    good = _check_bad_files(listing, bad, skip_bad_files, note)
    if built:  # after the check: a refused folder prints its error line alone
        print(f"decoding {len(listing.paths)} images of {listing.root}: done", file=sys.stderr)
    order, (train_count, val_count, _) = _split_order(listing, good, seed, val_fraction)
    arranged, histogram = _image_cache.load_or_arrange(folder, decoded, order, train_count)
    mean, std = stats_from_histogram(histogram)
    return ImageDataset(
        name=name,
        train=_split(arranged, listing.labels[order], 0, train_count),
        val=_split(arranged, listing.labels[order], train_count, train_count + val_count),
        test=_split(arranged, listing.labels[order], train_count + val_count, len(order)),
        class_names=listing.class_names, mean=mean, std=std,
        # Stored images are at the target size: the CIFAR-style 1/8 crop padding is set here.
        augment=AugmentPolicy(hflip=True, crop_padding=max(1, round(min(height, width) / 8))),
        preprocessing=describe_preprocessing(_pixel_source(target.mode), source_channels=channels,
                                             source_size=None, channels=channels, height=height,
                                             width=width),
        skipped_files=tuple(sorted(bad)) if skip_bad_files else ())


def _split(arranged: np.ndarray, labels: np.ndarray, start: int, stop: int) -> ImageSplit:
    import torch

    # A slice of the memory map: no copy; pages are read as batches touch them.
    return ImageSplit(torch.from_numpy(arranged[start:stop]),
                      torch.from_numpy(np.ascontiguousarray(labels[start:stop])))
