"""PASS/FAIL of each role's measured figures against its profile `Budget`, with margins.

Checks: latency at the budget's percentile (from the raw samples), peak memory, model file size,
and the accuracy floor when the budget declares one and the manifest carries an accuracy. A check
whose budget is not declared is left out; one whose budget is declared but whose figure was not
measured is SKIP (shown, never a pass or a fail).

Latency is judged by the verdict protocol (`runtime.windows`): the budget percentile of the QUIETEST
window (the lowest latency at that percentile) decides PASS or FAIL, and the same percentile is
checked in every window. When the windows disagree -- some within the budget, some over it -- the
check and its role are UNSTABLE ("unstable: PASS in 3 of 5 windows"): the device was too busy for a
clean verdict, and the summary line says so instead of printing a bare PASS or FAIL. A FAIL is also
UNSTABLE when other processes kept the machine busy (`windows.BUSY_OTHERS_CORES`) even in the judged
window and the fastest iteration was within the budget: the failure may be theirs. A PASS on a busy
machine stands, since other work only adds time. `passed` still follows the quietest window, so the
exit code is reproducible.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from seekdeploy.profiles.schema import Budget
from seekdeploy.runtime.windows import BUSY_OTHERS_CORES, latency_at

__all__ = ["Check", "CheckName", "Outcome", "RoleVerdict", "evaluate_role"]


class Outcome(str, enum.Enum):
    """The result of one check."""

    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"


class CheckName(str, enum.Enum):
    """The budgets a role is checked against."""

    LATENCY = "latency"
    MEMORY = "memory"
    SIZE = "size"
    ACCURACY = "accuracy"


@dataclass(frozen=True)
class Check:
    """One measured figure against its budget; margin is positive when there is headroom."""

    name: CheckName
    label: str  # "p95", "mem", "size", "top-1"
    measured: float | None
    budget: float
    unit: str  # "ms", "MiB", "%"
    higher_is_better: bool = False  # accuracy is a floor, the others are ceilings
    window_values: tuple[float, ...] = ()  # the same figure in every timed window (latency only)
    busy_cores: float | None = None  # cores other processes kept busy in the judged window
    best: float | None = None  # the fastest single iteration of any window (latency only)

    @property
    def outcome(self) -> Outcome:
        """PASS when within budget (equality passes), FAIL otherwise, SKIP when not measured."""
        if self.measured is None:
            return Outcome.SKIP
        return Outcome.PASS if self._within(self.measured) else Outcome.FAIL

    @property
    def windows_passed(self) -> int:
        """How many timed windows are within the budget."""
        return sum(self._within(value) for value in self.window_values)

    @property
    def straddles(self) -> bool:
        """Some windows are within the budget and some are not."""
        return 0 < self.windows_passed < len(self.window_values)

    @property
    def failed_while_busy(self) -> bool:
        """It fails, but other processes kept the machine busy even in the judged window and the
        fastest iteration was within the budget: the failure may be theirs. (A pass on a busy
        machine stands, and so does a failure even the fastest iteration shows: other work only
        adds time.)"""
        busy = self.busy_cores is not None and self.busy_cores >= BUSY_OTHERS_CORES
        could_pass = self.best is None or self._within(self.best)
        return busy and could_pass and self.outcome is Outcome.FAIL

    @property
    def unstable(self) -> bool:
        """The windows straddle the budget, or it failed while the machine was busy."""
        return self.straddles or self.failed_while_busy

    def _within(self, value: float) -> bool:
        return value >= self.budget if self.higher_is_better else value <= self.budget

    @property
    def margin(self) -> float | None:
        """Budget minus measured for ceilings, measured minus floor for accuracy."""
        if self.measured is None:
            return None
        return self.measured - self.budget if self.higher_is_better else self.budget - self.measured

    @property
    def margin_pct(self) -> float | None:
        """The margin as a percentage of the budget."""
        if self.margin is None or self.budget == 0:
            return None
        return 100.0 * self.margin / self.budget

    def describe(self) -> str:
        """`p95 1.23 ms ≤ 5.00 ms (margin 3.77 ms, 75%)`."""
        if self.measured is None:
            return f"{self.label} not measured (budget {_fmt(self.budget, self.unit)})"
        passed = self.outcome is Outcome.PASS
        relation = ("≥" if passed else "<") if self.higher_is_better else ("≤" if passed else ">")
        pct = f", {self.margin_pct:.0f}%" if self.margin_pct is not None else ""
        text = (
            f"{self.label} {_fmt(self.measured, self.unit)} {relation} {_fmt(self.budget, self.unit)} "
            f"(margin {_fmt(self.margin, 'pts' if self.unit == '%' else self.unit)}{pct})"
        )
        if self.straddles:
            low, high = min(self.window_values), max(self.window_values)
            text += (f"; unstable: PASS in {self.windows_passed} of {len(self.window_values)} windows "
                     f"({self.label} {_fmt(low, self.unit)} to {_fmt(high, self.unit)})")
        elif self.failed_while_busy:
            text += (f"; unstable: failed while other processes kept {self.busy_cores:.2f} cores busy; "
                     "re-run on a quiet machine")
        return text

    def to_json(self) -> dict[str, Any]:
        """Plain dict for profile.json."""
        return {
            "check": self.name.value, "label": self.label, "outcome": self.outcome.value,
            "measured": self.measured, "budget": self.budget, "unit": self.unit,
            "margin": self.margin, "margin_pct": self.margin_pct,
            "window_values": list(self.window_values), "windows_passed": self.windows_passed,
            "busy_cores": self.busy_cores, "unstable": self.unstable,
        }  # fmt: skip


@dataclass(frozen=True)
class RoleVerdict:
    """All checks of one role; it passes when no check failed."""

    role: str
    checks: tuple[Check, ...]
    windows: int = 1  # timed windows behind the latency figure
    spread_percent: float = 0.0  # slowest window's median over the quietest one's, in percent

    @property
    def passed(self) -> bool:
        """True when no check is FAIL (SKIPs do not fail a role); latency by the quietest window."""
        return all(check.outcome is not Outcome.FAIL for check in self.checks)

    @property
    def unstable(self) -> bool:
        """A check's windows straddle its budget: the device was too busy for a clean verdict."""
        return any(check.unstable for check in self.checks)

    @property
    def status(self) -> str:
        """"UNSTABLE", else "PASS" or "FAIL"."""
        return "UNSTABLE" if self.unstable else "PASS" if self.passed else "FAIL"

    def failures(self) -> list[Check]:
        """The failing checks."""
        return [check for check in self.checks if check.outcome is Outcome.FAIL]

    def summary_line(self) -> str:
        """`PASS base  p95 1.23 ms ≤ 5.00 ms (margin 3.77 ms, 75%) · mem … · size … · quietest of
        5 windows, spread 4%`; UNSTABLE (with the windows' count) when they straddle a budget."""
        details = " · ".join(check.describe() for check in self.checks) or "no budget declared"
        if self.windows > 1 and self.checks:
            details += f" · quietest of {self.windows} windows, spread {self.spread_percent:.0f}%"
        return f"{self.status} {self.role:<9} {details}"

    def to_json(self) -> dict[str, Any]:
        """Plain dict for profile.json."""
        return {
            "role": self.role,
            "outcome": "PASS" if self.passed else "FAIL",  # by the quietest window
            "unstable": self.unstable,
            "windows": self.windows,
            "spread_percent": self.spread_percent,
            "checks": [check.to_json() for check in self.checks],
            "summary": self.summary_line(),
        }


def evaluate_role(
    role: str, result: dict[str, Any], budget: Budget, accuracy: float | None = None
) -> RoleVerdict:
    """Check one model result (the results-JSON dict) against `budget`.

    `accuracy` is the manifest's test top-1 in [0, 1]; it is checked only when the budget declares
    `min_accuracy`.
    """
    percentile = float(budget.latency_percentile)
    checks = [
        Check(CheckName.LATENCY, f"p{percentile:g}", latency_at(result["latency"], percentile),
              float(budget.latency_ms), "ms", window_values=window_latencies(result, percentile),
              busy_cores=judged_window_busy_cores(result), best=fastest_iteration_ms(result)),
    ]  # fmt: skip
    if budget.peak_memory_mib is not None:
        measured = result.get("peak_memory_mib")
        checks.append(Check(CheckName.MEMORY, "mem", measured, float(budget.peak_memory_mib), "MiB"))
    if budget.file_size_mib is not None:
        measured = result.get("file_size_mib")
        checks.append(Check(CheckName.SIZE, "size", measured, float(budget.file_size_mib), "MiB"))
    if budget.min_accuracy is not None:
        measured = None if accuracy is None else 100.0 * float(accuracy)
        floor = 100.0 * float(budget.min_accuracy)
        checks.append(Check(CheckName.ACCURACY, "top-1", measured, floor, "%", higher_is_better=True))
    windows = result.get("windows") or {}
    return RoleVerdict(role=role, checks=tuple(checks), windows=int(windows.get("count", 1)),
                       spread_percent=float(windows.get("spread_percent", 0.0)))


def fastest_iteration_ms(result: dict[str, Any]) -> float | None:
    """The fastest single iteration in any timed window of `result` (ms)."""
    values = [float(window["min_ms"]) for window in result.get("repeats") or [] if "min_ms" in window]
    values += [float(result["latency"]["min_ms"])] if "min_ms" in result.get("latency", {}) else []
    return min(values) if values else None


def judged_window_busy_cores(result: dict[str, Any]) -> float | None:
    """Cores other processes kept busy during the reported (quietest) window, where recorded."""
    windows = result.get("repeats") or []
    index = (result.get("windows") or {}).get("reported", 0 if len(windows) == 1 else None)
    if index is None or not 0 <= index < len(windows):
        return None
    value = (windows[index].get("load") or {}).get("others_busy_cores")
    return None if value is None else float(value)


def window_latencies(result: dict[str, Any], percentile: float) -> tuple[float, ...]:
    """The latency at `percentile` in every timed window of `result` (empty for a single window);
    a window that kept neither raw samples nor that percentile is left out."""
    windows = result.get("repeats") or []
    if len(windows) < 2:
        return ()
    values = []
    for window in windows:
        try:
            values.append(latency_at(window, percentile))
        except (ValueError, KeyError):
            continue
    return tuple(values)


def _fmt(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "pts":  # accuracy margins are percentage points
        return f"{value:.1f} pts"
    if abs(value) >= 100:
        return f"{value:.0f} {unit}"
    return f"{value:.3g} {unit}" if abs(value) < 1 else f"{value:.2f} {unit}"
