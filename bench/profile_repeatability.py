"""How repeatable is `seekdeploy profile`? Profile one export N times and report the spread.

    python bench/profile_repeatability.py exports/<run> --profile x86-cpu --repeats 5

For each role: p50 of every repeat and the coefficient of variation (CV) of p50 across repeats,
for onnxruntime beside torch eager. Torch eager needs the training run the export came from
(`--run runs/<name>`, default `runs/<run>` beside `exports/`); when it is unavailable the torch
rows are skipped and the reason is printed. Writes the figures as JSON (`--out`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from seekdeploy._io import atomic_write_json
from seekdeploy.errors import SeekdeployError
from seekdeploy.profiles.loader import load_profile
from seekdeploy.runtime.profiling import ProfileRequest, cv_percent, profile_model
from seekdeploy.runtime.targets import ModelTarget, find_targets, load_torch_module
from seekdeploy.runtime.timing import ProtocolSettings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("export", type=Path, help="export folder, role folder or .onnx file")
    parser.add_argument("--profile", default="x86-cpu", help="hardware profile (default x86-cpu)")
    parser.add_argument("--repeats", type=int, default=5, help="profiling repeats (default 5)")
    parser.add_argument("--run", type=Path, default=None, help="training run for torch eager")
    parser.add_argument("--out", type=Path, default=None, help="JSON output (default <export>/repeatability.json)")
    return parser.parse_args(argv)


def measure_runtime(target: ModelTarget, model: Any, runtime: str, profile: Any, repeats: int) -> dict[str, Any]:
    """Profile one role with one runtime `repeats` times; p50 per repeat and its CV."""
    chw = target.input_chw or (profile.input.channels, profile.input.height, profile.input.width)
    request = ProfileRequest(
        model=model, runtime=runtime, input_shape=(profile.input.batch, *chw),
        protocol=ProtocolSettings.from_protocol(profile.measurement), role=target.role,
        providers=tuple(profile.runtime.execution_providers), threads=profile.runtime.threads,
        repeats=repeats,
    )  # fmt: skip
    result = profile_model(request)
    p50s = [r["median_ms"] for r in result["repeats"]]
    return {"role": target.role, "runtime": runtime, "p50_ms": p50s, "cv_percent": cv_percent(p50s),
            "p95_ms": [r["p95_ms"] for r in result["repeats"]]}  # fmt: skip


def torch_model_or_reason(target: ModelTarget, export: Path, run_dir: Path | None) -> tuple[Any, str]:
    """The role's static torch module, or None and why it is unavailable."""
    try:
        return load_torch_module(target, export, run_dir), ""
    except (SeekdeployError, ImportError) as exc:
        return None, str(exc)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON."""
    args = parse_args(argv)
    try:
        profile = load_profile(args.profile)
        rows = []
        for target in find_targets(args.export):
            rows.append(measure_runtime(target, target.model_path, "onnxruntime", profile, args.repeats))
            module, reason = torch_model_or_reason(target, args.export, args.run)
            if module is None:
                print(f"torch eager skipped for {target.role}: {reason}")
                continue
            rows.append(measure_runtime(target, module, "torch", profile, args.repeats))
    except SeekdeployError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(f"{'role':<10} {'runtime':<12} {'CV p50':>7}  p50 per repeat (ms)")
    for row in rows:
        p50s = " ".join(f"{v:.4f}" for v in row["p50_ms"])
        print(f"{row['role']:<10} {row['runtime']:<12} {row['cv_percent']:>6.2f}%  {p50s}")
    export_dir = args.export if args.export.is_dir() else args.export.parent
    out = args.out or export_dir / "repeatability.json"
    atomic_write_json(out, {"profile": profile.name, "export": str(args.export), "repeats": args.repeats, "rows": rows})
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
