"""CIFAR-10/100 batches folders generated in tmp_path, and the restricted unpickler's refusals."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from seekdeploy.data import load_dataset
from seekdeploy.data._safe_pickle import load_pickle_data
from seekdeploy.errors import DatasetError

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"]


def _batch(count: int, offset: int, num_classes: int) -> tuple[np.ndarray, list[int]]:
    labels = [(offset + i) % num_classes for i in range(count)]
    images = np.zeros((count, 3, 32, 32), dtype=np.uint8)
    images[:, 0] = np.asarray(labels, dtype=np.uint8)[:, None, None]  # red plane = label
    images[:, 1, :, :16] = 200  # green on the left half only: checks the plane/row order
    return images.reshape(count, 3072), labels


def _dump(path: Path, obj: object, protocol: int) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def _make_cifar10(folder: Path, per_batch: int = 10, bytes_keys: bool = False) -> Path:
    folder.mkdir(parents=True)
    key = (lambda k: k.encode()) if bytes_keys else (lambda k: k)
    protocol = 4 if bytes_keys else 2  # protocol 2 stores bytes through _codecs.encode
    for index, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        data, labels = _batch(per_batch, index, 10)
        _dump(folder / name, {key("data"): data, key("labels"): labels,
                              key("batch_label"): f"batch {index}"}, protocol)
    _dump(folder / "batches.meta", {key("label_names"): CIFAR10_NAMES, key("num_vis"): 3072},
          protocol)
    return folder


@pytest.mark.parametrize("bytes_keys", [False, True])
def test_cifar10_folder_loads_with_pixel_order_and_meta(tmp_path, bytes_keys):
    _make_cifar10(tmp_path / "cifar-10-batches-py", bytes_keys=bytes_keys)
    ds = load_dataset("cifar10", channels=3, height=32, width=32, data_dir=tmp_path)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (45, 5, 10)
    assert ds.class_names == tuple(CIFAR10_NAMES)
    assert ds.augment.hflip and ds.augment.crop_padding == 4
    for split in (ds.train, ds.val, ds.test):
        assert torch.equal(split.images[:, 0, 5, 5].long(), split.labels)
        green = split.images[:, 1]  # (N, 32, 32)
        assert torch.all(green[:, :, :16] == 200) and torch.all(green[:, :, 16:] == 0)


def test_cifar10_grey_and_resized(tmp_path):
    folder = _make_cifar10(tmp_path / "flat")  # the batches folder itself as data_dir
    ds = load_dataset("cifar-10", channels=1, height=16, width=16, data_dir=folder)
    assert ds.name == "cifar10" and ds.train.images.shape[1:] == (1, 16, 16)
    assert len(ds.mean) == 1 and len(ds.std) == 1


def test_cifar100_uses_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    names = [f"class{i}" for i in range(100)]
    for name, count in (("train", 200), ("test", 100)):
        data, labels = _batch(count, 0, 100)
        _dump(folder / name, {"data": data, "fine_labels": labels,
                              "coarse_labels": [0] * count}, 2)
    _dump(folder / "meta", {"fine_label_names": names, "coarse_label_names": ["x"]}, 2)
    ds = load_dataset("cifar100", channels=3, height=32, width=32, data_dir=tmp_path)
    assert ds.num_classes == 100 and ds.class_names[7] == "class7"
    assert (len(ds.train), len(ds.val), len(ds.test)) == (180, 20, 100)
    assert torch.equal(ds.test.images[:, 0, 0, 0].long(), ds.test.labels)


def test_missing_cifar_folder_says_where_and_how(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar10", channels=3, height=32, width=32, data_dir=tmp_path)
    text = str(info.value)
    assert str(tmp_path) in text and "cifar-10-batches-py" in text and "--download" in text


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_malicious_batch_is_refused_without_running_code(tmp_path):
    folder = _make_cifar10(tmp_path / "cifar-10-batches-py")
    marker = tmp_path / "pwned"
    _dump(folder / "data_batch_3", {"data": _RunsCode(marker), "labels": []}, 2)
    with pytest.raises(DatasetError, match="refused to load global posix.mkdir"):
        load_dataset("cifar10", channels=3, height=32, width=32, data_dir=tmp_path)
    assert not marker.exists()


def test_codecs_encode_only_allows_latin1(tmp_path):
    path = tmp_path / "evil"
    # Hand-written protocol-2 pickle calling _codecs.encode("x", "rot13").
    path.write_bytes(b"\x80\x02c_codecs\nencode\nq\x00X\x01\x00\x00\x00xX\x05\x00\x00\x00rot13"
                     b"\x86R.")
    with pytest.raises(DatasetError, match="refused _codecs.encode"):
        load_pickle_data(path)


def test_damaged_and_wrong_batches_are_errors(tmp_path):
    folder = _make_cifar10(tmp_path / "cifar-10-batches-py")
    good = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(good[: len(good) // 3])
    with pytest.raises(DatasetError, match="test_batch: damaged"):
        load_dataset("cifar10", channels=3, height=32, width=32, data_dir=tmp_path)
    _dump(folder / "test_batch", {"data": np.zeros((4, 100), dtype=np.uint8), "labels": [0] * 4}, 2)
    with pytest.raises(DatasetError, match=r"must be uint8 \(N, 3072\)"):
        load_dataset("cifar10", channels=3, height=32, width=32, data_dir=tmp_path)
    data = np.zeros((2, 3072), dtype=np.uint8)
    _dump(folder / "test_batch", {"data": data, "labels": [0, 10]}, 2)
    with pytest.raises(DatasetError, match="labels outside 0..9"):
        load_dataset("cifar10", channels=3, height=32, width=32, data_dir=tmp_path)
