"""Rich rendering of profile results: one latency table, verdict lines, the closing PASSED/FAILED."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from seekdeploy.runtime.verdict import RoleVerdict


def render_latency_table(results: Sequence[dict[str, Any]], title: str) -> Table:
    """A table with one row per model result (and one per sweep batch size)."""
    # Latencies in ms, memory and file size in MiB; kept narrow enough for an 80-column terminal.
    caption = "latency in ms · peak memory and file size in MiB · img/s = batch / mean"
    table = Table(title=title, title_justify="left", caption=caption, box=box.SIMPLE_HEAD)
    # Fits 80 columns; std, p90, max and the iteration count are in the JSON.
    for column in ("role", "batch", "p50", "p95", "p99", "mean", "img/s", "peak", "size"):
        table.add_column(column, justify="left" if column == "role" else "right", no_wrap=True)
    for result in results:
        role = result.get("role") or "-"
        table.add_row(role, *_latency_cells(result["latency"]),
                      _num(result.get("peak_memory_mib")), _mib(result.get("file_size_mib")))  # fmt: skip
        for entry in result.get("sweep") or ():
            table.add_row(" sweep", *_latency_cells(entry["latency"]), _num(entry.get("peak_memory_mib")), "")
    return table


def _latency_cells(latency: dict[str, Any]) -> list[str]:
    keys = ("median_ms", "p95_ms", "p99_ms", "mean_ms", "throughput_per_s")
    return [str(latency["batch"]), *(_num(latency[key]) for key in keys)]


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _num(value: float | None) -> str:
    """Three significant figures for small values, whole numbers for large ones."""
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def print_report(
    console: Console, results: Sequence[dict[str, Any]], verdicts: Sequence[RoleVerdict], title: str
) -> bool:
    """Print the table, the windows, the machine's load, one verdict line per role and the closing
    line (PASSED, FAILED, or UNSTABLE when windows straddle a budget); True when all passed by the
    quietest-window rule."""
    runtimes = sorted({result["runtime"] for result in results})
    console.print(render_latency_table(results, f"{title} · {', '.join(runtimes)}"))
    for result in results:
        repeats = result.get("repeats") or []
        if len(repeats) > 1:
            medians = " ".join(_num(r["median_ms"]) for r in repeats)
            spread = (result.get("windows") or {}).get("spread_percent")
            tail = f" (spread {spread:.0f}%; the quietest is reported)" if spread is not None else ""
            console.print(f"{result.get('role') or '-'}: p50 per window (ms): {medians}{tail}", highlight=False)
    load_line = describe_load(results)
    if load_line:
        console.print(load_line, highlight=False)
    for verdict in verdicts:
        style = "yellow" if verdict.unstable else "green" if verdict.passed else "red"
        console.print(verdict.summary_line(), style=style, markup=False, highlight=False)
    passed = all(verdict.passed for verdict in verdicts)
    note = unstable_note(verdicts)
    if note:
        console.print(note, style="yellow", highlight=False)
    console.print(closing_line(verdicts), style="bold " + ("yellow" if any(v.unstable for v in verdicts)
                                                             else "green" if passed else "red"))
    return passed


def closing_line(verdicts: Sequence[RoleVerdict]) -> str:
    """`PASSED`, `FAILED`, or `UNSTABLE (the quietest windows PASSED)` when a role's windows
    straddle a budget or it failed on a busy machine (`unstable_note` says which role)."""
    passed = all(verdict.passed for verdict in verdicts)
    if not any(verdict.unstable for verdict in verdicts):
        return "PASSED" if passed else "FAILED"
    return f"UNSTABLE (the quietest windows {'PASSED' if passed else 'FAILED'})"


def unstable_note(verdicts: Sequence[RoleVerdict]) -> str:
    """The line before an UNSTABLE closing line: which roles, and what to do ('' when none)."""
    busy = [v.role for v in verdicts if v.unstable and any(check.failed_while_busy for check in v.checks)]
    straddling = [v.role for v in verdicts if v.unstable and v.role not in busy]
    notes = []
    if straddling:
        notes.append(f"{', '.join(straddling)}: the timed windows disagree with the budget (it lies within "
                     "the spread of this model's windows); a clean verdict needs a budget with more room or a "
                     "device that holds its speed between windows")
    if busy:
        notes.append(f"{', '.join(busy)}: a failure was measured while other processes kept the machine busy; "
                     "re-run on a quieter device for a clean verdict")
    return "; ".join(notes)


def describe_load(results: Sequence[dict[str, Any]]) -> str:
    """One line on how busy the machine was while the windows were timed ('' when not recorded)."""
    loads = [(result.get("environment") or {}).get("load") for result in results]
    loads = [load for load in loads if load]
    if not loads:
        return ""
    busiest = max(loads, key=lambda load: load.get("others_busy_cores_max") or 0.0)
    processes = ", ".join(f"{p['name']} {p['cores']:.2f} (nice {p['nice']})"
                          for p in busiest.get("busy_processes") or ())
    loadavg = busiest.get("loadavg_1m_max")
    state = "busy" if any(load.get("busy") for load in loads) else "quiet"
    return (f"machine {state} while timing: other processes kept up to {busiest['others_busy_cores_max']:.2f} "
            f"cores busy (median window {busiest['others_busy_cores_median']:.2f})"
            + (f", load average {loadavg:.2f}" if loadavg is not None else "")
            + (f"; busiest: {processes}" if processes else ""))
