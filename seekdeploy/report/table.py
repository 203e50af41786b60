"""The terminal summary: one rich table row per role and the closing PASSED/FAILED line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from seekdeploy.report._format import SUMMARY_COLUMNS, accuracy_sentence, summary_rows

if TYPE_CHECKING:
    from rich.console import Console

_STYLE = {"PASS": "bold green", "FAIL": "bold red"}


def print_summary_table(results: dict[str, Any] | Sequence[dict[str, Any]], console: Console,
                        title: str | None = None) -> bool:
    """Print role, params, FLOPs, accuracy, p50/p95 latency, budget and verdict per role.

    `results` is a report.json document (from `build_report(...).document` or the file) or its
    `roles` list. Returns True when no role FAILed.
    """
    from rich import box
    from rich.table import Table

    roles = list(results["roles"] if isinstance(results, dict) else results)
    if title is None and isinstance(results, dict):
        title = f"{results['run']['name']} on {results['profile'].get('name') or 'no profile'}"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  caption="latency in ms; details in report.html", caption_justify="left")
    # The spec is left out: it is long, and the HTML/Markdown reports carry it.
    columns = [column for column in SUMMARY_COLUMNS if column != "spec"]
    for column in columns:
        table.add_column(column.replace(" (ms)", ""), justify="left" if column in ("role", "budget") else "right",
                         no_wrap=True)
    for row in summary_rows(roles, compact=True):
        del row[SUMMARY_COLUMNS.index("spec")]
        table.add_row(*row[:-1], f"[{_STYLE.get(row[-1], 'dim')}]{row[-1]}[/]")
    console.print(table)
    pair = results.get("pair") if isinstance(results, dict) else None
    if pair and (sentence := accuracy_sentence(pair)):
        console.print(f"motivated: {sentence}", highlight=False)
    cascade = results.get("cascade") if isinstance(results, dict) else None
    if cascade:
        console.print(f"cascade: {cascade['summary']}", highlight=False)
    return not any(role["verdict"] == "FAIL" for role in roles)
