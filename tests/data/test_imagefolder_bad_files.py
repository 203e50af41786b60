"""Files that are not usable images: named before training starts, or skipped and counted."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import write_tiny_profile
from imagefolders import png_claiming_size, write_photos
from PIL import Image

from seekdeploy.data import load_dataset
from seekdeploy.data._decode import DecodeTarget, decode_image
from seekdeploy.errors import DatasetError

SHAPE = {"channels": 3, "height": 8, "width": 8}


def _zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def _not_an_image(path: Path) -> None:
    path.write_text("name,label\ncat,0\n")  # a CSV saved with an image suffix


def _truncated_jpeg(path: Path) -> None:
    Image.effect_noise((64, 48), 60).convert("RGB").save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])  # a copy cut off half-way


def _corrupt_png(path: Path) -> None:
    Image.effect_noise((64, 48), 60).save(path)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)  # zeroed compressed data inside the IDAT chunk
    path.write_bytes(bytes(data))


def _bomb(path: Path) -> None:
    png_claiming_size(path, 40_000, 40_000)  # 1.6 gigapixels claimed by a 70-byte file


BAD_FILES: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "zero-byte": ("empty.jpg", _zero_bytes, "empty file"),
    "not-an-image": ("labels.png", _not_an_image, "not an image"),
    "truncated": ("cut.jpg", _truncated_jpeg, "truncated or corrupt"),
    "corrupt": ("noise.png", _corrupt_png, "truncated or corrupt"),
    "decompression-bomb": ("huge.png", _bomb, "decompression bomb"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_is_named_before_training_or_skipped(tmp_path, case, capsys):
    name, write, reason = BAD_FILES[case]
    root = write_photos(tmp_path / "photos", per_class=5)
    bad = root / "dog" / name
    write(bad)
    with pytest.raises(DatasetError, match="--skip-bad-files") as info:
        load_dataset(f"imagefolder:{root}", **SHAPE)
    assert f"{bad}: {reason}" in str(info.value)
    assert "1 of 16 files" in str(info.value)
    # The cache remembers the verdict: asking again answers without decoding again.
    capsys.readouterr()
    with pytest.raises(DatasetError, match=reason):
        load_dataset(f"imagefolder:{root}", **SHAPE)
    assert "decoding" not in capsys.readouterr().err
    skipped = load_dataset(f"imagefolder:{root}", **SHAPE, skip_bad_files=True)
    assert "skipped 1 bad image file(s) of 16" in capsys.readouterr().err
    assert len(skipped.train) + len(skipped.val) + len(skipped.test) == 15
    assert skipped.skipped_files == (f"dog/{name}",)
    assert skipped.to_json()["skipped_files"] == [f"dog/{name}"]


def test_unreadable_file(tmp_path):
    target = DecodeTarget("RGB", 8, 8, 10_000)
    assert "cannot be read (No such file or directory)" in decode_image(
        str(tmp_path / "gone.jpg"), target)
    if os.geteuid() == 0:
        pytest.skip("running as root: a file without read permission is still readable")
    root = write_photos(tmp_path / "photos", per_class=3)
    locked = root / "cat" / "001.jpg"
    locked.chmod(0)
    with pytest.raises(DatasetError, match=f"{locked}: cannot be read"):
        load_dataset(f"imagefolder:{root}", **SHAPE)


def test_every_bad_file_is_listed_in_one_message(tmp_path):
    root = write_photos(tmp_path / "photos", per_class=4)
    for name, write, _ in BAD_FILES.values():
        write(root / "owl" / name)
    with pytest.raises(DatasetError) as info:
        load_dataset(f"imagefolder:{root}", **SHAPE, workers=2)
    message = str(info.value)
    assert "5 of 17 files" in message
    assert all(str(root / "owl" / name) in message for name, _, _ in BAD_FILES.values())


def test_a_split_left_empty_by_skipping_is_an_error(tmp_path):
    root = tmp_path / "split"
    write_photos(root / "train", per_class=3)
    (root / "test" / "cat").mkdir(parents=True)
    _zero_bytes(root / "test" / "cat" / "only.jpg")
    with pytest.raises(DatasetError, match="no usable images left in the test split"):
        load_dataset(f"imagefolder:{root}", **SHAPE, skip_bad_files=True)


def test_train_cli_skips_bad_files_when_asked(tmp_path, tmp_cwd, run_cli):
    root = write_photos(tmp_path / "photos", per_class=6)
    _truncated_jpeg(root / "cat" / "cut.jpg")
    profile = str(write_tiny_profile(tmp_path))
    tiny = ["--profile", profile, "--data", f"imagefolder:{root}", "--base", "depth=1,1;width=2,4",
            "--motivated", "depth=1,1;width=4,8", "--epochs", "1", "--batch-size", "4",
            "--workers", "0"]
    refused = run_cli("train", *tiny)
    assert refused.exit_code == 1 and "cut.jpg: truncated or corrupt" in refused.stderr
    assert not (tmp_cwd / "runs").exists()  # nothing trained, nothing written
    result = run_cli("train", *tiny, "--skip-bad-files", "--out", "runs/skipped")
    assert result.exit_code == 0, result.stderr
    assert "skipped 1 bad image file(s) of 19" in result.stderr


def test_run_refuses_bad_files_before_training_and_skips_them_when_asked(tmp_path, tmp_cwd, run_cli):
    """`seekdeploy run` takes --skip-bad-files (and --workers) as `train` does: without it a bad file
    stops the run before any training; with it the whole pipeline runs on the good files."""
    import yaml

    root = write_photos(tmp_path / "photos", per_class=36)  # enough for one batch of `run`'s 64
    _truncated_jpeg(root / "cat" / "cut.jpg")
    profile = write_tiny_profile(tmp_path, name="tiny-run", extra=(("channels: 1", "channels: 3"),))
    data = yaml.safe_load(profile.read_text())
    data["measurement"] = {"warmup_ms": 0, "warmup_iterations": 2, "duration_ms": 20, "min_iterations": 5}
    # Latency no model here misses; a small plan whose picks (depth=1,1,1;width=8,8,16 in
    # depth=2,2,2;width=16,24,48) sit 16 and 94 KB under these file budgets, clear of the few KB
    # the planner's file-size prediction can miss by.
    for role, size in (("base", 0.05), ("motivated", 0.5)):
        data["budgets"][role].update(latency_ms=1000.0, file_size_mib=size)
    profile.write_text(yaml.safe_dump(data))
    args = ["--profile", str(profile), "--data", f"imagefolder:{root}", "--epochs", "1", "--workers", "0",
            "--no-calibrate"]
    refused = run_cli("run", *args)
    assert refused.exit_code == 1 and "cut.jpg: truncated or corrupt" in refused.stderr
    assert "--skip-bad-files" in refused.stderr
    done = run_cli("run", *args, "--skip-bad-files")
    assert done.exit_code == 0, done.stderr + done.stdout
    assert done.stdout.splitlines()[-1].startswith(("PASSED", "FAILED"))
    assert "skipped 1 bad image file(s) of 109" in done.stderr + done.stdout
    assert (tmp_cwd / "runs" / "tiny-run-resnet-imagefolder-photos").is_dir()  # the folder's name, not its path
    assert (tmp_cwd / "exports" / "tiny-run-resnet-imagefolder-photos" / "motivated" / "model.onnx").is_file()
