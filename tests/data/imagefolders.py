"""Small image folders written with Pillow for the image-folder tests (no fixture data on disk)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

SIZES = ((40, 30), (23, 37), (64, 48))  # (width, height): each image is resized on its own


def write_photos(root: Path, classes: tuple[str, ...] = ("cat", "dog", "owl"), per_class: int = 8,
                 seed: int = 0, suffix: str = ".jpg") -> Path:
    """Noise photos of mixed sizes (so the resize does real work), `per_class` per class."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            width, height = SIZES[index % len(SIZES)]
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            pixels[..., label % 3] //= 2  # a colour cast per class
            Image.fromarray(pixels).save(root / name / f"{index:03d}{suffix}", quality=90)
    return root


def touch_later(path: Path) -> None:
    """Move a file's modification time forward (a change the cache key must see)."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))


def png_claiming_size(path: Path, width: int, height: int) -> Path:
    """A tiny valid PNG whose header claims `width` x `height` pixels (a decompression bomb)."""
    import struct
    import zlib

    Image.new("L", (4, 4)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = 8 + 8  # signature, then length + b"IHDR"
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4:ihdr + 13]))
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
    return path


def write_large_photos(root: Path, count: int, size: tuple[int, int] = (2400, 1800),
                       classes: tuple[str, ...] = ("day", "night")) -> Path:
    """`count` photo-sized JPEGs (smooth, so they are small on disk and quick to write)."""
    width, height = size
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :]  # (1, W)
    column = np.linspace(0, 1, height, dtype=np.float32)[:, None]  # (H, 1)
    for index in range(count):
        folder = root / classes[index % len(classes)]
        folder.mkdir(parents=True, exist_ok=True)
        shade = (ramp * column + 17 * index) % 256  # (H, W)
        pixels = np.stack([shade, shade[::-1], np.full_like(shade, 40 * index % 256)], axis=-1)
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{index:04d}.jpg", quality=40)
    return root
