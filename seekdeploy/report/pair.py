"""Per-role and pair-level figures: size, accuracy, latency, budget verdicts, memory of both.

Each figure says where it came from (`source` / `method`), because a report mixes measured,
declared and estimated numbers and a reader must be able to tell them apart.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from seekdeploy.plan.report import recorded_latency_ms
from seekdeploy.report.sources import ROLES, ExportFiles, RunFiles, result_for, verdict_for

if TYPE_CHECKING:
    import numpy as np

    from seekdeploy.profiles.schema import HardwareProfile

LATENCY_STATISTICS = ("mean", "p50", "p90", "p95", "p99")
_PREDICTION_KEYS = ("predicted_latency_ms", "prediction")


def latency_of(result: dict[str, Any] | None, statistic: str) -> float | None:
    """One latency statistic (ms) of a model result: "mean" or a percentile "pNN", from raw samples
    where they exist."""
    if result is None:
        return None
    from seekdeploy.runtime.windows import latency_at

    if statistic == "mean":
        return float(result["latency"]["mean_ms"])
    return latency_at(result["latency"], float(statistic.lstrip("p")))


def budget_for(role: str, profile: HardwareProfile | None,
               document: dict[str, Any] | None) -> dict[str, Any] | None:
    """The role's budget: from the hardware profile when given, else from profile.json's checks."""
    if profile is not None:
        from seekdeploy.roles import Role

        if Role(role) not in profile.budgets:
            return None
        budget = profile.budget(role)
        return {"latency_ms": budget.latency_ms, "latency_percentile": budget.latency_percentile,
                "peak_memory_mib": budget.peak_memory_mib, "file_size_mib": budget.file_size_mib,
                "min_accuracy": budget.min_accuracy, "source": f"profile {profile.name}"}
    verdict = verdict_for(document, role)
    if not verdict or not verdict.get("checks"):
        return None
    budget: dict[str, Any] = {"latency_ms": None, "latency_percentile": 95.0, "peak_memory_mib": None,
                              "file_size_mib": None, "min_accuracy": None,
                              "source": f"profile.json ({document.get('profile')})"}
    for check in verdict["checks"]:
        if check["check"] == "latency":
            budget["latency_ms"] = check["budget"]
            budget["latency_percentile"] = float(str(check["label"]).lstrip("p"))
        elif check["check"] == "memory":
            budget["peak_memory_mib"] = check["budget"]
        elif check["check"] == "size":
            budget["file_size_mib"] = check["budget"]
        elif check["check"] == "accuracy":
            budget["min_accuracy"] = check["budget"] / 100.0
    return budget if budget["latency_ms"] is not None else None


def summarize_role(role: str, run: RunFiles, export: ExportFiles | None,
                   document: dict[str, Any] | None, profile: HardwareProfile | None, accuracy: dict[str, Any],
                   cost: dict[str, Any]) -> dict[str, Any]:
    """Everything the report says about one role (see the `roles` items of the report schema);
    `cost` is `role_cost(role, ...)`."""
    result = result_for(document, role)
    budget = budget_for(role, profile, document)
    manifest = (export.manifests.get(role) if export else None) or {}
    percentile = budget["latency_percentile"] if budget else 95.0
    latency = None
    if result is not None:
        stats = result["latency"]
        latency = {"runtime": result["runtime"], "p50_ms": latency_of(result, "p50"),
                   "p95_ms": latency_of(result, "p95"), "p99_ms": latency_of(result, "p99"),
                   "mean_ms": float(stats["mean_ms"]), "std_ms": float(stats["std_ms"]),
                   "iterations": int(stats["iterations"]), "batch": int(result["batch"]),
                   "at_budget_percentile_ms": latency_of(result, f"p{percentile:g}")}
    verdict, checks = _verdict(role, result, budget, profile, document, accuracy.get("test_top1"))
    return {
        "role": role, "spec": (run.manifest.get("specs") or {}).get(role),
        "params": cost.get("params"), "flops": cost.get("flops"), "cost_source": cost.get("source"),
        "accuracy": accuracy, "latency": latency,
        "peak_memory_mib": result.get("peak_memory_mib") if result else None,
        "file_size_mib": result.get("file_size_mib") if result else None,
        "budget": budget, "verdict": verdict, "checks": checks,
        "predicted_latency_ms": find_prediction(role, manifest, run.manifest),
    }


def _verdict(role: str, result: dict[str, Any] | None, budget: dict[str, Any] | None,
             profile: HardwareProfile | None, document: dict[str, Any] | None,
             top1: float | None) -> tuple[str, list[dict[str, Any]]]:
    if result is None:
        return "NOT MEASURED", []
    if budget is None:
        return "NO BUDGET", []
    if profile is not None:  # re-check against the profile asked for (it may differ from profile.json's)
        from seekdeploy.runtime.verdict import evaluate_role

        verdict = evaluate_role(role, result, profile.budget(role), top1).to_json()
    else:
        verdict = verdict_for(document, role) or {"outcome": "NOT MEASURED", "checks": []}
    return verdict["outcome"], list(verdict.get("checks", []))


def role_cost(role: str, run: RunFiles, manifest: dict[str, Any]) -> dict[str, Any]:
    """Params, forward FLOPs, activation and weight bytes of a role: the export manifest's figures
    when it has them, else the analytic estimate from the run's spec."""
    declared = manifest.get("cost") if isinstance(manifest.get("cost"), dict) else manifest
    if isinstance(declared.get("params"), int) and isinstance(declared.get("flops"), (int, float)):
        return {"params": int(declared["params"]), "flops": float(declared["flops"]),
                "activation_bytes": declared.get("activation_bytes"),
                "weight_bytes": declared.get("weight_bytes"), "source": "export manifest"}
    model = run.manifest.get("model") or {}
    spec_json = model.get(f"{role}_spec")
    if not spec_json:
        return {"source": "unknown"}
    from seekdeploy import nn as sd_nn  # torch: only when a cost must be estimated

    cost = sd_nn.estimate_cost(sd_nn.spec_from_json(spec_json), in_channels=int(model["in_channels"]),
                               image_size=int(model["image_size"]), num_classes=int(model["num_classes"]))
    return {"params": cost.params, "flops": float(cost.flops), "activation_bytes": cost.activation_bytes,
            "weight_bytes": cost.weight_bytes("fp32"), "source": "analytic estimate (seekdeploy.nn)"}


def find_prediction(role: str, *manifests: dict[str, Any]) -> float | None:
    """A predicted latency (ms) declared by the planner in a manifest: `plan.<role>.
    predicted_latency_ms` (a `PairPlan.to_json()`), `predicted_latency_ms` as a number or per role,
    or `prediction.latency_ms`; None when no manifest has one."""
    for manifest in manifests:
        planned = ((manifest.get("plan") or {}).get(role) or {}).get("predicted_latency_ms")
        if isinstance(planned, (int, float)) and not isinstance(planned, bool):
            return float(planned)
        for key in _PREDICTION_KEYS:
            value = recorded_latency_ms(manifest.get(key), role)
            if value is not None:
                return value
    return None


def memory_of_both(document: dict[str, Any] | None,
                   costs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Memory of keeping both models loaded in one process, and how it was obtained."""
    results = [result_for(document, role) for role in ROLES]
    peaks = [r.get("peak_memory_mib") if r else None for r in results]
    baselines = [_baseline_mib(r) for r in results]
    if all(p is not None for p in peaks) and all(b is not None for b in baselines):
        baseline = min(baselines)
        return {"value_mib": sum(peaks) - baseline, "method": "measured",
                "detail": f"sum of measured peak memory ({peaks[0]:.1f} + {peaks[1]:.1f} MiB) minus "
                          f"the shared process baseline ({baseline:.1f} MiB)"}
    parts = [costs[role] for role in ROLES]
    if all(p.get("weight_bytes") is not None and p.get("activation_bytes") is not None for p in parts):
        total = sum(p["weight_bytes"] + p["activation_bytes"] for p in parts) / 2**20
        measured = (" (profile.json records no process baseline, so the measured peaks, which each "
                    "include the interpreter, are not added)" if all(p is not None for p in peaks) else "")
        return {"value_mib": total, "method": "estimated",
                "detail": "sum of fp32 weight bytes + activation bytes at batch 1 of both models, "
                          f"no runtime overhead{measured}"}
    return {"value_mib": None, "method": "unavailable", "detail": "no measurement and no cost figures"}


def _baseline_mib(result: dict[str, Any] | None) -> float | None:
    if result is None:
        return None
    for holder in (result, result.get("environment") or {}):
        for key in ("baseline_memory_mib", "baseline_rss_mib"):
            if isinstance(holder.get(key), (int, float)):
                return float(holder[key])
    return None


def disagreement(base_logits: np.ndarray, motivated_logits: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Where the two models' test answers differ, and whether the difference could be chance.

    Only the images exactly one model gets right move the accuracy gap: `base_only_right` (b) and
    `motivated_only_right` (c), so the gap is (c - b) / n. Under "the two are equally accurate"
    each such image is a fair coin, so `p_value` is the exact two-sided McNemar test: the chance
    of a split at least as uneven as b : c among b + c fair coins."""
    base_right = base_logits.argmax(axis=1) == labels
    motivated_right = motivated_logits.argmax(axis=1) == labels
    b = int((base_right & ~motivated_right).sum())
    c = int((motivated_right & ~base_right).sum())
    flips = b + c
    tail = sum(math.comb(flips, k) for k in range(min(b, c) + 1))
    p_value = min(1.0, 2 * tail / 2 ** flips) if flips else 1.0
    return {"n_images": int(labels.size), "base_only_right": b, "motivated_only_right": c,
            "p_value": p_value}
