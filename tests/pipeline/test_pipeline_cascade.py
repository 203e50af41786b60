"""The cascade stage of `seekdeploy run` on a real (tiny) export: it builds, proves and times
cascade.onnx, is skipped while current, and runs again when a role file changes."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

from seekdeploy.layout import ExportLayout
from seekdeploy.pipeline.cascade_stage import budget_clause, execute_cascade, is_current_cascade


def test_cascade_stage_builds_times_and_skips_while_current(tiny_export, tiny_profile_file, tmp_path):
    from seekdeploy.profiles.loader import load_profile

    export_dir = tmp_path / "exports" / tiny_export.dir.name
    shutil.copytree(tiny_export.dir, export_dir)
    said = []
    context = SimpleNamespace(run_dir=tiny_export.run, export_dir=export_dir, config=SimpleNamespace(hosts=()),
                              profile=load_profile(str(tiny_profile_file)), say=said.append)
    assert is_current_cascade(context) is None
    detail = execute_cascade(context)
    assert "decisions = the two-file cascade" in detail and "the motivated model's" in detail
    cascade = ExportLayout(export_dir).cascade
    assert cascade.onnx.is_file() and cascade.profile_document.is_file()
    budget = json.loads(cascade.profile_document.read_text())["budget"]
    assert ("the motivated budget" in detail) == bool(budget)
    assert is_current_cascade(context) is not None
    base = ExportLayout(export_dir).role("base").onnx()
    base.write_bytes(base.read_bytes() + b"\0")  # a role file that is not the one the cascade was proven against
    assert is_current_cascade(context) is None


def test_the_stage_line_says_when_the_cascade_misses_the_motivated_budget():
    judged = {"role_budget": "motivated", "latency_ms": 0.85, "percentile": 95.0}
    over = budget_clause({**judged, "measured_ms": 1.063, "passed": False})
    assert over == "; p95 1.063 ms OVER the motivated budget 0.85 ms (an escalated image runs both models)"
    assert budget_clause({**judged, "measured_ms": 0.8, "passed": True}) == (
        "; p95 0.800 ms within the motivated budget 0.85 ms")
    assert budget_clause(None) == ""
