"""Timing protocol and statistics: exact on a fake clock, within tolerance on a real sleep."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from seekdeploy.profiles.schema import MeasurementProtocol
from seekdeploy.runtime.result_schema import build_model_result, validate_model_result
from seekdeploy.runtime.timing import (
    LatencyStats,
    ProtocolSettings,
    TimedWindow,
    measure,
    measure_windows,
    quietest_index,
    round_order,
    spread_percent,
)
from seekdeploy.runtime.windows import merge_windows, profile_interleaved

RUNTIME_DIR = Path(__file__).resolve().parents[2] / "seekdeploy" / "runtime"


class FakeClock:
    """A clock that only moves when the fake workload runs: each call advances it by the next
    duration (ms) of a cycle, so every timed sample is known exactly."""

    def __init__(self, durations_ms: list[float]) -> None:
        self.now_s = 0.0
        self.durations_ms = durations_ms
        self.calls = 0

    def infer(self) -> None:
        self.now_s += self.durations_ms[self.calls % len(self.durations_ms)] / 1000.0
        self.calls += 1

    def timer(self) -> float:
        return self.now_s


def test_statistics_are_exact_on_a_known_workload() -> None:
    clock = FakeClock([float(ms) for ms in range(1, 101)])  # 1..100 ms
    protocol = ProtocolSettings(warmup_ms=0, warmup_iterations=0, duration_ms=0, min_iterations=100)
    stats = measure(clock.infer, protocol, timer=clock.timer, batch=4)
    assert stats.iterations == 100
    assert stats.samples_ms == pytest.approx(list(range(1, 101)), abs=1e-9)
    assert (stats.min_ms, stats.max_ms) == pytest.approx((1.0, 100.0))
    assert stats.mean_ms == pytest.approx(50.5)
    assert stats.median_ms == pytest.approx(50.5)
    # linear interpolation between order statistics: p = 1 + (n-1) * q
    assert stats.p90_ms == pytest.approx(90.1)
    assert stats.p95_ms == pytest.approx(95.05)
    assert stats.p99_ms == pytest.approx(99.01)
    assert stats.percentile(25) == pytest.approx(25.75)
    assert stats.std_ms == pytest.approx(float(np.std(np.arange(1, 101))))
    assert stats.throughput_per_s == pytest.approx(4 * 1000.0 / 50.5)


def test_sync_runs_after_every_iteration_and_is_inside_the_sample() -> None:
    clock = FakeClock([1.0])
    synced = []

    def sync() -> None:
        clock.now_s += 0.002  # a 2 ms device wait must be counted in the sample
        synced.append(clock.calls)

    protocol = ProtocolSettings(0, 3, 0, 5)
    stats = measure(clock.infer, protocol, sync=sync, timer=clock.timer)
    assert synced == list(range(1, 9))  # 3 warm-up + 5 timed, each synced right after its infer
    assert stats.samples_ms == pytest.approx([3.0] * 5)


@pytest.mark.parametrize(
    ("protocol", "expected_warmup", "expected_timed"),
    [
        (ProtocolSettings(30, 5, 50, 10), 30, 50),  # time dominates both phases
        (ProtocolSettings(3, 20, 5, 40), 20, 40),  # counts dominate both phases
        (ProtocolSettings(0, 0, 0, 1), 0, 1),
    ],
)
def test_protocol_honours_max_of_time_and_count(
    protocol: ProtocolSettings, expected_warmup: int, expected_timed: int
) -> None:
    clock = FakeClock([1.0])  # every inference takes exactly 1 ms
    stats = measure(clock.infer, protocol, timer=clock.timer)
    assert stats.iterations == expected_timed
    assert clock.calls == expected_warmup + expected_timed


def test_accepts_a_profile_measurement_protocol() -> None:
    clock = FakeClock([2.0])
    profile_protocol = MeasurementProtocol(warmup_ms=4, warmup_iterations=1, duration_ms=10, min_iterations=2)
    stats = measure(clock.infer, profile_protocol, timer=clock.timer)
    assert stats.iterations == 5
    assert ProtocolSettings.from_protocol(profile_protocol).to_json() == {
        "warmup_ms": 4.0, "warmup_iterations": 1, "duration_ms": 10.0, "min_iterations": 2,
    }  # fmt: skip


def test_real_sleep_workload_is_measured_within_tolerance() -> None:
    protocol = ProtocolSettings(warmup_ms=10, warmup_iterations=2, duration_ms=100, min_iterations=20)
    start = time.perf_counter()
    stats = measure(lambda: time.sleep(0.002), protocol)
    wall_ms = (time.perf_counter() - start) * 1000.0
    assert stats.iterations >= 20
    assert stats.min_ms >= 2.0  # sleep never returns early
    assert 2.0 <= stats.median_ms < 6.0  # generous: the machine is shared
    assert stats.min_ms <= stats.median_ms <= stats.p95_ms <= stats.p99_ms <= stats.max_ms
    assert sum(stats.samples_ms) <= wall_ms


def test_device_time_is_summarized_beside_host_latency() -> None:
    clock = FakeClock([3.0])
    stats = measure(clock.infer, ProtocolSettings(0, 0, 0, 4), timer=clock.timer, device_time_ms=lambda: 1.5)
    assert stats.device_compute is not None
    assert stats.device_compute.median_ms == pytest.approx(1.5)
    assert stats.median_ms == pytest.approx(3.0)


def test_json_round_trip_keeps_samples_and_statistics() -> None:
    stats = LatencyStats.from_samples([1.0, 2.0, 3.0, 10.0], batch=2)
    data = json.loads(json.dumps(stats.to_json()))
    again = LatencyStats.from_json(data)
    assert again == stats
    summary_only = LatencyStats.from_json(stats.to_json(include_samples=False))
    assert summary_only.p95_ms == pytest.approx(stats.p95_ms)
    assert summary_only.samples_ms == ()


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="no latency samples"):
        LatencyStats.from_samples([])
    with pytest.raises(ValueError, match="percentile"):
        LatencyStats.from_samples([1.0]).percentile(101)


_PEAK_RSS_PROBE = """
import json
import numpy as np
from seekdeploy.runtime.timing import peak_rss_mib, reset_peak_rss
before = peak_rss_mib()
block = np.ones(64 * 1024 * 1024 // 8)  # 64 MiB, touched
with_block = peak_rss_mib()
del block
reset = reset_peak_rss()
print(json.dumps({"before": before, "with_block": with_block, "reset": reset, "after": peak_rss_mib()}))
"""


def test_peak_rss_grows_with_allocation_and_can_be_reset() -> None:
    # In a fresh process: in the long test process, memory other tests left behind (and threads
    # of runtimes they loaded) can hold the RSS up after the block is freed.
    out = subprocess.run([sys.executable, "-c", _PEAK_RSS_PROBE], capture_output=True, text=True,
                         check=True, timeout=60)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["before"] > 1.0
    assert figures["with_block"] >= figures["before"] + 40
    if figures["reset"]:
        # The peak is now the current RSS, 64 MiB under the block's.
        assert figures["after"] < figures["with_block"] - 32


@pytest.mark.parametrize(
    ("module", "allowed_third_party"),
    [("timing", {"numpy"}), ("environment", set()), ("result_schema", set()), ("_cuda", set())],
)
def test_standalone_modules_import_only_stdlib_and_numpy(module: str, allowed_third_party: set[str]) -> None:
    # Run the file the way the remote agent does: by itself on sys.path, no seekdeploy importable.
    script = (
        "import sys, json\n"
        f"sys.path.insert(0, {str(RUNTIME_DIR)!r})\n"
        "before = set(sys.modules)\n"
        f"import {module}\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    done = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, check=True)
    loaded = json.loads(done.stdout)
    tops = {name.split(".")[0] for name in loaded} - {module}
    third_party = {t for t in tops if t not in sys.stdlib_module_names and not t.startswith("_")}
    assert third_party <= allowed_third_party, f"{module}.py imported {third_party}"
    assert "seekdeploy" not in tops


# ---- the window protocol: interleaved windows, the quietest reported ----


def test_measure_windows_reads_the_load_around_each_window_only() -> None:
    clock = FakeClock([1.0, 1.0, 3.0])  # 1 ms twice, then 3 ms: the windows differ
    events: list[str] = []

    def watch() -> Callable[[], dict]:
        events.append(f"start@{clock.calls}")
        return lambda: events.append(f"stop@{clock.calls}") or {"others_busy_cores": 0.0}

    windows = measure_windows(clock.infer, ProtocolSettings(0, 1, 0, 3), 2, watch_load=watch, timer=clock.timer)
    assert [window.stats.iterations for window in windows] == [3, 3]
    # Each window is 1 warm-up + 3 timed calls; the load is read before and after, never inside.
    assert events == ["start@0", "stop@4", "start@4", "stop@8"]
    assert windows[0].to_json()["load"] == {"others_busy_cores": 0.0}
    assert "samples_ms" not in windows[0].to_json() and "samples_ms" in windows[0].to_json(True)


def test_quietest_window_spread_and_round_order() -> None:
    assert quietest_index([0.30, 0.21, 0.25, 0.21]) == 1  # the lowest median, the earliest on a tie
    assert spread_percent([0.2, 0.25, 0.3]) == pytest.approx(50.0)
    assert spread_percent([0.2]) == 0.0
    with pytest.raises(ValueError):
        quietest_index([])
    roles = ["base", "motivated", "third"]
    orders = [round_order(roles, index) for index in range(4)]
    assert orders == [roles, ["motivated", "third", "base"], ["third", "base", "motivated"], roles]


def _one_window_result(median_ms: float, role: str, peak: float, others_busy: float, sweep=None) -> dict:
    stats = LatencyStats.from_samples([median_ms - 0.01, median_ms, median_ms + 0.5])
    return build_model_result(
        role=role, model_file="model.onnx", runtime="onnxruntime", providers=[], threads=1,
        input_shape=[1, 3, 8, 8], protocol={}, latency=stats.to_json(), environment={"hostname": "h"},
        repeats=[TimedWindow(stats, {"others_busy_cores": others_busy, "loadavg": [1.0, 1.0, 1.0],
                                     "busy_processes": [{"pid": 7, "name": "hog", "nice": 19,
                                                         "cores": others_busy}]}).to_json()],
        peak_memory_mib=peak, sweep=sweep,
    )  # fmt: skip


def test_profile_interleaved_times_every_role_once_per_round_and_reports_the_quietest() -> None:
    calls: list[tuple[str, int]] = []
    medians = {"base": [0.30, 0.20, 0.26], "motivated": [1.0, 1.4, 0.9]}

    def time_window(role: str, round_index: int) -> dict:
        calls.append((role, round_index))
        sweep = [{"batch": 2}] if round_index == 2 else None
        return _one_window_result(medians[role][round_index], role, 50.0 + round_index, 0.1 * round_index, sweep)

    merged = profile_interleaved(["base", "motivated"], 3, time_window)
    assert calls == [("base", 0), ("motivated", 0), ("motivated", 1), ("base", 1), ("base", 2), ("motivated", 2)]
    base = merged["base"]
    assert validate_model_result(base) == []
    assert base["latency"]["median_ms"] == pytest.approx(0.20) and base["latency"]["samples_ms"]
    assert [window["round"] for window in base["repeats"]] == [0, 1, 2]
    assert [window["median_ms"] for window in base["repeats"]] == pytest.approx([0.30, 0.20, 0.26])
    assert all(window["samples_ms"] for window in base["repeats"])  # every window is recorded whole
    assert base["windows"]["reported"] == 1 and base["windows"]["count"] == 3
    assert base["windows"]["spread_percent"] == pytest.approx(50.0)
    assert base["windows"]["interleaved_with"] == ["base", "motivated"]
    assert base["peak_memory_mib"] == 52.0 and base["sweep"] == [{"batch": 2}]
    load = base["environment"]["load"]
    assert load["others_busy_cores_max"] == pytest.approx(0.2) and load["busy"] is False
    assert merged["motivated"]["latency"]["median_ms"] == pytest.approx(0.9)
    with pytest.raises(ValueError):
        profile_interleaved(["base"], 0, time_window)


def test_the_quietest_window_is_ranked_by_the_judged_percentile() -> None:
    # Medians agree within noise; the tails differ tenfold (a busy machine preempting the runtime).
    tails = {0: [0.190] * 90 + [9.0] * 10, 1: [0.191] * 97 + [0.3] * 3, 2: [0.189] * 90 + [12.0] * 10}
    chunks = [build_model_result(role="base", model_file="m.onnx", runtime="onnxruntime", providers=[], threads=0,
                                 input_shape=[1, 3, 8, 8], protocol={},
                                 latency=LatencyStats.from_samples(samples).to_json(), environment={})
              for samples in tails.values()]  # fmt: skip
    by_p95 = merge_windows(chunks, ["base"], judged_percentile=95.0)
    assert by_p95["windows"]["reported"] == 1 and by_p95["windows"]["rule"] == "quietest window: lowest p95"
    assert by_p95["latency"]["p95_ms"] == pytest.approx(0.191)
    by_median = merge_windows(chunks, ["base"])
    assert by_median["windows"]["reported"] == 2 and by_median["windows"]["rule"] == "quietest window: lowest median"
