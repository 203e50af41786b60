"""The report.json schema (JSON Schema draft 2020-12), shipped as Python so it is always packaged.

`schema_version` changes only when a field is removed or changes meaning; adding optional fields
keeps the version. `validate_report` uses `jsonschema` when it is importable (the dev extra) and
otherwise checks the top-level layout only, so writing a report never needs it.
"""

from __future__ import annotations

from typing import Any

from seekdeploy import layout
from seekdeploy.roles import ROLE_NAMES

SCHEMA_VERSION = 1

_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_STR_OR_NULL = {"type": ["string", "null"]}

_LATENCY = {
    "type": ["object", "null"],
    "required": ["runtime", "p50_ms", "p95_ms", "mean_ms", "at_budget_percentile_ms"],
    "properties": {"runtime": {"type": "string"}, "p50_ms": _NUM, "p95_ms": _NUM, "p99_ms": _NUM,
                   "mean_ms": _NUM, "std_ms": _NUM, "iterations": {"type": "integer"},
                   "batch": {"type": "integer"}, "at_budget_percentile_ms": _NUM},
}
_BUDGET = {
    "type": ["object", "null"],
    "required": ["latency_ms", "latency_percentile"],
    "properties": {"latency_ms": _NUM, "latency_percentile": _NUM, "peak_memory_mib": _NUM_OR_NULL,
                   "file_size_mib": _NUM_OR_NULL, "min_accuracy": _NUM_OR_NULL,
                   "source": {"type": "string"}},
}
_ROLE = {
    "type": "object",
    "required": ["role", "spec", "params", "flops", "accuracy", "latency", "budget", "verdict",
                 "checks", "predicted_latency_ms"],
    "properties": {
        "role": {"enum": list(ROLE_NAMES)}, "spec": _STR_OR_NULL,
        "params": {"type": ["integer", "null"]}, "flops": _NUM_OR_NULL, "cost_source": _STR_OR_NULL,
        "accuracy": {"type": "object", "required": ["test_top1", "source"],
                     "properties": {"test_top1": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                                    "source": {"type": "string"}}},
        "latency": _LATENCY, "budget": _BUDGET,
        "peak_memory_mib": _NUM_OR_NULL, "file_size_mib": _NUM_OR_NULL,
        "verdict": {"enum": ["PASS", "FAIL", "NOT MEASURED", "NO BUDGET"]},
        "checks": {"type": "array", "items": {"type": "object", "required": ["check", "outcome"]}},
        "predicted_latency_ms": _NUM_OR_NULL,
    },
}
_POINT = {
    "type": "object",
    "required": ["threshold", "deferred_fraction", "expected_latency_ms", "tail_latency_ms", "accuracy"],
    "properties": {"threshold": _NUM, "deferred_fraction": {"type": "number", "minimum": 0, "maximum": 1},
                   "expected_latency_ms": _NUM, "tail_latency_ms": _NUM,
                   "accuracy": {"type": "number", "minimum": 0, "maximum": 1}},
}
_CASCADE = {
    "type": ["object", "null"],
    "required": ["latency_statistic", "n_images", "threshold_split", "measured_split", "base_latency_ms",
                 "motivated_latency_ms", "points", "budget_ms", "chosen", "summary"],
    "properties": {"latency_statistic": {"enum": ["mean", "p50", "p90", "p95", "p99"]},
                   "n_images": {"type": "integer", "minimum": 1},
                   "n_validation_images": {"type": "integer", "minimum": 0},
                   # The split whose predictions chose the threshold, and the one `points`/`chosen` measure.
                   "threshold_split": {"enum": ["validation", "test"]}, "measured_split": {"const": "test"},
                   "base_latency_ms": _NUM,
                   "motivated_latency_ms": _NUM, "points": {"type": "array", "items": _POINT, "minItems": 2},
                   "budget_ms": _NUM_OR_NULL, "chosen": {"oneOf": [_POINT, {"type": "null"}]},
                   "chosen_on_validation": {"oneOf": [_POINT, {"type": "null"}]},
                   "summary": {"type": "string"}, "predictions_source": {"type": "string"}},
}
_PAIR = {
    "type": "object",
    "required": ["memory_both", "latency_ratio", "accuracy_gain_pts"],
    "properties": {
        "memory_both": {"type": "object", "required": ["value_mib", "method", "detail"],
                        "properties": {"value_mib": _NUM_OR_NULL,
                                       "method": {"enum": ["measured", "estimated", "unavailable"]},
                                       "detail": {"type": "string"}}},
        "latency_ratio": _NUM_OR_NULL, "accuracy_gain_pts": _NUM_OR_NULL,
        # Test images exactly one model gets right, and the exact McNemar p-value of that split.
        "test_disagreement": {"oneOf": [{"type": "null"}, {
            "type": "object", "required": ["n_images", "base_only_right", "motivated_only_right", "p_value"],
            "properties": {"n_images": {"type": "integer", "minimum": 1},
                           "base_only_right": {"type": "integer", "minimum": 0},
                           "motivated_only_right": {"type": "integer", "minimum": 0},
                           "p_value": {"type": "number", "minimum": 0, "maximum": 1}}}]},
        "predicted_vs_measured": {"type": "array"},
    },
}
_TRAINING = {
    "type": "object",
    "required": ["epochs", "steps", "motivated_batches", "motivated_fraction", "costs", "seconds"],
    "properties": {"epochs": {"type": "array", "items": {"type": "object", "required": ["epoch", "role"]}},
                   "steps": {"type": ["integer", "null"]}, "motivated_batches": {"type": ["integer", "null"]},
                   "motivated_fraction": _NUM_OR_NULL, "costs": {"type": "object"}, "seconds": _NUM_OR_NULL},
}

REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "seekdeploy report",
    "type": "object",
    "required": ["schema_version", "kind", "created_utc", "run", "export", "profile", "roles",
                 "pair", "cascade", "training", "plots", "notes"],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "kind": {"const": layout.REPORT_KIND},
        "created_utc": {"type": "string"},
        "run": {"type": "object", "required": ["name", "dir", "family", "dataset", "specs"]},
        "export": {"type": "object", "required": ["dir", "present"],
                   "properties": {"dir": _STR_OR_NULL, "present": {"type": "boolean"}}},
        "profile": {"type": "object", "required": ["name", "source"]},
        "roles": {"type": "array", "items": _ROLE, "minItems": 2, "maxItems": 2},
        "pair": _PAIR,
        "cascade": _CASCADE,
        "training": _TRAINING,
        "plots": {"type": "array", "items": {"type": "object", "required": ["name", "title", "file"]}},
        "notes": {"type": "array", "items": {"type": "string"}},
    },
}


def validate_report(document: Any) -> list[str]:
    """Problems that make `document` not a valid report.json; empty when it is valid."""
    try:
        import jsonschema
    except ImportError:
        if not isinstance(document, dict):
            return ["a report must be a JSON object"]
        missing = [key for key in REPORT_SCHEMA["required"] if key not in document]
        return [f"missing key {key!r}" for key in missing]
    validator = jsonschema.Draft202012Validator(REPORT_SCHEMA)
    return [f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
            for error in validator.iter_errors(document)]
