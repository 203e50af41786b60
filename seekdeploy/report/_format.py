"""Shared cell formatting and row building for the Markdown, HTML and terminal renderings."""

from __future__ import annotations

from typing import Any

SUMMARY_COLUMNS = ("role", "spec", "params", "FLOPs", "top-1", "p50 (ms)", "p95 (ms)", "budget", "verdict")


def fmt_count(value: float | None) -> str:
    """1234567 -> '1.23 M'."""
    if value is None:
        return "-"
    for scale, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.0f}"


def fmt_ms(value: float | None) -> str:
    """Three significant figures below 100 ms, whole milliseconds above."""
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def fmt_flop(value: float) -> str:
    """Compute in the largest unit that keeps the number >= 1: '3.04 TFLOP'."""
    for scale, unit in ((1e15, "PFLOP"), (1e12, "TFLOP"), (1e9, "GFLOP"), (1e6, "MFLOP")):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.0f} FLOP"


def fmt_mib(value: float) -> str:
    """Memory in MiB, or KiB when under 1 MiB so small models do not read as 0.01 MiB."""
    return f"{value * 1024:.1f} KiB" if value < 1 else f"{value:.1f} MiB"


def fmt_pct(value: float | None, digits: int = 1) -> str:
    """0.9123 -> '91.2%'."""
    return "-" if value is None else f"{100 * value:.{digits}f}%"


def fmt_budget(budget: dict[str, Any] | None, latency_only: bool = False) -> str:
    """'p95 ≤ 5 ms, mem ≤ 512 MiB' from a report budget (only the latency part if asked)."""
    if not budget or budget.get("latency_ms") is None:
        return "-"
    parts = [f"p{budget['latency_percentile']:g} ≤ {fmt_ms(budget['latency_ms'])} ms"]
    if latency_only:
        return parts[0]
    if budget.get("peak_memory_mib") is not None:
        parts.append(f"mem ≤ {budget['peak_memory_mib']:g} MiB")
    if budget.get("file_size_mib") is not None:
        parts.append(f"size ≤ {budget['file_size_mib']:g} MiB")
    if budget.get("min_accuracy") is not None:
        parts.append(f"top-1 ≥ {fmt_pct(budget['min_accuracy'], 0)}")
    return ", ".join(parts)


def summary_rows(roles: list[dict[str, Any]], compact: bool = False) -> list[list[str]]:
    """One row of SUMMARY_COLUMNS per role (`compact`: latency budget only, for terminals)."""
    rows = []
    for role in roles:
        latency = role.get("latency") or {}
        rows.append([role["role"], role.get("spec") or "-", fmt_count(role.get("params")),
                     fmt_count(role.get("flops")), fmt_pct(role["accuracy"]["test_top1"]),
                     fmt_ms(latency.get("p50_ms")), fmt_ms(latency.get("p95_ms")),
                     fmt_budget(role.get("budget"), compact), role["verdict"]])
    return rows


def cascade_rows(cascade: dict[str, Any]) -> list[list[str]]:
    """Every 0.1 of threshold, the all-motivated end and the chosen point, as table rows."""
    chosen = (cascade.get("chosen") or {}).get("threshold")
    rows = []
    for point in cascade["points"]:
        t = point["threshold"]
        if abs(t * 10 - round(t * 10)) > 1e-9 and t != chosen and t <= 1.0:
            continue
        label = f"{t:.2f}" + (" (all motivated)" if t > 1 else "") + (" ← chosen" if t == chosen else "")
        rows.append([label, fmt_pct(point["deferred_fraction"]), fmt_ms(point["expected_latency_ms"]),
                     fmt_ms(point["tail_latency_ms"]), fmt_pct(point["accuracy"], 2)])
    return rows


CASCADE_COLUMNS = ("threshold", "to motivated", "expected latency (ms)", "tail latency (ms)", "top-1")


def cascade_splits_line(cascade: dict[str, Any]) -> str:
    """Which split chose the threshold and which one the table measures."""
    if cascade.get("threshold_split") == "validation":
        return (f"The threshold is chosen on the validation split ({cascade.get('n_validation_images')} images); "
                f"the table and the top-1 are measured on the test split ({cascade['n_images']} images), "
                "which had no say in the choice.")
    return (f"The threshold is chosen and measured on the same test split ({cascade['n_images']} images): "
            "the run has no validation split, so the cascade's top-1 is flattered.")


def disagreement_clause(split: dict[str, Any]) -> str:
    """How many test images each model alone gets right, and whether that split could be chance."""
    b, c, p_value = split["base_only_right"], split["motivated_only_right"], split["p_value"]
    verdict = "could be chance" if p_value >= 0.05 else "unlikely to be chance"
    return (f"of {split['n_images']} test images, {c} are right only under the motivated model and {b} "
            f"only under the base ({verdict}: exact McNemar p = {p_value:.2g})")


def accuracy_sentence(pair: dict[str, Any]) -> str | None:
    """"<gain> points of test top-1 over the base; of N test images, ...", or None where the
    report has no test top-1 of both models."""
    if pair.get("accuracy_gain_pts") is None:
        return None
    split = pair.get("test_disagreement")
    return (f"{pair['accuracy_gain_pts']:+.1f} points of test top-1 over the base"
            + (f"; {disagreement_clause(split)}." if split else "."))


def pair_lines(document: dict[str, Any]) -> list[str]:
    """Plain-text sentences about the pair (latency ratio, accuracy gain, memory, predictions)."""
    pair = document["pair"]
    lines = []
    if pair.get("latency_ratio") is not None:
        lines.append(f"The motivated model is {pair['latency_ratio']:.2f}× the base's latency "
                     f"({pair['latency_statistic']}, same device).")
    if sentence := accuracy_sentence(pair):
        lines.append(f"It is {sentence}")
    memory = pair["memory_both"]
    if memory["value_mib"] is not None:
        lines.append(f"Keeping both loaded: {fmt_mib(memory['value_mib'])} ({memory['method']}: "
                     f"{memory['detail']}).")
    for entry in pair.get("predicted_vs_measured") or []:
        measured = entry["measured_ms"]
        lines.append(f"{entry['role']}: predicted {fmt_ms(entry['predicted_ms'])} ms, measured "
                     f"{fmt_ms(measured)} ms" + (f" ({measured / entry['predicted_ms']:.2f}× the prediction)"
                                                  if measured and entry['predicted_ms'] else "") + ".")
    return lines


def training_lines(document: dict[str, Any]) -> list[str]:
    """Plain-text sentences about the training run and its cost."""
    training, run = document["training"], document["run"]
    distill = run.get("distill_weight") or 0.0
    lines = [f"{run.get('epochs')} epochs of {run.get('family')} on {run.get('dataset')}, condition "
             f"{run.get('condition')}, motivated batches {run.get('motivated_step', 'alone')}"
             + (f" with distillation (weight {distill:g})" if distill else "")
             + f", BatchNorm {run.get('bn')}, seed {run.get('seed')}."]
    if training.get("motivated_fraction") is not None:
        lines.append(f"{training['motivated_batches']} of {training['steps']} steps were motivated "
                     f"({fmt_pct(training['motivated_fraction'])}).")
    costs = training.get("costs") or {}
    if costs.get("cost_ratio") is not None:
        lines.append(f"Training cost {fmt_flop(costs['train_flops'])} = {costs['cost_ratio']:.2f}× training "
                     f"the motivated model alone ({fmt_flop(costs['standalone_motivated_train_flops'])}), "
                     "counting every pass the pair paid.")
    parts = {part: flops for part, flops in (costs.get("cost_flops_by_part") or {}).items() if flops}
    if parts and costs.get("train_flops"):
        lines.append("Of that: " + ", ".join(
            f"{part.replace('_', ' ')} {flops / costs['train_flops']:.0%}"
            for part, flops in parts.items()) + ".")
    if training.get("seconds") is not None:
        lines.append(f"Wall time {training['seconds']:.1f} s.")
    return lines
