"""PASS/FAIL of each role's measured figures against its profile `Budget`, with margins.

Checks: latency at the budget's percentile (from the raw samples), peak memory, model file size,
and the accuracy floor when the budget declares one and the manifest carries an accuracy. A check
whose budget is not declared is left out; one whose budget is declared but whose figure was not
measured is SKIP (shown, never a pass or a fail).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import numpy as np

from seekdeploy.profiles.schema import Budget


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

    @property
    def outcome(self) -> Outcome:
        """PASS when within budget (equality passes), FAIL otherwise, SKIP when not measured."""
        if self.measured is None:
            return Outcome.SKIP
        ok = self.measured >= self.budget if self.higher_is_better else self.measured <= self.budget
        return Outcome.PASS if ok else Outcome.FAIL

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
        return (
            f"{self.label} {_fmt(self.measured, self.unit)} {relation} {_fmt(self.budget, self.unit)} "
            f"(margin {_fmt(self.margin, 'pts' if self.unit == '%' else self.unit)}{pct})"
        )

    def to_json(self) -> dict[str, Any]:
        """Plain dict for profile.json."""
        return {
            "check": self.name.value, "label": self.label, "outcome": self.outcome.value,
            "measured": self.measured, "budget": self.budget, "unit": self.unit,
            "margin": self.margin, "margin_pct": self.margin_pct,
        }  # fmt: skip


@dataclass(frozen=True)
class RoleVerdict:
    """All checks of one role; it passes when no check failed."""

    role: str
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        """True when no check is FAIL (SKIPs do not fail a role)."""
        return all(check.outcome is not Outcome.FAIL for check in self.checks)

    def failures(self) -> list[Check]:
        """The failing checks."""
        return [check for check in self.checks if check.outcome is Outcome.FAIL]

    def summary_line(self) -> str:
        """`PASS base  p95 1.23 ms ≤ 5.00 ms (margin 3.77 ms, 75%) · mem … · size …`."""
        status = "PASS" if self.passed else "FAIL"
        details = " · ".join(check.describe() for check in self.checks) or "no budget declared"
        return f"{status} {self.role:<9} {details}"

    def to_json(self) -> dict[str, Any]:
        """Plain dict for profile.json."""
        return {
            "role": self.role,
            "outcome": "PASS" if self.passed else "FAIL",
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
              float(budget.latency_ms), "ms"),
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
    return RoleVerdict(role=role, checks=tuple(checks))


def latency_at(latency: dict[str, Any], percentile: float) -> float:
    """Latency (ms) at `percentile` from a LatencyStats JSON: raw samples, else the stored key."""
    samples = latency.get("samples_ms")
    if samples:
        return float(np.percentile(np.asarray(samples, dtype=np.float64), percentile))
    key = {50.0: "median_ms", 90.0: "p90_ms", 95.0: "p95_ms", 99.0: "p99_ms", 100.0: "max_ms",
           0.0: "min_ms"}.get(float(percentile))  # fmt: skip
    if key is None or key not in latency:
        raise ValueError(f"latency has no raw samples and no summary for p{percentile:g}")
    return float(latency[key])


def _fmt(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "pts":  # accuracy margins are percentage points
        return f"{value:.1f} pts"
    if abs(value) >= 100:
        return f"{value:.0f} {unit}"
    return f"{value:.3g} {unit}" if abs(value) < 1 else f"{value:.2f} {unit}"
