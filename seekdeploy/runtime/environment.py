"""What the latency figures were measured on: host, CPU, library versions, power mode and clocks.

Standard library ONLY (no numpy, no seekdeploy): the remote agent ships this file to the device.
Library versions come from package metadata, so recording torch's version never imports torch.
Which pip distributions carry a runtime's version is declared by its backend
(`Runtime.distributions`); this file cannot look that up on a device, so callers that can pass
`seekdeploy.backends.version_distributions()`, and otherwise the measured runtime's version is read
from the distribution of its own name, or its imported module.
Everything is best effort: a value that cannot be read is left out or None, never an error,
because a missing clock file must not stop a latency measurement.

The machine's load while a window is timed comes from /proc (Linux): `watch_load()` is called
just before a window and its stop function just after, so nothing is read while samples are
taken. It records the load average, how many cores were busy, how many of them other processes
kept busy (the timing process and its threads excluded), the VM's steal time, and the busiest
other processes with their nice value.
"""

from __future__ import annotations

import glob
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Sequence  # not collections.abc: devices may run Python 3.8

# The libraries every environment records besides the runtimes: import name -> distribution names
# to try (the first one installed wins).
_LIBRARIES = {"numpy": ("numpy",), "onnx": ("onnx",), "torch": ("torch",)}
_COMMAND_TIMEOUT_S = 5.0
_BUSY_PROCESS_MIN_CORES = 0.05  # other processes using less than 5 % of a core are not listed
_BUSY_PROCESSES_LISTED = 5


def collect_environment(
    runtime_name: str,
    providers: list[str] | tuple[str, ...] | None = None,
    threads: int = 0,
    root: str | os.PathLike[str] = "/",
    distributions: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Describe this machine and software stack for the results JSON.

    `root` is the filesystem root the /proc, /sys and /etc files are read under (tests point it at
    a fake tree). `distributions` (runtime name -> pip distributions) adds those runtimes' versions;
    the measured runtime's is always recorded (by default from the distribution of its name). On a Jetson (an /etc/nv_tegra_release file exists) the L4T release, the nvpmodel
    power mode and the readable clocks are added under "jetson".
    """
    base = Path(root)
    env: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": read_cpu_model(base),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": _usable_cores(),
        "cpu_governor": _read_text(base / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "runtime": runtime_name,
        "providers": list(providers or ()),
        "threads": int(threads),
        "python": platform.python_version(),
        "versions": library_versions({runtime_name: (runtime_name,), **(distributions or {})}),
        "loadavg": read_loadavg(base),
    }
    board = _read_text(base / "proc/device-tree/model")
    if board:
        env["board"] = board.rstrip("\x00")
    tegra_release = _read_text(base / "etc/nv_tegra_release")
    if tegra_release is not None:
        env["jetson"] = collect_jetson(base, tegra_release)
    return env


def read_loadavg(root: str | os.PathLike[str] = "/") -> list[float] | None:
    """The 1, 5 and 15 minute load averages from /proc/loadavg, or None where unreadable."""
    text = _read_text(Path(root) / "proc/loadavg")
    try:
        return [float(value) for value in text.split()[:3]] if text else None
    except ValueError:
        return None


def watch_load(root: str | os.PathLike[str] = "/", exclude_pids: tuple[int, ...] = ()) -> Any:
    """Snapshot /proc now; the returned function snapshots again and describes the interval.

    The description (a JSON-safe dict, empty where /proc is unreadable)::

        {"interval_s", "loadavg": [1m, 5m, 15m], "busy_cores", "others_busy_cores",
         "steal_percent", "busy_processes": [{"pid", "name", "nice", "cores"}, ...]}

    `others_busy_cores` is every process's CPU time in the interval except this process (and its
    threads) and `exclude_pids`, divided by the interval: 1.0 means another program kept one core
    busy the whole window.
    """
    base = Path(root)
    own = {os.getpid(), *exclude_pids}
    before, started = _cpu_snapshot(base), time.perf_counter()

    def stop() -> dict[str, Any]:
        after, interval_s = _cpu_snapshot(base), time.perf_counter() - started
        return _describe_load(base, before, after, interval_s, own)

    return stop


def _cpu_snapshot(root: Path) -> dict[str, Any]:
    """Jiffies of the whole machine (/proc/stat "cpu" line) and of every process."""
    fields = (_read_text(root / "proc/stat") or "").split("\n", 1)[0].split()
    processes = {}
    try:
        entries = os.listdir(root / "proc")
    except OSError:
        entries = []
    for entry in entries:
        if entry.isdigit():
            sample = _read_process(root / "proc" / entry / "stat")
            if sample is not None:
                processes[int(entry)] = sample
    machine = [int(value) for value in fields[1:]] if fields[:1] == ["cpu"] else []
    return {"machine": machine, "processes": processes}


def _read_process(path: Path) -> tuple[str, int, int] | None:
    # /proc/PID/stat: "pid (comm) state ..."; comm may hold spaces and ')', so split at the last ')'.
    text = _read_text(path)
    if not text or ")" not in text:
        return None
    name = text[text.find("(") + 1:text.rfind(")")]
    rest = text[text.rfind(")") + 2:].split()
    try:
        return name, int(rest[11]) + int(rest[12]), int(rest[16])  # utime + stime, nice
    except (IndexError, ValueError):
        return None


def _describe_load(root: Path, before: dict[str, Any], after: dict[str, Any], interval_s: float,
                   own: set[int]) -> dict[str, Any]:
    if not after["machine"] or interval_s <= 0:
        return {}
    ticks_per_s = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
    delta = [now - then for now, then in zip(after["machine"], before["machine"] or after["machine"])]
    total = sum(delta[:8]) or 1  # user nice system idle iowait irq softirq steal (guest is in user)
    idle = delta[3] + (delta[4] if len(delta) > 4 else 0)
    steal = delta[7] if len(delta) > 7 else 0
    cpus = os.cpu_count() or 1
    busy = []
    for pid, (name, ticks, nice) in after["processes"].items():
        earlier = before["processes"].get(pid)
        if pid in own or earlier is None or earlier[0] != name:
            continue
        used_cores = (ticks - earlier[1]) / ticks_per_s / interval_s
        if used_cores > 0:
            busy.append({"pid": pid, "name": name, "nice": nice, "cores": round(used_cores, 3)})
    busy.sort(key=lambda process: -process["cores"])
    return {
        "interval_s": round(interval_s, 3),
        "loadavg": read_loadavg(root),
        "busy_cores": round(cpus * (total - idle) / total, 3),
        "others_busy_cores": round(sum(process["cores"] for process in busy), 3),
        "steal_percent": round(100.0 * steal / total, 2),
        "busy_processes": [p for p in busy if p["cores"] >= _BUSY_PROCESS_MIN_CORES][:_BUSY_PROCESSES_LISTED],
    }


def library_versions(runtimes: Mapping[str, Sequence[str]] | None = None) -> dict[str, str]:
    """Installed versions of numpy, onnx, torch and `runtimes` (import name -> distributions), from
    package metadata (nothing imported; an already imported module's `__version__` otherwise)."""
    versions: dict[str, str] = {}
    for module_name, distributions in {**_LIBRARIES, **(runtimes or {})}.items():
        version = _distribution_version(distributions)
        loaded = sys.modules.get(module_name)
        if version is None and loaded is not None:
            version = getattr(loaded, "__version__", None)
        if version is not None:
            versions[module_name] = str(version)
    return versions


def read_cpu_model(root: Path = Path("/")) -> str:
    """The CPU model name from /proc/cpuinfo (x86 "model name", ARM "Hardware"/"CPU part")."""
    text = _read_text(root / "proc/cpuinfo") or ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    for key in ("model name", "Hardware", "Processor", "cpu model"):
        if fields.get(key):
            return fields[key]
    if fields.get("CPU part"):
        return f"{fields.get('CPU implementer', '?')} part {fields['CPU part']}"
    return platform.processor() or platform.machine()


def collect_jetson(root: Path, tegra_release: str) -> dict[str, Any]:
    """L4T release, nvpmodel power mode and readable clocks of an NVIDIA Jetson."""
    info: dict[str, Any] = {"nv_tegra_release": tegra_release.strip().splitlines()[0]}
    mode = _run_command(["nvpmodel", "-q"])
    if mode is not None:
        info["nvpmodel"] = mode
    info["cpu_freq_khz"] = _read_cpu_freqs(root)
    devfreq: dict[str, int] = {}
    for path in sorted(glob.glob(str(root / "sys/class/devfreq/*/cur_freq"))):
        value = _read_int(Path(path))
        if value is not None:
            devfreq[Path(path).parent.name] = value  # e.g. 17000000.ga10b (the Orin GPU), Hz
    info["devfreq_hz"] = devfreq
    return info


def _read_cpu_freqs(root: Path) -> dict[str, int]:
    freqs: dict[str, int] = {}
    pattern = str(root / "sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq")
    for path in sorted(glob.glob(pattern)):
        value = _read_int(Path(path))
        if value is not None:
            freqs[Path(path).parent.parent.name] = value
    return freqs


def _distribution_version(distributions: Sequence[str]) -> str | None:
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _usable_cores() -> int | None:
    # sched_getaffinity honours taskset/cgroup pinning; it is missing on macOS and Windows.
    getaffinity = getattr(os, "sched_getaffinity", None)
    return len(getaffinity(0)) if getaffinity else os.cpu_count()


def _run_command(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=_COMMAND_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    output = (done.stdout or done.stderr).strip()
    return output or None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    text = _read_text(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
