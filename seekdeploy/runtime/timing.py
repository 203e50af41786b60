"""trtexec-grade latency timing: warm up, then time every iteration individually.

This file imports ONLY the standard library and numpy: the remote agent copies it verbatim to the
device and runs it beside the runtime, with no seekdeploy installed there. Keep it that way (a
test runs it in a fresh interpreter and checks `sys.modules`).

Protocol: warm up until BOTH `warmup_ms` have elapsed and `warmup_iterations` have run, and on
until the warm-up's latency is steady (`is_steady`, bounded), then time a window until BOTH
`duration_ms` have elapsed and `min_iterations` have run. Every timed iteration
is `infer()` followed by `sync()` (a stream/event synchronize for GPU runners), bracketed by
`time.perf_counter()`, so asynchronous work is never left out of the sample.

Window protocol (what `seekdeploy profile` reports): a model is timed in several windows, each a
whole run of the protocol above, interleaved with the other models of the export (`round_order`),
and the QUIETEST window is reported: here the one with the lowest median; `seekdeploy profile`
ranks by the budget's percentile (`runtime.windows.merge_windows`). Other work on a shared device
only ever adds time, so the quietest window is the best estimate of what the model itself costs;
the spread between the windows' medians says how busy the device was.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
# typing's Callable, not collections.abc's: devices may run Python 3.8 (JetPack 5)
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

Timer = Callable[[], float]

if TYPE_CHECKING:
    from typing import Protocol

    class ProtocolFields(Protocol):
        """What `measure` reads from a protocol: `ProtocolSettings`, a profile's `MeasurementProtocol`."""

        @property
        def warmup_ms(self) -> float: ...
        @property
        def warmup_iterations(self) -> int: ...
        @property
        def duration_ms(self) -> float: ...
        @property
        def min_iterations(self) -> int: ...


@dataclass(frozen=True)
class ProtocolSettings:
    """The measurement protocol; mirrors `seekdeploy.profiles.MeasurementProtocol` field for field."""

    warmup_ms: float = 200.0
    warmup_iterations: int = 10
    duration_ms: float = 1000.0
    min_iterations: int = 50

    @classmethod
    def from_protocol(cls, protocol: ProtocolFields) -> ProtocolSettings:
        """Copy any object with the four protocol attributes (e.g. a profile's MeasurementProtocol)."""
        return cls(
            warmup_ms=float(protocol.warmup_ms),
            warmup_iterations=int(protocol.warmup_iterations),
            duration_ms=float(protocol.duration_ms),
            min_iterations=int(protocol.min_iterations),
        )

    def to_json(self) -> dict[str, Any]:
        """Plain dict for the results JSON."""
        return {
            "warmup_ms": self.warmup_ms,
            "warmup_iterations": self.warmup_iterations,
            "duration_ms": self.duration_ms,
            "min_iterations": self.min_iterations,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProtocolSettings:
        """Inverse of `to_json`."""
        return cls.from_protocol(_Namespace(data))


class _Namespace:
    def __init__(self, data: dict[str, Any]) -> None:
        self.__dict__.update(data)


_PERCENTILES = (90.0, 95.0, 99.0)
# Warm-up until steady: a sub-millisecond model's first hundreds of runs still get faster (caches,
# allocator, the runtime's thread pool and the CPU's clock settling); a window timed before that
# reports a different median each run. The warm-up goes on, past the protocol's, until the median
# of its last block agrees with the block before within STEADY_TOLERANCE, or for at most
# STEADY_MAX_EXTRA x the protocol's warm-up time + STEADY_MIN_EXTRA_MS more.
STEADY_BLOCK = 5
STEADY_TOLERANCE = 0.03
STEADY_MAX_EXTRA = 2.0
STEADY_MIN_EXTRA_MS = 200.0


@dataclass(frozen=True)
class LatencyStats:
    """Summary of per-iteration latencies in milliseconds, with the raw samples kept.

    Percentiles use linear interpolation between order statistics (numpy's default), so the
    median of (1, 2, 3, 4) is 2.5. `throughput_per_s` counts inferences (images) per second:
    `batch` images per iteration divided by the mean iteration latency.
    """

    min_ms: float
    mean_ms: float
    median_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    std_ms: float
    throughput_per_s: float
    iterations: int
    batch: int
    samples_ms: tuple[float, ...] = field(repr=False)
    device_compute: LatencyStats | None = None  # GPU compute time (CUDA events) where measured

    @classmethod
    def from_samples(
        cls,
        samples_ms: list[float] | tuple[float, ...] | np.ndarray,
        batch: int = 1,
        device_compute: LatencyStats | None = None,
    ) -> LatencyStats:
        """Summarize raw per-iteration latencies (ms); raises ValueError when there are none."""
        samples = np.asarray(samples_ms, dtype=np.float64)  # (N,)
        if samples.size == 0:
            raise ValueError("no latency samples to summarize")
        p90, p95, p99 = (float(np.percentile(samples, p)) for p in _PERCENTILES)
        mean_ms = float(samples.mean())
        return cls(
            min_ms=float(samples.min()),
            mean_ms=mean_ms,
            median_ms=float(np.median(samples)),
            p90_ms=p90,
            p95_ms=p95,
            p99_ms=p99,
            max_ms=float(samples.max()),
            std_ms=float(samples.std()),
            throughput_per_s=batch * 1000.0 / mean_ms if mean_ms > 0 else math.inf,
            iterations=int(samples.size),
            batch=int(batch),
            samples_ms=tuple(float(s) for s in samples),
            device_compute=device_compute,
        )

    def percentile(self, p: float) -> float:
        """Latency (ms) at percentile `p` in [0, 100] of the raw samples."""
        if not 0.0 <= p <= 100.0:
            raise ValueError(f"percentile must be within [0, 100], got {p}")
        return float(np.percentile(np.asarray(self.samples_ms), p))

    def to_json(self, include_samples: bool = True) -> dict[str, Any]:
        """Plain dict (JSON-safe); raw samples are rounded to the nanosecond."""
        data: dict[str, Any] = {
            "min_ms": self.min_ms,
            "mean_ms": self.mean_ms,
            "median_ms": self.median_ms,
            "p90_ms": self.p90_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "std_ms": self.std_ms,
            "throughput_per_s": self.throughput_per_s,
            "iterations": self.iterations,
            "batch": self.batch,
        }
        if include_samples:
            data["samples_ms"] = [round(s, 6) for s in self.samples_ms]
        if self.device_compute is not None:
            data["device_compute"] = self.device_compute.to_json(include_samples)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LatencyStats:
        """Rebuild from `to_json` output; recomputes from the samples when they are present."""
        device = data.get("device_compute")
        device_stats = cls.from_json(device) if device else None
        if data.get("samples_ms"):
            return cls.from_samples(data["samples_ms"], int(data.get("batch", 1)), device_stats)
        keys = ("min_ms", "mean_ms", "median_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "std_ms")
        return cls(
            **{key: float(data[key]) for key in keys},
            throughput_per_s=float(data["throughput_per_s"]),
            iterations=int(data["iterations"]),
            batch=int(data.get("batch", 1)),
            samples_ms=(),
            device_compute=device_stats,
        )


def measure(
    infer: Callable[[], object],
    protocol: ProtocolFields,
    sync: Callable[[], None] | None = None,
    timer: Timer = time.perf_counter,
    batch: int = 1,
    device_time_ms: Callable[[], float] | None = None,
) -> LatencyStats:
    """Time `infer` under `protocol` (anything with the four ProtocolSettings attributes).

    Warm-up runs until both its time and count are reached; the timed window likewise. Each timed
    sample is `timer()` around `infer(); sync()`. `device_time_ms`, when given, is read after each
    timed iteration (e.g. CUDA-event elapsed time) and summarized as `device_compute`.
    """
    settings = ProtocolSettings.from_protocol(protocol)
    done = sync if sync is not None else _no_sync
    _run_warmup(infer, done, settings, timer)
    samples_ms: list[float] = []
    device_ms: list[float] = []
    window_start = timer()
    while True:
        start = timer()
        infer()
        done()
        stop = timer()
        samples_ms.append((stop - start) * 1000.0)
        if device_time_ms is not None:
            device_ms.append(float(device_time_ms()))
        elapsed_ms = (stop - window_start) * 1000.0
        if elapsed_ms >= settings.duration_ms and len(samples_ms) >= settings.min_iterations:
            break
    device_stats = LatencyStats.from_samples(device_ms, batch) if device_ms else None
    return LatencyStats.from_samples(samples_ms, batch, device_stats)


@dataclass(frozen=True)
class TimedWindow:
    """One timed window: its statistics and the machine's load while it ran (None: not watched)."""

    stats: LatencyStats
    load: dict[str, Any] | None = None

    def to_json(self, include_samples: bool = False) -> dict[str, Any]:
        """The statistics' JSON plus a "load" key."""
        return {**self.stats.to_json(include_samples), "load": self.load}


def measure_windows(
    infer: Callable[[], object],
    protocol: ProtocolFields,
    windows: int,
    sync: Callable[[], None] | None = None,
    batch: int = 1,
    device_time_ms: Callable[[], float] | None = None,
    watch_load: Callable[[], Callable[[], dict[str, Any]]] | None = None,
    timer: Timer = time.perf_counter,
) -> list[TimedWindow]:
    """Time `windows` back-to-back runs of the protocol (see `measure`), each with its load.

    `watch_load()` is called just before each window and the function it returns just after (e.g.
    `environment.watch_load`), so the load is read outside the timed samples.
    """
    timed = []
    for _ in range(max(1, int(windows))):
        stop = watch_load() if watch_load is not None else None
        stats = measure(infer, protocol, sync=sync, timer=timer, batch=batch, device_time_ms=device_time_ms)
        timed.append(TimedWindow(stats, stop() if stop is not None else None))
    return timed


def quietest_index(medians_ms: Sequence[float]) -> int:
    """Index of the quietest window: the lowest median (the earliest on a tie)."""
    if not medians_ms:
        raise ValueError("no windows to choose from")
    return min(range(len(medians_ms)), key=lambda index: (medians_ms[index], index))


def spread_percent(medians_ms: Sequence[float]) -> float:
    """How far the slowest window's median is above the quietest one's, in percent (0 for one)."""
    lowest = min(medians_ms)
    return 100.0 * (max(medians_ms) - lowest) / lowest if lowest > 0 else 0.0


def round_order(names: Sequence[str], round_index: int) -> list[str]:
    """The order `names` are timed in round `round_index`: rotated by one each round, so no model
    always runs first (right after a process start) or always after the same neighbour."""
    if not names:
        return []
    shift = round_index % len(names)
    return [*names[shift:], *names[:shift]]


def _no_sync() -> None:
    return None


def _run_warmup(
    infer: Callable[[], object], sync: Callable[[], None], settings: ProtocolSettings, timer: Timer
) -> int:
    # The protocol's warm-up, then on until steady (see `is_steady`), for at most
    # STEADY_MAX_EXTRA x the warm-up time (at least STEADY_MIN_EXTRA_MS).
    samples_ms: list[float] = []
    start = timer()
    while len(samples_ms) < settings.warmup_iterations or (timer() - start) * 1000.0 < settings.warmup_ms:
        samples_ms.append(_timed(infer, sync, timer))
    limit_ms = (timer() - start) * 1000.0 * (1.0 + STEADY_MAX_EXTRA) + STEADY_MIN_EXTRA_MS
    while not is_steady(samples_ms) and (timer() - start) * 1000.0 < limit_ms:
        samples_ms.append(_timed(infer, sync, timer))
    return len(samples_ms)


def _timed(infer: Callable[[], object], sync: Callable[[], None], timer: Timer) -> float:
    begin = timer()
    infer()
    sync()
    return (timer() - begin) * 1000.0


def is_steady(samples_ms: Sequence[float]) -> bool:
    """Whether a warm-up has settled: the median of its last block of iterations (a quarter of
    them, at least STEADY_BLOCK) is within STEADY_TOLERANCE of the block's before it. Fewer than
    two blocks are not judged (the protocol asked for a short warm-up: it gets that)."""
    block = max(STEADY_BLOCK, len(samples_ms) // 4)
    if len(samples_ms) < 2 * block:
        return len(samples_ms) < 2 * STEADY_BLOCK
    before = float(np.median(samples_ms[-2 * block:-block]))
    last = float(np.median(samples_ms[-block:]))
    return abs(last - before) <= STEADY_TOLERANCE * before


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB (VmHWM, else getrusage); 0.0 if unreadable."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # reported in kB
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows has no resource module
        return 0.0
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in bytes on macOS, kilobytes on Linux and the BSDs.
    return max_rss / (1024.0 * 1024.0) if sys.platform == "darwin" else max_rss / 1024.0


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0); True when it worked.

    Lets a long-lived process measure the peak of one model's load + inference rather than of
    everything it did before.
    """
    try:
        with open(f"/proc/{os.getpid()}/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False
