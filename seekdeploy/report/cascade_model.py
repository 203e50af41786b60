"""The report's section on the deployed cascade (`exports/<run>/cascade/`): cascade.onnx measured
beside each model alone, and the threshold frontier from the measured path latencies.

Reads the cascade's manifest (threshold, proofs, test top-1, size) and its profile.json (latency
over the test split's images at batch 1, from `seekdeploy profile` or the pipeline's cascade
stage). Absent files give None and the report says so in a note.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seekdeploy._io import read_json_object
from seekdeploy.layout import CASCADE_KIND, CASCADE_ONNX, ExportLayout
from seekdeploy.roles import Role

COLUMNS = ("model", "test top-1", "mean ms", "p50 ms", "p95 ms", "escalation")
FRONTIER_COLUMNS = ("threshold", "escalation", "test top-1", "mean ms (measured paths)")


def deployed_cascade_section(export_dir: Path, notes: list[str]) -> dict[str, Any] | None:
    """The section (manifest figures, measured rows, frontier), or None with a note when absent."""
    cascade = ExportLayout(Path(export_dir)).cascade
    manifest = read_json_object(cascade.manifest)
    if manifest.get("kind") != CASCADE_KIND:
        return None
    timing = read_json_object(cascade.profile_document)
    if timing.get("kind") != CASCADE_KIND:
        notes.append(f"{cascade.onnx} is not timed yet: run `seekdeploy profile {export_dir} --profile P`")
        timing = {}
    from seekdeploy.export.cascade_export import backend_summary_lines

    test = manifest["test"]
    section = {"file": str(cascade.onnx), "threshold": manifest["threshold"], "confidence": manifest["confidence"],
               "threshold_choice": manifest["threshold_choice"], "size": manifest["size"],
               "parity": manifest["parity"]["stored_threshold"],
               "runtimes": [line.strip() for line in backend_summary_lines(manifest)],  # one per backend section
               "test": test, "timing": timing or None}
    section["rows"] = _rows(test, timing)
    section["frontier"] = timing.get("frontier") or []
    return section


def _rows(test: dict[str, Any], timing: dict[str, Any]) -> list[list[str]]:
    def ms(stats: dict[str, Any] | None, key: str) -> str:
        return f"{stats[key]:.3f}" if stats and stats.get("n") else "-"

    alone = timing.get("alone") or {}
    rows = []
    for name, top1, stats, escalation in (
            (f"{Role.BASE} alone", test["base_top1"], alone.get(Role.BASE.value), "0%"),
            (f"{Role.MOTIVATED} alone", test["motivated_top1"], alone.get(Role.MOTIVATED.value), "100%"),
            (CASCADE_ONNX, test["top1"], timing.get("cascade"), f"{test['escalation_rate']:.1%}")):
        rows.append([name, f"{top1:.2%}", ms(stats, "mean_ms"), ms(stats, "p50_ms"), ms(stats, "p95_ms"), escalation])
    return rows


def frontier_rows(section: dict[str, Any]) -> list[list[str]]:
    """Table rows of the threshold frontier."""
    return [[f"{p['threshold']:.2f}", f"{p['escalation_rate']:.1%}", f"{p['top1']:.2%}", f"{p['mean_latency_ms']:.3f}"]
            for p in section["frontier"]]


def summary_lines(section: dict[str, Any]) -> list[str]:
    """Sentences under the table: threshold choice, proof, size, ratios."""
    choice, size, parity = section["threshold_choice"], section["size"], section["parity"]
    lines = [f"threshold {section['threshold']:.4g} ({section['confidence']}), chosen on {choice['n']} validation "
             f"images for {choice['target']}: escalation {choice['escalation_rate']:.1%}, top-1 {choice['top1']:.2%} "
             f"(motivated {choice['motivated_top1']:.2%})",
             f"decisions identical to the two-file cascade on {parity['n']} test images "
             f"({parity['decisions_differing']} differ); logits max |diff| {parity['logits_max_abs']:.2g}",
             "; ".join([f"file {size['cascade_bytes'] / 2**20:.3f} MiB = {size['ratio_to_motivated']:.2f}x the "
                        "motivated model's", *section["runtimes"]])]
    timing = section["timing"]
    if timing:
        ratios = timing["ratios"]
        lines.append(f"measured ({timing['runtime']}, batch 1, {timing['threads']} thread(s), {timing['n_images']} "
                     f"test images): cascade mean / motivated mean {ratios['cascade_mean_over_motivated_mean']:.2f}x"
                     + (f"; stop-at-base p50 / base p50 {ratios['stop_at_base_median_over_base_median']:.2f}x"
                        if ratios["stop_at_base_median_over_base_median"] is not None else ""))
        from seekdeploy.measure.cascade_timing import CASCADE_TIMING_KEY, openvino_line

        if timing.get(CASCADE_TIMING_KEY):  # absent from a profile.json written before OpenVINO was timed
            lines.append(openvino_line(timing[CASCADE_TIMING_KEY]))
    return lines


def markdown_lines(section: dict[str, Any] | None) -> list[str]:
    """The Markdown of the section (nothing when there is no deployed cascade)."""
    if not section:
        return []

    def table(columns: tuple[str, ...], rows: list[list[str]]) -> list[str]:
        return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
                *("| " + " | ".join(row) + " |" for row in rows)]

    lines = ["", "## The deployed cascade (cascade.onnx)", "", *table(COLUMNS, section["rows"]), "",
             *(f"- {line}" for line in summary_lines(section))]
    if section["frontier"]:
        lines += ["", "Threshold frontier (test split, from the measured path latencies):", "",
                  *table(FRONTIER_COLUMNS, frontier_rows(section))]
    return lines
