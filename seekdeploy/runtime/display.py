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
    """Print the table, one verdict line per role and the closing line; True when all passed."""
    runtimes = sorted({result["runtime"] for result in results})
    console.print(render_latency_table(results, f"{title} · {', '.join(runtimes)}"))
    for result in results:
        repeats = result.get("repeats") or []
        if len(repeats) > 1:
            medians = ", ".join(_num(r["median_ms"]) for r in repeats)
            console.print(f"{result.get('role') or '-'}: p50 per repeat (ms): {medians}")
    for verdict in verdicts:
        style = "green" if verdict.passed else "red"
        console.print(verdict.summary_line(), style=style, markup=False, highlight=False)
    passed = all(verdict.passed for verdict in verdicts)
    console.print("PASSED" if passed else "FAILED", style="bold green" if passed else "bold red")
    return passed
