"""report.md: the same content as the HTML, as Markdown tables; plots link to plots/*.png."""

from __future__ import annotations

from typing import Any

from seekdeploy.report.cascade_model import markdown_lines
from seekdeploy.report._format import (
    CASCADE_COLUMNS, SUMMARY_COLUMNS, cascade_rows, cascade_splits_line, pair_lines, summary_rows,
    training_lines,
)  # fmt: skip


def _table(columns: tuple[str, ...] | list[str], rows: list[list[str]]) -> list[str]:
    escape = lambda cell: str(cell).replace("|", "\\|")  # noqa: E731 - a one-line cell escaper
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines.extend("| " + " | ".join(escape(cell) for cell in row) + " |" for row in rows)
    return lines


def render_markdown(document: dict[str, Any]) -> str:
    """The Markdown report of a report.json document."""
    run, profile = document["run"], document["profile"]
    lines = [f"# seekdeploy report: {run['name']}", "",
             f"Run `{run['dir']}` · {run.get('family')} on {run.get('dataset')} · "
             f"profile **{profile.get('name') or 'none'}** · created {document['created_utc']}", "",
             "## Verdict per role", ""]
    lines += _table(SUMMARY_COLUMNS, summary_rows(document["roles"]))
    lines += ["", *(f"- {role['role']} top-1 from: {role['accuracy']['source']}" for role in document["roles"])]
    lines += ["", "## The pair", "", *(f"- {line}" for line in pair_lines(document))]
    cascade = document.get("cascade")
    lines += ["", "## Cascade (base first, motivated when the base is unsure)", ""]
    if cascade:
        budget = "-" if cascade["budget_ms"] is None else f"{cascade['budget_ms']:.3g} ms"
        lines += [f"Per-image latencies: {cascade['latency_statistic']} of each model "
                  f"(base {cascade['base_latency_ms']:.3g} ms, motivated {cascade['motivated_latency_ms']:.3g} ms), "
                  f"{cascade['n_images']} test images. Budget: motivated "
                  f"{budget}. {cascade_splits_line(cascade)}", "",
                  f"**{cascade['summary']}**", ""]
        lines += _table(CASCADE_COLUMNS, cascade_rows(cascade))
    else:
        lines.append("Not computed (see notes).")
    lines += markdown_lines(document.get("deployed_cascade"))
    lines += _cpu_lines(document.get("cpu_precisions"))
    lines += ["", "## Training", "", *(f"- {line}" for line in training_lines(document))]
    lines += ["", "## Plots", ""]
    lines += [f"![{plot['title']}]({plot['file']})" for plot in document["plots"]]
    if document["notes"]:
        lines += ["", "## Notes", "", *(f"- {note}" for note in document["notes"])]
    return "\n".join(lines) + "\n"


def _cpu_lines(section: dict[str, Any] | None) -> list[str]:
    # fp32 vs INT8 and ONNX Runtime vs OpenVINO per role (absent without an INT8 or OpenVINO figure).
    if not section:
        return []
    from seekdeploy.report.cpu_precisions import COLUMNS, cpu_rows

    sources = ", ".join(f"`{path}`" for path in section["latency_sources"]) or "none (profile the files)"
    return ["", "## CPU: fp32 vs INT8, ONNX Runtime vs OpenVINO", "", *_table(COLUMNS, cpu_rows(section)),
            "", f"Latency from: {sources}."]
