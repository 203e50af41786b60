"""report.html: one self-contained page (inline CSS, plots as base64 PNG data URIs, no URL of any
kind), so it opens offline and can be mailed or archived as a single file."""

from __future__ import annotations

import base64
import html
from typing import Any

from seekdeploy.report._format import (
    CASCADE_COLUMNS, SUMMARY_COLUMNS, cascade_rows, cascade_splits_line, pair_lines, summary_rows,
    training_lines,
)  # fmt: skip

_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 2rem auto;
       max-width: 1100px; padding: 0 1rem; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; }
.meta { color: #555; } table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.92rem; }
th, td { border: 1px solid #ddd; padding: 0.3rem 0.6rem; text-align: right; }
th { background: #f3f3f5; } td:first-child, th:first-child { text-align: left; }
td.text, th.text { text-align: left; }
.PASS { color: #0a7a2f; font-weight: 700; } .FAIL { color: #b00020; font-weight: 700; }
.NOT.MEASURED, .NO.BUDGET { color: #777; } .chosen { background: #eaf6ea; font-weight: 600; }
.summary { font-size: 1.05rem; padding: 0.6rem 0.8rem; background: #f6f8fa; border-left: 4px solid #2ca02c; }
figure { margin: 1.2rem 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9rem; } .notes li { color: #7a4b00; }
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


_TEXT_COLUMNS = ("spec", "budget")


def _table(columns: tuple[str, ...], rows: list[list[str]], verdict_column: int | None = None) -> str:
    text = [column in _TEXT_COLUMNS for column in columns]
    head = "".join(f'<th class="text">{_esc(c)}</th>' if t else f"<th>{_esc(c)}</th>"
                   for c, t in zip(columns, text))
    body = []
    for row in rows:
        cells = []
        for index, cell in enumerate(row):
            css = f' class="{_esc(cell)}"' if index == verdict_column else (' class="text"' if text[index] else "")
            cells.append(f"<td{css}>{_esc(cell)}</td>")
        chosen = ' class="chosen"' if "chosen" in row[0] else ""
        body.append(f"<tr{chosen}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _list(lines: list[str], css: str = "") -> str:
    items = "".join(f"<li>{_esc(line)}</li>" for line in lines)
    return f'<ul class="{css}">{items}</ul>' if css else f"<ul>{items}</ul>"


def _figures(document: dict[str, Any], plots: dict[str, bytes]) -> str:
    parts = []
    for plot in document["plots"]:
        data = base64.b64encode(plots[plot["name"]]).decode("ascii")
        parts.append(f'<figure><img alt="{_esc(plot["title"])}" src="data:image/png;base64,{data}">'
                     f"<figcaption>{_esc(plot['title'])}</figcaption></figure>")
    return "".join(parts)


def _cascade_section(cascade: dict[str, Any] | None) -> str:
    if not cascade:
        return "<p>Not computed (see the notes below).</p>"
    budget = "-" if cascade["budget_ms"] is None else f"{cascade['budget_ms']:.3g} ms"
    intro = (f"Run the base on every image; hand the image to the motivated model when the base's "
             f"top-1 softmax confidence is below the threshold. Per-image latencies are each model's "
             f"measured {cascade['latency_statistic']} (base {cascade['base_latency_ms']:.3g} ms, "
             f"motivated {cascade['motivated_latency_ms']:.3g} ms); expected latency = base + "
             f"P(confidence &lt; t) × motivated; tail latency is the per-image latency at the budget's "
             f"percentile. Accuracy from the exported models' predictions on {cascade['n_images']} "
             f"test images. Motivated budget: {budget}. {_esc(cascade_splits_line(cascade))}")
    return (f"<p>{intro}</p><p class=\"summary\">{_esc(cascade['summary'])}</p>"
            + _table(CASCADE_COLUMNS, cascade_rows(cascade)))


def render_html(document: dict[str, Any], plots: dict[str, bytes]) -> str:
    """The self-contained HTML report of a report.json document and its PNG figures."""
    run, profile = document["run"], document["profile"]
    roles = document["roles"]
    overall = "PASS" if all(r["verdict"] == "PASS" for r in roles) else (
        "FAIL" if any(r["verdict"] == "FAIL" for r in roles) else "NOT MEASURED")
    sources = [f"{r['role']} top-1 from: {r['accuracy']['source']}" for r in roles]
    notes = f"<h2>Notes</h2>{_list(document['notes'], 'notes')}" if document["notes"] else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>seekdeploy report: {_esc(run['name'])}</title><style>{_CSS}</style></head><body>
<h1>seekdeploy report: {_esc(run['name'])} <span class="{_esc(overall)}">{_esc(overall)}</span></h1>
<p class="meta">{_esc(run.get('family'))} on {_esc(run.get('dataset'))} · base {_esc(run['specs'].get('base'))}
· motivated {_esc(run['specs'].get('motivated'))} · profile <b>{_esc(profile.get('name') or 'none')}</b>
({_esc(', '.join(profile.get('runtimes') or []) or 'not measured')}) · {_esc(document['created_utc'])}</p>
<h2>Verdict per role</h2>{_table(SUMMARY_COLUMNS, summary_rows(roles), verdict_column=8)}{_list(sources)}
<h2>The pair</h2>{_list(pair_lines(document))}
<h2>Cascade: base first, motivated when the base is unsure</h2>{_cascade_section(document.get('cascade'))}
{_deployed_cascade(document.get('deployed_cascade'))}{_cpu_section(document.get('cpu_precisions'))}<h2>Training</h2>{_list(training_lines(document))}
<h2>Plots</h2>{_figures(document, plots)}
{notes}
</body></html>
"""


def _deployed_cascade(section: dict[str, Any] | None) -> str:
    # cascade.onnx measured beside each model alone, and its threshold frontier (absent without one).
    if not section:
        return ""
    from seekdeploy.report.cascade_model import COLUMNS, FRONTIER_COLUMNS, frontier_rows, summary_lines

    frontier = _table(FRONTIER_COLUMNS, frontier_rows(section)) if section["frontier"] else ""
    return (f"<h2>The deployed cascade (cascade.onnx)</h2>{_table(COLUMNS, section['rows'])}"
            f"{_list(summary_lines(section))}{frontier}\n")


def _cpu_section(section: dict[str, Any] | None) -> str:
    # fp32 vs INT8 and ONNX Runtime vs OpenVINO per role (absent without an INT8 or OpenVINO figure).
    if not section:
        return ""
    from seekdeploy.report.cpu_precisions import COLUMNS, cpu_rows

    sources = ", ".join(section["latency_sources"]) or "none (profile the files)"
    return (f"<h2>CPU: fp32 vs INT8, ONNX Runtime vs OpenVINO</h2>{_table(COLUMNS, cpu_rows(section))}"
            f"<p class=\"meta\">Latency from: {_esc(sources)}</p>\n")
