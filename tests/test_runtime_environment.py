"""Environment capture: this machine, and a fake Jetson tree with a fake `nvpmodel` on PATH."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seekdeploy.runtime.environment import collect_environment, read_cpu_model

RUNTIME_DIR = Path(__file__).resolve().parents[1] / "seekdeploy" / "runtime"


def test_this_machine() -> None:
    env = collect_environment("onnxruntime", ["CPUExecutionProvider"], 2)
    assert env["runtime"] == "onnxruntime" and env["providers"] == ["CPUExecutionProvider"]
    assert env["threads"] == 2 and env["cpu_cores"] == os.cpu_count()
    assert env["cpu_model"]
    assert env["python"].count(".") == 2
    assert "numpy" in env["versions"]
    assert "jetson" not in env  # not a Jetson
    json.dumps(env)  # JSON-safe


def test_versions_do_not_import_torch() -> None:
    script = (
        f"import sys; sys.path.insert(0, {str(RUNTIME_DIR)!r}); import environment; "
        "env = environment.collect_environment('onnxruntime'); "
        "print('torch' in sys.modules, env['versions'].get('torch'))"
    )
    done = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, check=True)
    imported, version = done.stdout.split()
    assert imported == "False"
    assert version != "None"  # torch is installed here, and its version came from metadata


def make_jetson_tree(root: Path) -> None:
    files = {
        "etc/nv_tegra_release": "# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic\n",
        "proc/cpuinfo": "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd42\n",
        "proc/device-tree/model": "NVIDIA Jetson Orin Nano Developer Kit\x00",
        "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq": "1510400\n",
        "sys/devices/system/cpu/cpu1/cpufreq/scaling_cur_freq": "729600\n",
        "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor": "schedutil\n",
        "sys/class/devfreq/17000000.ga10b/cur_freq": "624750000\n",
        "sys/class/devfreq/broken/cur_freq": "n/a\n",
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_fake_jetson(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    make_jetson_tree(root)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    nvpmodel = bin_dir / "nvpmodel"
    nvpmodel.write_text("#!/bin/sh\n[ \"$1\" = -q ] && echo 'NV Power Mode: 15W' && echo 0\n")
    nvpmodel.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    env = collect_environment("tensorrt", [], 0, root=root)
    jetson = env["jetson"]
    assert jetson["nv_tegra_release"].startswith("# R36 (release), REVISION: 3.0")
    assert jetson["nvpmodel"] == "NV Power Mode: 15W\n0"
    assert jetson["cpu_freq_khz"] == {"cpu0": 1510400, "cpu1": 729600}
    assert jetson["devfreq_hz"] == {"17000000.ga10b": 624750000}  # the unreadable one is left out
    assert env["board"] == "NVIDIA Jetson Orin Nano Developer Kit"
    assert env["cpu_governor"] == "schedutil"
    assert env["cpu_model"] == "0x41 part 0xd42"


def test_cpu_model_from_x86_cpuinfo(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text("processor : 0\nmodel name : Test CPU @ 3GHz\n\nmodel name : other\n")
    assert read_cpu_model(tmp_path) == "Test CPU @ 3GHz"
