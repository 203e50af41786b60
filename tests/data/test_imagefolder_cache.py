"""The image-folder cache: built once, reused, rebuilt when a file changes, and the same pixels as
decoding into memory (and as the whole-folder decode the preprocessing description was written for).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from imagefolders import touch_later, write_photos
from PIL import Image

from seekdeploy.data import load_dataset
from seekdeploy.data._imagefolder import _pixel_source
from seekdeploy.data._transform import RawDataset, build_dataset, resize_images
from seekdeploy.data.dataset import AugmentPolicy

SHAPE = {"channels": 3, "height": 12, "width": 16}


def _entries(cache: Path) -> list[Path]:
    return sorted(p for p in cache.iterdir() if (p / "decoded.json").is_file())


def _same(a, b) -> None:
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(a, split).images, getattr(b, split).images), split
        assert torch.equal(getattr(a, split).labels, getattr(b, split).labels), split
    assert (a.mean, a.std, a.augment, a.preprocessing) == (b.mean, b.std, b.augment,
                                                           b.preprocessing)


def _mapped_file(tensor: torch.Tensor) -> Path:
    """The file whose memory mapping holds the tensor's data (Linux: /proc/self/maps)."""
    address = tensor.data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        start, stop = (int(part, 16) for part in fields[0].split("-"))
        if start <= address < stop:
            return Path(fields[5].strip()) if len(fields) == 6 else Path("[anonymous]")
    raise AssertionError("address not mapped")


def test_cache_is_built_once_then_memory_mapped(tmp_path, image_cache_dir, capsys):
    root = write_photos(tmp_path / "pets")
    first = load_dataset(f"imagefolder:{root}", **SHAPE)
    assert "decoding 24 images" in capsys.readouterr().err  # the progress bar of the one build
    [entry] = [p for p in _entries(image_cache_dir) if p.name.startswith("pets-")]
    decoded = entry / "decoded.npy"
    stamp = decoded.stat().st_mtime_ns
    again = load_dataset(f"imagefolder:{root}", **SHAPE)
    assert "decoding" not in capsys.readouterr().err
    assert decoded.stat().st_mtime_ns == stamp
    _same(first, again)
    # The splits are slices of the memory-mapped file, not copies in memory.
    assert _mapped_file(again.train.images).parent == entry
    assert not list(entry.glob(".tmp-*"))  # written under temporary names, renamed when done


def test_changed_file_rebuilds_and_drops_the_old_entry(tmp_path, image_cache_dir):
    root = write_photos(tmp_path / "birds")
    before = load_dataset(f"imagefolder:{root}", **SHAPE)
    [old] = [p for p in _entries(image_cache_dir) if p.name.startswith("birds-")]
    changed = root / "cat" / "000.jpg"
    Image.new("RGB", (40, 30), (255, 255, 255)).save(changed)
    touch_later(changed)  # also a new mtime, whatever the clock's resolution
    after = load_dataset(f"imagefolder:{root}", **SHAPE)
    [new] = [p for p in _entries(image_cache_dir) if p.name.startswith("birds-")]
    assert new != old and not old.exists()
    every = lambda ds: torch.cat([ds.train.images, ds.val.images, ds.test.images])  # noqa: E731
    white = (every(after) == 255).flatten(1).all(dim=1)
    assert int(white.sum()) == 1 and not (every(before) == 255).flatten(1).all(dim=1).any()
    # A different target size is another entry beside it, not a rebuild of it.
    load_dataset(f"imagefolder:{root}", channels=1, height=8, width=8)
    assert new.exists() and len([p for p in _entries(image_cache_dir)
                                 if p.name.startswith("birds-")]) == 2


def _whole_folder_reference(root: Path, seed: int, val_fraction: float):
    """The dataset as the whole-folder decode built it: every image decoded with
    Image.convert('RGB'), resized by `resize_images`, then split and measured by `build_dataset`."""
    paths = sorted(root.glob("*/*.jpg"))
    classes = sorted({p.parent.name for p in paths})
    images = np.stack([resize_images(np.asarray(Image.open(p).convert("RGB")).transpose(2, 0, 1)
                                     [None], SHAPE["height"], SHAPE["width"])[0] for p in paths])
    labels = np.asarray([classes.index(p.parent.name) for p in paths], dtype=np.int64)
    augment = AugmentPolicy(hflip=True, crop_padding=max(1, round(12 / 8)))
    raw = RawDataset(images, labels, None, None, tuple(classes), augment,
                     source=_pixel_source("RGB"))
    return build_dataset(f"imagefolder:{root}", raw, **SHAPE, seed=seed, val_fraction=val_fraction)


@pytest.mark.parametrize("seed", [0, 3])
def test_same_tensors_with_and_without_the_cache(tmp_path, seed):
    root = write_photos(tmp_path / "mixed", per_class=7)
    options = dict(SHAPE, seed=seed, val_fraction=0.2)
    built = load_dataset(f"imagefolder:{root}", **options)
    read = load_dataset(f"imagefolder:{root}", **options)
    in_memory = load_dataset(f"imagefolder:{root}", **options, image_cache=False)
    reference = _whole_folder_reference(root, seed, 0.2)
    for other in (read, in_memory, reference):
        _same(built, other)
    assert built.to_json() == reference.to_json()  # what the manifest records is unchanged


def test_worker_processes_decode_the_same_pixels(tmp_path):
    root = write_photos(tmp_path / "workers", per_class=6)
    here = load_dataset(f"imagefolder:{root}", **SHAPE, workers=0, image_cache=False)
    workers = load_dataset(f"imagefolder:{root}", **SHAPE, workers=2)
    _same(here, workers)


def _load_in_child(root: str, log: str, barrier, results) -> None:
    import sys

    with open(log, "w") as handle:
        sys.stderr = handle  # this process's progress bar, if it draws one
        barrier.wait()
        dataset = load_dataset(f"imagefolder:{root}", **SHAPE, workers=0)
        results.put(dataset.train.images.sum().item())


def test_concurrent_loaders_decode_once(tmp_path, image_cache_dir):
    # What torchrun's ranks do: start together, one builds the cache, the others wait and read it.
    import multiprocessing

    root = write_photos(tmp_path / "ranks", per_class=12)
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(3), context.Queue()
    logs = [tmp_path / f"rank{rank}.log" for rank in range(3)]
    ranks = [context.Process(target=_load_in_child, args=(str(root), str(log), barrier, results))
             for log in logs]
    for rank in ranks:
        rank.start()
    sums = [results.get(timeout=120) for _ in ranks]
    for rank in ranks:
        rank.join(timeout=60)
        assert rank.exitcode == 0
    assert len(set(sums)) == 1
    assert sum("decoding 36 images" in log.read_text() for log in logs) == 1


@pytest.mark.slow  # torchrun with two CPU ranks (~20 s on the shared machine)
def test_torchrun_ranks_share_one_cache_build(tmp_path):
    import os
    import subprocess
    import sys

    from helpers import write_tiny_profile

    root = write_photos(tmp_path / "ranks", per_class=12)
    cache = tmp_path / "cache"
    env = {key: value for key, value in os.environ.items()
           if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", SEEKDEPLOY_CACHE_DIR=str(cache))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
               "2", "-m", "seekdeploy", "train", "--profile", str(write_tiny_profile(tmp_path)),
               "--data", f"imagefolder:{root}", "--base", "depth=1,1;width=2,4", "--motivated",
               "depth=1,1;width=4,8", "--epochs", "1", "--batch-size", "4", "--device", "cpu",
               "--out", str(tmp_path / "run")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("decoding 36 images") == 1  # one rank built it, the other read it
    assert len(_entries(cache)) == 1
