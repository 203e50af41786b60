"""Environment capture: this machine, and a fake Jetson tree with a fake `nvpmodel` on PATH."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from seekdeploy.runtime.environment import collect_environment, read_cpu_model

RUNTIME_DIR = Path(__file__).resolve().parents[2] / "seekdeploy" / "runtime"


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


# ---- the machine's load while a window is timed ----


def _write_proc(root: Path, machine_jiffies: list[int], processes: dict[int, tuple[str, int, int]],
                loadavg: str = "1.50 0.75 0.25 3/120 999") -> None:
    (root / "proc").mkdir(parents=True, exist_ok=True)
    (root / "proc/stat").write_text("cpu  " + " ".join(str(j) for j in machine_jiffies) + "\ncpu0 1 2 3\n")
    (root / "proc/loadavg").write_text(loadavg + "\n")
    for pid, (name, ticks, nice) in processes.items():
        (root / "proc" / str(pid)).mkdir(exist_ok=True)
        # pid (comm) state ppid ... utime(14) stime(15) ... nice(19): the comm has a space and a ')'.
        fields = ["S", "1"] + ["0"] * 9 + [str(ticks), "0"] + ["0"] * 3 + [str(nice)] + ["0"] * 5
        (root / "proc" / str(pid) / "stat").write_text(f"{pid} ({name}) {' '.join(fields)}\n")


def test_load_of_a_fake_proc_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from seekdeploy.runtime import environment

    clock = itertools.count(10.0)  # each watched interval lasts exactly one second
    monkeypatch.setattr(environment, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    ticks = float(os.sysconf("SC_CLK_TCK"))
    # user nice system idle iowait irq softirq steal
    _write_proc(tmp_path, [100, 0, 0, 100, 0, 0, 0, 0], {4242: ("hog (x)", 50, 19), 4343: ("idle one", 7, 0),
                                                        os.getpid(): ("me", 0, 0)})  # fmt: skip
    stop = environment.watch_load(tmp_path)
    busy_ticks = int(1.5 * ticks)
    _write_proc(tmp_path, [100 + busy_ticks, 0, 0, 100 + int(0.3 * ticks), 0, 0, 0, int(0.2 * ticks)],
                {4242: ("hog (x)", 50 + busy_ticks, 19), 4343: ("idle one", 7, 0), os.getpid(): ("me", 999, 0)})
    load = stop()
    assert load["interval_s"] == pytest.approx(1.0)
    assert load["loadavg"] == [1.5, 0.75, 0.25]
    assert load["others_busy_cores"] == pytest.approx(1.5, abs=0.02)  # this process is not "other"
    assert load["busy_processes"] == [{"pid": 4242, "name": "hog (x)", "nice": 19, "cores": pytest.approx(1.5, abs=0.02)}]
    assert load["steal_percent"] == pytest.approx(100 * 0.2 / 2.0, abs=1.0)
    assert environment.watch_load(tmp_path / "nothing")() == {}  # no /proc: nothing, and no error


def test_a_busy_process_is_seen_while_a_window_runs() -> None:
    from seekdeploy.runtime.environment import watch_load

    hog = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 5\nwhile time.time() < end: pass"])
    try:
        import time

        time.sleep(0.3)  # the hog is running before the window opens
        ticks_before = _cpu_ticks(hog.pid)
        stop = watch_load()
        time.sleep(1.0)  # the "window": this process sleeps, the hog spins
        load = stop()
        hog_cores = (_cpu_ticks(hog.pid) - ticks_before) / os.sysconf("SC_CLK_TCK") / 1.0
    finally:
        hog.kill()
        hog.wait()
    seen = {process["pid"]: process for process in load["busy_processes"]}
    listed = [process["cores"] for process in load["busy_processes"]]
    if hog.pid in seen:
        # What the watcher measured is what the hog really used (its own /proc counters).
        assert seen[hog.pid]["cores"] == pytest.approx(hog_cores, abs=0.15)
        assert load["others_busy_cores"] >= seen[hog.pid]["cores"]
    else:
        # On a machine busier than the hog it may fall out of the top five: then only by
        # using less than each of them (on a quiet machine it spins a whole core and is listed).
        assert len(listed) == 5 and hog_cores <= min(listed) + 0.15, (hog_cores, listed)
    assert load["others_busy_cores"] >= 0.05
    assert load["loadavg"] and len(load["loadavg"]) == 3


def _cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])
    env = collect_environment("onnxruntime")
    assert env["loadavg"] == pytest.approx(load["loadavg"], abs=5.0)
