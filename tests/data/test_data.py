"""seekdeploy.data core: digits, splits, statistics, normalization, augmentation, errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from seekdeploy.data import (
    AugmentPolicy,
    apply_augment,
    dataset_status,
    list_datasets,
    load_dataset,
    normalize,
)
from seekdeploy.data._transform import split_stratified
from seekdeploy.errors import DatasetError

DIGITS_TOTAL = 1797


@pytest.fixture(scope="module")
def digits_native():
    # 8x8 grey = no resize, so every stored image is an original digit and can be matched exactly.
    return load_dataset("digits", channels=1, height=8, width=8, seed=0)


def _rows(images: torch.Tensor) -> set[bytes]:
    return {row.tobytes() for row in images.reshape(len(images), -1).numpy()}


def test_digits_shapes_dtypes_and_metadata():
    ds = load_dataset("digits", channels=1, height=16, width=16)
    assert ds.name == "digits"
    assert len(ds.train) + len(ds.val) + len(ds.test) == DIGITS_TOTAL
    assert len(ds.test) == round(DIGITS_TOTAL * 0.2)
    for split in (ds.train, ds.val, ds.test):
        assert split.images.dtype == torch.uint8 and split.images.shape[1:] == (1, 16, 16)
        assert split.labels.dtype == torch.int64
        assert int(split.labels.min()) >= 0 and int(split.labels.max()) <= 9
    assert ds.class_names == tuple(str(i) for i in range(10))
    assert ds.num_classes == 10 and ds.input_shape == (1, 16, 16)
    assert ds.augment == AugmentPolicy(hflip=False, crop_padding=2)  # 1 px at 8x8, scaled x2
    assert int(ds.train.images.max()) == 255  # 16 grey levels stretched to the full range


def test_digits_splits_are_disjoint_stratified_and_cover_everything(digits_native):
    ds = digits_native
    train, val, test = _rows(ds.train.images), _rows(ds.val.images), _rows(ds.test.images)
    assert not train & test and not val & test and not train & val
    all_labels = torch.cat([ds.train.labels, ds.val.labels, ds.test.labels])
    assert len(all_labels) == DIGITS_TOTAL
    totals = torch.bincount(all_labels, minlength=10)
    test_counts = torch.bincount(ds.test.labels, minlength=10)
    # Stratified: each class's test share is 20% of that class, within one image.
    assert torch.all((test_counts - totals * 0.2).abs() <= 1.0)


def test_same_seed_same_splits_other_seed_other_splits(digits_native):
    again = load_dataset("digits", channels=1, height=8, width=8, seed=0)
    for name in ("train", "val", "test"):
        assert torch.equal(getattr(again, name).images, getattr(digits_native, name).images)
        assert torch.equal(getattr(again, name).labels, getattr(digits_native, name).labels)
    other = load_dataset("digits", channels=1, height=8, width=8, seed=1)
    assert not torch.equal(other.test.labels, digits_native.test.labels)
    assert _rows(other.test.images) != _rows(digits_native.test.images)


def test_mean_std_are_train_split_statistics():
    ds = load_dataset("digits", channels=3, height=12, width=12, seed=3)
    pixels = ds.train.images.to(torch.float64) / 255.0  # (N, 3, H, W)
    expected_mean = pixels.mean(dim=(0, 2, 3))
    expected_std = pixels.std(dim=(0, 2, 3), unbiased=False)
    assert torch.allclose(torch.tensor(ds.mean, dtype=torch.float64), expected_mean, atol=1e-9)
    assert torch.allclose(torch.tensor(ds.std, dtype=torch.float64), expected_std, atol=1e-9)
    # grey -> RGB copies the plane into all three channels
    assert torch.equal(ds.train.images[:, 0], ds.train.images[:, 2])
    normalized = normalize(ds.train.images, ds.mean, ds.std)
    assert normalized.dtype == torch.float32 and normalized.shape == ds.train.images.shape
    assert torch.allclose(normalized.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(normalized.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)


def test_val_fraction_zero_gives_empty_val_and_bad_values_are_errors():
    ds = load_dataset("digits", channels=1, height=8, width=8, val_fraction=0.0)
    assert len(ds.val) == 0 and ds.val.images.shape[1:] == (1, 8, 8)
    assert len(ds.train) + len(ds.test) == DIGITS_TOTAL
    for bad in (-0.1, 1.0):
        with pytest.raises(DatasetError, match="val_fraction"):
            load_dataset("digits", channels=1, height=8, width=8, val_fraction=bad)
    with pytest.raises(DatasetError, match="channels must be 1"):
        load_dataset("digits", channels=2, height=8, width=8)
    with pytest.raises(DatasetError, match="height"):
        load_dataset("digits", channels=1, height=0, width=8)


def test_split_stratified_exact_count_and_per_class_share():
    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    keep, held = split_stratified(labels, 0.1, np.random.default_rng(0))
    assert len(held) == 10 and len(keep) == 90
    assert sorted(np.concatenate([keep, held]).tolist()) == list(range(100))
    assert np.bincount(labels[held], minlength=4).tolist() == [1, 2, 3, 4]
    # A tiny set still gets one held-out sample and keeps at least one.
    keep, held = split_stratified(np.array([0, 1]), 0.1, np.random.default_rng(0))
    assert len(held) == 1 and len(keep) == 1


def test_apply_augment_flip_and_crop_are_real_and_seeded():
    images = torch.arange(2 * 1 * 5 * 5, dtype=torch.uint8).reshape(2, 1, 5, 5).repeat(50, 1, 1, 1)
    flipped = apply_augment(images, AugmentPolicy(hflip=True, crop_padding=0),
                            torch.Generator().manual_seed(0))
    same = (flipped == images).flatten(1).all(1)
    mirrored = (flipped == images.flip(-1)).flatten(1).all(1)
    assert torch.all(same | mirrored) and same.any() and mirrored.any()
    policy = AugmentPolicy(hflip=False, crop_padding=2)
    cropped = apply_augment(images, policy, torch.Generator().manual_seed(1))
    assert cropped.shape == images.shape and cropped.dtype == torch.uint8
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for index in range(len(images)):  # every output is some 5x5 window of the padded input
        windows = [padded[index, :, dy:dy + 5, dx:dx + 5] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(cropped[index], window) for window in windows)
    assert not torch.equal(cropped, images)
    again = apply_augment(images, policy, torch.Generator().manual_seed(1))
    assert torch.equal(cropped, again)


def test_unknown_name_suggests_and_lists():
    with pytest.raises(DatasetError, match="did you mean 'fashion-mnist'") as info:
        load_dataset("fashion-minst", channels=1, height=8, width=8)
    assert "digits" in str(info.value) and "imagefolder:PATH" in str(info.value)
    with pytest.raises(DatasetError, match="imagefolder:PATH"):
        load_dataset("imagefolder", channels=1, height=8, width=8)
    assert list_datasets() == ["digits", "fashion-mnist", "cifar10", "cifar100", "imagefolder"]


def test_aliases_resolve_to_canonical_name():
    ds = load_dataset("DIGITS", channels=1, height=8, width=8)
    assert ds.name == "digits"


def test_dataset_status_rows(tmp_path):
    rows = dataset_status(data_dir=tmp_path)
    assert [row[0] for row in rows] == list_datasets()
    status = {name: (usable, reason) for name, usable, reason in rows}
    assert status["digits"][0] is True
    assert status["cifar10"][0] is False and "--data-dir" in status["cifar10"][1]
    assert status["fashion-mnist"][0] is False and "apt-get install" in status["fashion-mnist"][1]


def test_import_does_not_load_torch():
    code = "import sys, seekdeploy.data; print('torch' in sys.modules, 'sklearn' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=60)
    assert result.stdout.split() == ["False", "False"]
