"""`seekdeploy doctor`: every item is reported truthfully, with a fix for each unusable one, and a
broken optional backend is one failed line, not a crash."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from seekdeploy.doctor import DoctorCheck, check_datasets, check_environment

EXPECTED_ITEMS = {"python", "torch", "cuda-gpu", "onnx", "onnxruntime", "tensorrt", "trtexec", "ssh"}


@pytest.fixture(scope="module")
def checks() -> dict[str, DoctorCheck]:
    return {check.name: check for check in check_environment()}


def test_every_item_reported_with_fix_when_unusable(checks: dict[str, DoctorCheck]) -> None:
    assert EXPECTED_ITEMS <= set(checks)
    assert any(name.startswith("data:") for name in checks)
    for check in checks.values():
        assert check.detail
        if not check.usable and not check.name.startswith("data:"):
            assert check.fix, f"{check.name} is unusable but gives no fix"


def test_reports_match_the_real_environment(checks: dict[str, DoctorCheck]) -> None:
    import onnxruntime
    import torch

    assert checks["torch"].usable and torch.__version__ in checks["torch"].detail
    assert checks["cuda-gpu"].usable == torch.cuda.is_available()
    assert onnxruntime.__version__ in checks["onnxruntime"].detail
    for provider in onnxruntime.get_available_providers():
        assert provider in checks["onnxruntime"].detail
    assert checks["tensorrt"].usable == (importlib.util.find_spec("tensorrt") is not None)
    assert checks["trtexec"].usable == (shutil.which("trtexec") is not None)


def test_datasets_come_from_the_data_package(checks: dict[str, DoctorCheck]) -> None:
    from seekdeploy.data import dataset_status

    expected = {f"data:{name}": usable for name, usable, _ in dataset_status()}
    assert {name: checks[name].usable for name in expected} == expected
    assert checks["data:digits"].usable  # scikit-learn is a dependency


def test_missing_dataset_status_is_reported_honestly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "seekdeploy.data", types.ModuleType("seekdeploy.data"))
    (check,) = check_datasets()
    assert not check.usable and "dataset_status" in check.detail and check.fix


def test_cli_survives_a_broken_backend(tmp_path: Path) -> None:
    # A real import failure: a `tensorrt` package whose import raises like a missing .so would.
    fake = tmp_path / "tensorrt"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise OSError('libnvinfer.so.10: cannot open shared object')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-m", "seekdeploy", "doctor"], capture_output=True,
                            text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    (trt_line,) = [line for line in lines if line.split()[1:2] == ["tensorrt"]]
    assert "fails to import: OSError" in trt_line and "libnvinfer" in trt_line
    assert any(line.strip().startswith("fix:") for line in lines)
    assert lines[-1].endswith("items usable here.")
