"""Timing protocol and statistics: exact on a fake clock, within tolerance on a real sleep."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from seekdeploy.profiles.schema import MeasurementProtocol
from seekdeploy.runtime.timing import (
    LatencyStats,
    ProtocolSettings,
    measure,
    peak_rss_mib,
    reset_peak_rss,
)

RUNTIME_DIR = Path(__file__).resolve().parents[1] / "seekdeploy" / "runtime"


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


def test_peak_rss_grows_with_allocation_and_can_be_reset() -> None:
    before = peak_rss_mib()
    assert before > 1.0
    block = np.ones(64 * 1024 * 1024 // 8)  # 64 MiB, touched
    assert peak_rss_mib() >= before + 40
    del block
    if reset_peak_rss():
        assert peak_rss_mib() < before + 40


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
