"""`imagefolder:PATH`: real PNG/JPEG trees written with Pillow in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seekdeploy.data import load_dataset
from seekdeploy.errors import DatasetError

COLORS = {"apple": (220, 30, 30), "grass": (30, 200, 40), "sky": (40, 60, 230)}


def _write_class(folder: Path, color: tuple[int, int, int], count: int,
                 sizes: tuple[tuple[int, int], ...] = ((20, 20), (33, 17))) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        width, height = sizes[index % len(sizes)]
        Image.new("RGB", (width, height), color).save(folder / f"img{index:03d}.png")


def _make_tree(root: Path, count: int = 10) -> Path:
    for name, color in COLORS.items():
        _write_class(root / name, color, count)
    (root / "apple" / "notes.txt").write_text("not an image")  # ignored: not an image suffix
    return root


def test_flat_tree_is_split_resized_and_labelled(tmp_path):
    root = _make_tree(tmp_path / "photos")
    ds = load_dataset(f"imagefolder:{root}", channels=3, height=8, width=8, seed=0)
    assert ds.name == f"imagefolder:{root}"
    assert ds.class_names == ("apple", "grass", "sky")
    assert len(ds.train) + len(ds.val) + len(ds.test) == 30 and len(ds.test) == 6
    assert torch.bincount(ds.test.labels, minlength=3).tolist() == [2, 2, 2]
    for split in (ds.train, ds.val, ds.test):
        assert split.images.shape[1:] == (3, 8, 8)
        for image, label in zip(split.images, split.labels):
            expected = torch.tensor(COLORS[ds.class_names[label]], dtype=torch.uint8)
            assert torch.equal(image[:, 4, 4], expected)  # a flat colour survives any resize
    assert ds.augment.hflip and ds.augment.crop_padding == 1
    again = load_dataset(f"imagefolder:{root}", channels=3, height=8, width=8, seed=0)
    assert torch.equal(again.val.labels, ds.val.labels)
    assert torch.equal(again.train.images, ds.train.images)


def test_train_test_subfolders_are_used_as_given(tmp_path):
    root = tmp_path / "split"
    for name, color in COLORS.items():
        _write_class(root / "train" / name, color, 6)
    _write_class(root / "test" / "sky", COLORS["sky"], 3)
    ds = load_dataset(f"imagefolder:{root}", channels=1, height=6, width=6, val_fraction=0.5)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (9, 9, 3)
    assert ds.test.labels.tolist() == [2, 2, 2]
    grey = round(0.299 * 40 + 0.587 * 60 + 0.114 * 230)  # Pillow's "L" conversion of sky blue
    assert abs(int(ds.test.images[0, 0, 3, 3]) - grey) <= 1


def test_grey_jpeg_to_rgb(tmp_path):
    root = tmp_path / "grey"
    for index, name in enumerate(("dark", "light")):
        (root / name).mkdir(parents=True)
        for copy in range(4):
            pixels = np.full((12, 12), 40 + 160 * index, dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(root / name / f"{copy}.jpg")
    ds = load_dataset(f"imagefolder:{root}", channels=3, height=12, width=12)
    assert torch.equal(ds.train.images[:, 0], ds.train.images[:, 1])


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(f"imagefolder:{tmp_path / 'none'}", channels=3, height=8, width=8)
    _write_class(tmp_path / "one" / "only", COLORS["sky"], 2)
    with pytest.raises(DatasetError, match="at least 2"):
        load_dataset(f"imagefolder:{tmp_path / 'one'}", channels=3, height=8, width=8)
    root = _make_tree(tmp_path / "broken", count=2)
    bad = root / "grass" / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(DatasetError, match="not usable images") as info:
        load_dataset(f"imagefolder:{root}", channels=3, height=8, width=8)
    assert str(bad) in str(info.value)
    split = tmp_path / "split"
    _write_class(split / "train" / "a", COLORS["sky"], 2)
    _write_class(split / "train" / "b", COLORS["apple"], 2)
    _write_class(split / "test" / "c", COLORS["grass"], 2)
    with pytest.raises(DatasetError, match="not among the training classes"):
        load_dataset(f"imagefolder:{split}", channels=3, height=8, width=8)
    with pytest.raises(DatasetError, match="imagefolder needs a path"):
        load_dataset("imagefolder:", channels=3, height=8, width=8)
