"""`seekdeploy report RUN`: report.json, report.md and a self-contained report.html with plots.

Imports only click at module level; the report package (numpy, matplotlib, onnxruntime, torch)
loads inside the command.
"""

from __future__ import annotations

from pathlib import Path

import click

from seekdeploy.errors import BudgetViolation

BUDGET_EXIT_CODE = BudgetViolation.exit_code

@click.command("report")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--exports", "export_dir", type=click.Path(path_type=Path), default=None,
              help="Export folder of the run [exports/<run> beside runs/].")
@click.option("--profile", "profile_name", default=None,
              help="Hardware profile (name or YAML path) whose budgets to check against "
                   "[the budgets recorded in the export's profile.json].")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder to write the report into [the run folder].")
@click.option("--latency", "latency_statistic", type=click.Choice(["mean", "p50", "p90", "p95", "p99"]),
              default="mean", show_default=True,
              help="Per-image latency statistic used for the cascade's expected latency.")
@click.option("--device", default=None,
              help="With several profiled devices (profile.<host>.json), the one to report [the newest].")
def report(run: Path, export_dir: Path | None, profile_name: str | None, out: Path | None,
           latency_statistic: str, device: str | None) -> None:
    """Write report.json, report.md and report.html for a training RUN (runs/<name>).

    \b
    The report puts the pair side by side on one device: size, accuracy of the exported models,
    latency against each budget, the memory of keeping both loaded, a base->motivated cascade over
    confidence thresholds, training curves and the training cost against the motivated model alone.
    """
    from rich.console import Console

    from seekdeploy.report import build_report, print_summary_table
    from seekdeploy.report.document import write_built_report

    console = Console()
    built = build_report(run, export_dir, profile_name, latency_statistic=latency_statistic, device=device)
    html_path = write_built_report(built, out if out is not None else run)
    print_summary_table(built.document, console)
    for note in built.document["notes"]:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    console.print(f"report written: {html_path} (and report.json, report.md beside it)", highlight=False)
    failed = [role["role"] for role in built.document["roles"] if role["verdict"] == "FAIL"]
    if failed:
        # Same contract as `seekdeploy profile`: a violated budget exits 3, after the report is written.
        console.print(f"FAILED: {', '.join(failed)} over budget", style="bold red")
        click.get_current_context().exit(BUDGET_EXIT_CODE)
    console.print("PASSED: report written", style="bold green")
