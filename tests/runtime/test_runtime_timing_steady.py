"""Warm-up until steady: the timed window starts after the latency stopped falling (bounded)."""

from __future__ import annotations

import pytest

from seekdeploy.runtime.timing import STEADY_MIN_EXTRA_MS, ProtocolSettings, is_steady, measure


class SettlingClock:
    """A fake workload whose latency falls from 3 ms by 0.05 ms a run to 1 ms, then stays there."""

    def __init__(self, floor_ms: float = 1.0) -> None:
        self.now_s = 0.0
        self.calls = 0
        self.floor_ms = floor_ms

    def infer(self) -> None:
        self.now_s += max(self.floor_ms, 3.0 - 0.05 * self.calls) / 1000.0
        self.calls += 1

    def timer(self) -> float:
        return self.now_s


def test_the_window_starts_once_the_warm_up_is_steady() -> None:
    clock = SettlingClock()
    stats = measure(clock.infer, ProtocolSettings(0, 10, 0, 20), timer=clock.timer)
    assert clock.calls - stats.iterations >= 40  # warmed up past the 10 asked, until it settled
    assert stats.median_ms == pytest.approx(1.0) and stats.max_ms == pytest.approx(1.0)


def test_a_warm_up_that_never_settles_is_bounded() -> None:
    clock = SettlingClock(floor_ms=-1e9)  # keeps getting faster (down to zero time) forever
    clock.infer = lambda: _slower_each_run(clock)  # or slower each run: never steady
    measure(clock.infer, ProtocolSettings(10, 1, 0, 1), timer=clock.timer)
    assert clock.now_s * 1000.0 <= 3 * 10 + STEADY_MIN_EXTRA_MS + 50


def _slower_each_run(clock: SettlingClock) -> None:
    clock.now_s += (1.0 + 0.2 * clock.calls) / 1000.0
    clock.calls += 1


def test_is_steady() -> None:
    assert is_steady([1.0] * 3)  # too few runs to judge: the protocol's short warm-up stands
    assert is_steady([1.0] * 20)
    assert not is_steady([2.0] * 15 + [1.0] * 5)  # the last block fell from the one before
    assert is_steady([2.0] * 10 + [1.0] * 30)  # the last two blocks agree
    assert is_steady([1.0, 1.02] * 10)  # within 3 %


def test_a_window_slowed_throughout_is_not_reported_for_its_luckier_tail() -> None:
    from seekdeploy.runtime.result_schema import build_model_result
    from seekdeploy.runtime.timing import LatencyStats
    from seekdeploy.runtime.windows import merge_windows

    # Two modes 1.5x apart (seen at load 10): the slow-mode window's p95 happens to be the lowest.
    windows = [[0.167] * 90 + [4.0] * 10, [0.255] * 97 + [0.3] * 3, [0.168] * 92 + [2.0] * 8]
    chunks = [build_model_result(role="base", model_file="m.onnx", runtime="onnxruntime", providers=[], threads=1,
                                 input_shape=[1, 3, 8, 8], protocol={},
                                 latency=LatencyStats.from_samples(samples).to_json(), environment={})
              for samples in windows]  # fmt: skip
    merged = merge_windows(chunks, ["base"], judged_percentile=95.0)
    assert merged["windows"]["reported"] == 2  # the lower tail of the two quiet-bodied windows
    assert merged["latency"]["median_ms"] == pytest.approx(0.168)
    assert merged["windows"]["rule"] == "quietest window: lowest p95"
