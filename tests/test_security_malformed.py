"""Malformed and hostile inputs to the commands a user runs -- profiles, datasets, specs,
conditions, run folders, calibration files -- each refused with ONE clear line on stderr (exit 1,
no traceback) and NOTHING written: the working folder is byte-for-byte what it was before."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from helpers import write_tiny_profile

TINY = ["--base", "depth=1,1;width=2,4", "--motivated", "depth=1,1;width=4,8", "--epochs", "1",
        "--batch-size", "256"]


class _RunsShell:
    """Pickles to a call of os.system (a restricted unpickler must refuse it without running it)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def _profile(inputs: Path, old: str, new: str) -> Path:
    """The tiny profile with one text replacement (which must apply)."""
    path = write_tiny_profile(inputs, name="bad")
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
    return path


def _bytes_file(inputs: Path, name: str, data: bytes) -> Path:
    path = inputs / name
    path.write_bytes(data)
    return path


def _imagefolder(inputs: Path, classes: tuple[str, ...], corrupt: bool = False) -> Path:
    from PIL import Image

    root = inputs / "images"
    for index, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        Image.new("L", (8, 8), color=40 * index).save(root / name / "a.png")
    if corrupt:
        (root / classes[0] / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not a png" * 10)
    return root


def _idx_folder(inputs: Path, magic: bytes) -> Path:
    root = inputs / "fmnist"
    root.mkdir()
    header = {"images": (3).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2}
    for stem, kind in (("train-images-idx3-ubyte", "images"), ("train-labels-idx1-ubyte", "labels"),
                       ("t10k-images-idx3-ubyte", "images"), ("t10k-labels-idx1-ubyte", "labels")):
        count = (10).to_bytes(4, "big")
        body = header.get(kind, b"") + bytes(20)  # claims 10 images of 28x28: far too short
        (root / stem).write_bytes(magic + count + body)
    return root


def _hostile_cifar(inputs: Path) -> Path:
    root = inputs / "cifar-10-batches-py"
    root.mkdir()
    for name in (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"):
        (root / name).write_bytes(b"")
    (root / "batches.meta").write_bytes(pickle.dumps({"label_names": _RunsShell(inputs / "PWNED")}))
    return root


def _fake_run(inputs: Path, checkpoint: bytes | None) -> Path:
    run = inputs / "run"
    run.mkdir()
    if checkpoint is not None:
        (run / "checkpoint.pt").write_bytes(checkpoint)
    return run


# Each case: (id, builder of the argv from the inputs folder, a word the one line must contain).
CASES: list[tuple[str, Callable[[Path], list[str]], str]] = [
    ("profile-unknown-key", lambda d: ["profiles", "validate", str(_profile(d, "budgets:", "budgetz:"))], "budgetz"),
    ("profile-negative-budget", lambda d: ["profiles", "validate", str(_profile(d, "latency_ms: 1.0", "latency_ms: -1.0"))], "latency_ms"),
    ("profile-unknown-precision", lambda d: ["profiles", "validate", str(_profile(d, "precision: fp32", "precision: int4"))], "int4"),
    ("profile-zero-channels", lambda d: ["profiles", "validate", str(_profile(d, "channels: 1", "channels: 0"))], "channels"),
    ("profile-string-for-number", lambda d: ["profiles", "validate", str(_profile(d, "height: 8", "height: tall"))], "height"),
    ("profile-is-a-list", lambda d: ["profiles", "validate", str(_bytes_file(d, "list.yaml", b"- a\n- b\n"))], "list.yaml"),
    ("profile-empty-file", lambda d: ["profiles", "validate", str(_bytes_file(d, "empty.yaml", b""))], "empty.yaml"),
    ("profile-not-utf8", lambda d: ["profiles", "validate", str(_bytes_file(d, "latin.yaml", b"name: caf\xe9\xff\n"))], "latin.yaml"),
    ("profile-yaml-syntax", lambda d: ["profiles", "validate", str(_bytes_file(d, "syntax.yaml", b"name: [unclosed\n"))], "syntax.yaml"),
    ("profile-over-1mib", lambda d: ["profiles", "validate", str(_bytes_file(d, "huge.yaml", b"#" * (1 << 20) + b"\nname: x\n"))], "huge.yaml"),
    ("train-spec-not-a-number", lambda d: ["train", "--profile", str(write_tiny_profile(d)), *TINY, "--base", "depth=1,1;width=2,abc"], "width"),
    ("train-base-not-nested", lambda d: ["train", "--profile", str(write_tiny_profile(d)), *TINY, "--base", "depth=1,1;width=8,16"], "nested"),
    ("train-unknown-condition", lambda d: ["train", "--profile", str(write_tiny_profile(d)), *TINY, "--condition", "nosuch:k=1"], "nosuch"),
    ("train-condition-out-of-range", lambda d: ["train", "--profile", str(write_tiny_profile(d)), *TINY, "--condition", "random:p=2"], "p"),
    ("train-unknown-dataset", lambda d: ["train", "--profile", str(write_tiny_profile(d)), *TINY, "--data", "nosuch"], "nosuch"),
    ("train-imagefolder-missing", lambda d: ["train", "--profile", str(write_tiny_profile(d)), *TINY, "--data", f"imagefolder:{d / 'nowhere'}"], "nowhere"),
    ("train-imagefolder-one-class", lambda d: ["train", "--profile", str(write_tiny_profile(d)), *TINY, "--data", f"imagefolder:{_imagefolder(d, ('only',))}"], "2"),
    ("train-imagefolder-corrupt-image", lambda d: ["train", "--profile", str(write_tiny_profile(d)), *TINY, "--data", f"imagefolder:{_imagefolder(d, ('a', 'b'), corrupt=True)}"], "b.png"),
    ("train-idx-bad-magic", lambda d: ["train", "--profile", str(write_tiny_profile(d)), *TINY, "--data", "fashion-mnist", "--data-dir", str(_idx_folder(d, b"\x00\x00\x99\x03"))], "ubyte"),
    ("train-idx-truncated", lambda d: ["train", "--profile", str(write_tiny_profile(d)), *TINY, "--data", "fashion-mnist", "--data-dir", str(_idx_folder(d, b"\x00\x00\x08\x03"))], "ubyte"),
    ("train-cifar-pickle-runs-code", lambda d: ["train", "--profile", str(write_tiny_profile(d)), *TINY, "--data", "cifar10", "--data-dir", str(_hostile_cifar(d))], "batches.meta"),
    ("resume-folder-without-checkpoint", lambda d: ["train", "--resume", str(_fake_run(d, None))], "run"),
    ("export-checkpoint-not-a-zip", lambda d: ["export", str(_fake_run(d, b"definitely not a checkpoint")), "--out", str(d / "exports")], "checkpoint"),
    ("export-empty-checkpoint", lambda d: ["export", str(_fake_run(d, b"")), "--out", str(d / "exports")], "checkpoint"),
    ("profile-export-without-models", lambda d: ["profile", str(_fake_run(d, None)), "--profile", str(write_tiny_profile(d))], "run"),
]


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `root` with its size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


@pytest.mark.parametrize("build,word", [(build, word) for _, build, word in CASES],
                         ids=[case_id for case_id, _, _ in CASES])
def test_malformed_input_is_one_clear_line_and_writes_nothing(build, word, tmp_cwd, run_cli) -> None:
    inputs = tmp_cwd / "inputs"
    inputs.mkdir()
    argv = build(inputs)
    before = _tree(tmp_cwd)
    result = run_cli(*argv)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 1, (result.exit_code, result.stderr)
    # `profiles validate` says "invalid: ..."; every other command "Error: ...".
    assert len(lines) == 1 and lines[0].startswith(("Error: ", "invalid: ")), result.stderr
    assert word in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert _tree(tmp_cwd) == before, "a refused input left files behind"
    assert not (inputs / "PWNED").exists()
