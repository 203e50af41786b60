"""Turn raw uint8 arrays from any source into an `ImageDataset`: channels, size, splits, statistics.

Every source (digits, IDX, CIFAR batches, image folders) hands over a `RawDataset` of numpy uint8
arrays at their native size; `build_dataset` does the rest once, at load time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seekdeploy.data._preprocessing import (
    LUMA_WEIGHTS,
    RESIZE_ALIGN_CORNERS,
    RESIZE_ANTIALIAS,
    RESIZE_MODE,
    PixelSource,
    describe_preprocessing,
)
from seekdeploy.data.dataset import AugmentPolicy, ImageDataset, ImageSplit
from seekdeploy.errors import DatasetError

_RESIZE_CHUNK = 4096  # images per interpolate call: bounds temporaries
TEST_FRACTION = 0.2  # held out as test where a source has no official test split


@dataclass(frozen=True)
class RawDataset:
    """A source's native data: uint8 (N, C, H, W) arrays, int64 labels, optional official splits."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray | None
    test_labels: np.ndarray | None
    class_names: tuple[str, ...]
    augment: AugmentPolicy  # at native resolution; padding is rescaled with the images
    val_images: np.ndarray | None = None
    val_labels: np.ndarray | None = None
    source: PixelSource | None = None  # None: uint8 [0, 255] arrays, described generically


def convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """Convert uint8 (N, C, H, W) between grey (1) and RGB (3); other counts are an error."""
    source = images.shape[1]
    if source == channels:
        return images
    if source == 1 and channels == 3:
        return np.repeat(images, 3, axis=1)
    if source == 3 and channels == 1:
        weights = np.asarray(LUMA_WEIGHTS, dtype=np.float32)[None, :, None, None]
        grey = (images.astype(np.float32) * weights).sum(axis=1, keepdims=True)  # (N, 1, H, W)
        return np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    raise DatasetError(
        f"cannot convert {source}-channel images to {channels} channels; "
        "use channels 1 (grey) or 3 (RGB) in the profile's input"
    )


def resize_images(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear, antialiased resize of uint8 (N, C, H, W) to (N, C, height, width), in chunks.

    Pillow's BILINEAR resize reproduces it (see `_preprocessing.describe_resize`).
    """
    import torch

    if images.shape[2:] == (height, width):
        return images
    out = np.empty((images.shape[0], images.shape[1], height, width), dtype=np.uint8)
    for start in range(0, images.shape[0], _RESIZE_CHUNK):
        # torch resizes uint8 directly (rounded, saturated): ~5x faster than a float round trip.
        chunk = torch.from_numpy(np.ascontiguousarray(images[start:start + _RESIZE_CHUNK]))
        resized = torch.nn.functional.interpolate(
            chunk, size=(height, width), mode=RESIZE_MODE, align_corners=RESIZE_ALIGN_CORNERS,
            antialias=RESIZE_ANTIALIAS,
        )  # (n, C, height, width) uint8
        out[start:start + len(chunk)] = resized.numpy()
    return out


def prepare_images(images: np.ndarray, channels: int, height: int, width: int) -> np.ndarray:
    """Convert channels and size; reduce channels before resizing and add them after (cheaper)."""
    if images.shape[1] > channels:
        return resize_images(convert_channels(images, channels), height, width)
    return convert_channels(resize_images(images, height, width), channels)


def channel_histogram(images: np.ndarray) -> np.ndarray:
    """Per-channel 256-bin histograms (C, 256) int64 of uint8 (N, C, H, W); add them up over
    chunks to measure a split that does not fit in memory."""
    import torch

    pixels = torch.from_numpy(np.ascontiguousarray(images))
    # torch.bincount takes uint8 as is (numpy's widens to int64 first: ~10x slower).
    return np.stack([torch.bincount(pixels[:, channel].reshape(-1), minlength=256).numpy()
                     for channel in range(images.shape[1])]).astype(np.int64)


def stats_from_histogram(counts: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std on the [0, 1] scale from (C, 256) histograms, exact in float64."""
    if counts.sum() == 0:
        raise DatasetError("the train split is empty; the dataset needs at least one image")
    levels = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for channel_counts in counts.astype(np.float64):
        total = channel_counts.sum()
        mean = float((channel_counts * levels).sum() / total)
        variance = float((channel_counts * np.square(levels - mean)).sum() / total)
        std = variance ** 0.5
        means.append(mean)
        stds.append(std if std > 1e-6 else 1.0)  # a constant channel must not divide by zero
    return tuple(means), tuple(stds)


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 (N, C, H, W) on the [0, 1] scale, exact in float64.

    A 256-bin histogram gives exact moments without a float copy of the images.
    """
    if images.size == 0:
        raise DatasetError("the train split is empty; the dataset needs at least one image")
    return stats_from_histogram(channel_histogram(images))


def split_stratified(labels: np.ndarray, fraction: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (keep, held_out) with `fraction` held out, the same share of each class.

    Each sample's key is its rank in a random order of its class divided by the class size, so
    taking the smallest keys takes every class in proportion while the total stays exact.
    """
    count = len(labels)
    if fraction <= 0 or count < 2:
        return np.arange(count), np.arange(0)
    held = min(count - 1, max(1, int(round(count * fraction))))
    keys = np.empty(count, dtype=np.float64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        order = rng.permutation(len(members))
        keys[members[order]] = (np.arange(len(members)) + 0.5) / len(members)
    tiebreak = rng.random(count)
    ranked = np.lexsort((tiebreak, keys))
    return np.sort(ranked[held:]), np.sort(ranked[:held])


def carve_splits(train_labels: np.ndarray, *, carve_test: bool, carve_val: bool, seed: int,
                 val_fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions in a source's train set of (train, val, test) where a split must be carved out.

    Without an official test split, `TEST_FRACTION` becomes the test split (drawn from
    `[seed, 1]`); without an official validation split, `val_fraction` of the rest becomes
    validation (`[seed, 2]`). A split that is not carved comes back empty.
    """
    keep = np.arange(len(train_labels))
    test = val = np.arange(0)
    if carve_test:
        kept, held = split_stratified(train_labels, TEST_FRACTION, np.random.default_rng([seed, 1]))
        keep, test = keep[kept], keep[held]
    if carve_val:
        kept, held = split_stratified(train_labels[keep], val_fraction,
                                      np.random.default_rng([seed, 2]))
        keep, val = keep[kept], keep[held]
    return keep, val, test


def _to_split(images: np.ndarray, labels: np.ndarray) -> ImageSplit:
    import torch

    return ImageSplit(torch.from_numpy(np.ascontiguousarray(images)),
                      torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)))


def _scaled_padding(padding: int, native: tuple[int, int], height: int, width: int) -> int:
    # Crop padding is an object-relative shift: 1 px on an 8x8 digit is 4 px at 32x32.
    if padding <= 0:
        return 0
    return max(1, int(round(padding * min(height / native[0], width / native[1]))))


def build_dataset(name: str, raw: RawDataset, *, channels: int, height: int, width: int,
                  seed: int, val_fraction: float) -> ImageDataset:
    """Split (deterministically from `seed`), convert, resize and measure a source's raw data.

    Without an official test split, `TEST_FRACTION` of the data becomes the test split; without an
    official validation split, `val_fraction` of the remaining training data becomes validation.
    """
    native = (int(raw.train_images.shape[2]), int(raw.train_images.shape[3]))
    source = raw.source or PixelSource(origin=f"{name}: uint8 (N, C, H, W) arrays",
                                       colour="grey" if raw.train_images.shape[1] == 1 else "RGB")
    preprocessing = describe_preprocessing(
        source, source_channels=int(raw.train_images.shape[1]),
        source_size=None if source.any_size else native, channels=channels, height=height,
        width=width)
    train_x, train_y = raw.train_images, raw.train_labels
    test_x, test_y = raw.test_images, raw.test_labels
    val_x, val_y = raw.val_images, raw.val_labels
    carve_test, carve_val = test_x is None or test_y is None, val_x is None or val_y is None
    keep, val_held, test_held = carve_splits(train_y, carve_test=carve_test, carve_val=carve_val,
                                             seed=seed, val_fraction=val_fraction)
    if carve_test:
        test_x, test_y = train_x[test_held], train_y[test_held]
    if carve_val:
        val_x, val_y = train_x[val_held], train_y[val_held]
    train_x, train_y = train_x[keep], train_y[keep]
    train_x = prepare_images(train_x, channels, height, width)
    mean, std = channel_stats(train_x)
    augment = AugmentPolicy(
        hflip=raw.augment.hflip,
        crop_padding=_scaled_padding(raw.augment.crop_padding, native, height, width),
    )
    return ImageDataset(
        name=name,
        train=_to_split(train_x, train_y),
        val=_to_split(prepare_images(val_x, channels, height, width), val_y),
        test=_to_split(prepare_images(test_x, channels, height, width), test_y),
        class_names=raw.class_names,
        mean=mean,
        std=std,
        augment=augment,
        preprocessing=preprocessing,
    )
