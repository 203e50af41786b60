"""Decode image files one at a time, in worker processes, straight to the profile's size.

Each image is opened, checked, decoded, converted to grey or RGB and resized on its own, so no
more than one full-size image per process is ever in memory. A file that cannot become an image
(empty, unreadable, not an image, truncated or corrupt, a decompression bomb) is not an exception
here: `decode_image` returns the reason, so one pass finds every bad file before training starts.
"""

from __future__ import annotations

import os
import struct
import sys
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from seekdeploy.errors import DatasetError

PIL_MODES = {1: "L", 3: "RGB"}
_MAX_AUTO_WORKERS = 8
_IMAGES_PER_WORKER = 16  # fewer images than this per worker: starting processes costs more
_CHUNK_IMAGES = 8  # images a worker decodes per task (amortizes the inter-process round trip)
# What Pillow raises on a file that is not a well-formed image of a format it reads: truncated data
# (OSError), bad headers (SyntaxError, ValueError, struct.error), cut-off streams (EOFError),
# corrupt deflate data in PNG (zlib.error).
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error)


@dataclass(frozen=True)
class DecodeTarget:
    """What every image becomes: Pillow mode and the stored (height, width); `max_pixels` is the
    largest width x height decoded (beyond it, a decompression bomb)."""

    mode: str
    height: int
    width: int
    max_pixels: int


def default_max_pixels() -> int:
    """Pillow's own decompression-bomb limit (`Image.MAX_IMAGE_PIXELS`, ~89 megapixels)."""
    from PIL import Image

    return int(Image.MAX_IMAGE_PIXELS or 0) or 2 ** 31


def default_workers(image_count: int) -> int:
    """Worker processes for `image_count` images: one per usable core (at most 8), none for a
    folder too small to repay starting them."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = min(_MAX_AUTO_WORKERS, cores or 1)
    return workers if image_count >= workers * _IMAGES_PER_WORKER and workers > 1 else 0


def decode_image(path: str, target: DecodeTarget) -> np.ndarray | str:
    """uint8 (C, height, width) pixels of one image file, or the reason it is not a usable image.

    The pixels are exactly what `_transform.resize_images` makes of
    `np.asarray(Image.open(path).convert(mode))` (the preprocessing the manifest records).
    """
    from PIL import Image

    try:
        handle = open(path, "rb")  # closed by the `with handle` below
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc}); check that it exists and its permissions"
    with handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return "empty file (0 bytes)"
        try:
            pixels = _read_pixels(handle, target)
        except Image.UnidentifiedImageError:
            return "not an image Pillow can read (wrong suffix, or not an image at all)"
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            return f"decompression bomb: {exc} (if it is a real image, shrink it)"
        except _DECODE_ERRORS as exc:
            return f"truncated or corrupt ({type(exc).__name__}: {exc})"
    if isinstance(pixels, str):
        return pixels
    return _resize(pixels, target.height, target.width)


def _read_pixels(handle: BinaryIO, target: DecodeTarget) -> np.ndarray | str:
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(handle) as image:
            width, height = image.size  # from the header: nothing is decoded yet
            if width * height > target.max_pixels:
                return (f"decompression bomb: {width}x{height} pixels is over the "
                        f"{target.max_pixels:,}-pixel limit (if it is a real image, shrink it)")
            return np.array(image.convert(target.mode), dtype=np.uint8)  # (H, W[, C]) writable


def _resize(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    from seekdeploy.data._transform import resize_images

    chw = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)  # (C, H, W)
    return resize_images(chw[None], height, width)[0]  # (C, height, width)


def _decode_chunk(paths: Sequence[str], target: DecodeTarget) -> list[np.ndarray | str]:
    return [decode_image(path, target) for path in paths]


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one image per process at a time: parallelism comes from processes


def decode_images(paths: Sequence[Path], target: DecodeTarget, workers: int
                  ) -> Iterator[np.ndarray | str]:
    """Yield `decode_image` of each path, in order, decoded by `workers` processes (0: here).

    Only `_CHUNK_IMAGES` results per worker are waited on at a time beyond the one being
    consumed, so memory does not grow with the number of images.
    """
    names = [str(path) for path in paths]
    if workers < 0:
        raise DatasetError(f"--workers must be 0 (decode in the training process) or more, "
                           f"got {workers}")
    if workers == 0:
        yield from (decode_image(name, target) for name in names)
        return
    import multiprocessing

    chunks = [names[start:start + _CHUNK_IMAGES] for start in range(0, len(names), _CHUNK_IMAGES)]
    # Linux: fork, as torch's DataLoader does (a worker starts in milliseconds, with torch already
    # imported; it only decodes and resizes, with one thread). Elsewhere: a fresh interpreter.
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
        pending = []
        for chunk in chunks[:2 * workers]:
            pending.append(pool.submit(_decode_chunk, chunk, target))
        next_chunk = len(pending)
        while pending:
            results = pending.pop(0).result()
            if next_chunk < len(chunks):
                pending.append(pool.submit(_decode_chunk, chunks[next_chunk], target))
                next_chunk += 1
            yield from results


def decode_into(out: np.ndarray, paths: Sequence[Path], target: DecodeTarget, workers: int,
                advance: Callable[[int], None] = lambda count: None) -> dict[int, str]:
    """Decode `paths` into rows of `out` (N, C, height, width); return {row: reason} of bad files
    (their rows are left zero). `advance(1)` is called after each image (a progress bar)."""
    bad: dict[int, str] = {}
    for row, result in enumerate(decode_images(paths, target, workers)):
        if isinstance(result, str):
            bad[row] = result
            out[row] = 0
        else:
            out[row] = result
        advance(1)
    return bad
