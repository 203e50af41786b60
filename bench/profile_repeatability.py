"""How repeatable is `seekdeploy profile`? Run the whole command N times and report the spread.

    python bench/profile_repeatability.py exports/<run> --profile x86-cpu --repeats 5 [--threads N]

Each repeat is one `seekdeploy profile` (the library call under it, `profile_local`): every role
timed in `--windows` windows interleaved across the roles, the quietest window reported and judged.
For each role it prints the CV (population std / mean) over the repeats of the p50 the command
reported, beside the CV of the p50 of each repeat's FIRST window -- what a single-window profile
reported before the verdict protocol, measured in the same run under the same load -- and the
verdict of every repeat (PASS, FAIL or UNSTABLE). The machine's load is recorded beside the
figures: the load average and the cores other processes kept busy, per window and over the
whole benchmark. Writes everything as JSON (`--out`, default `<export>/repeatability.json`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from seekdeploy._io import atomic_write_json
from seekdeploy.errors import SeekdeployError
from seekdeploy.measure.profile import DEFAULT_WINDOWS, ProfileSettings, profile_local
from seekdeploy.profiles.loader import load_profile
from seekdeploy.runtime.environment import read_loadavg, watch_load
from seekdeploy.measure.local import cv_percent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("export", type=Path, help="export folder, role folder or .onnx file")
    parser.add_argument("--profile", default="x86-cpu", help="hardware profile (default x86-cpu)")
    parser.add_argument("--repeats", type=int, default=5, help="whole `profile` runs (default 5)")
    parser.add_argument("--windows", type=int, default=DEFAULT_WINDOWS,
                        help=f"timed windows per role in each run (default {DEFAULT_WINDOWS})")
    parser.add_argument("--runtime", default=None, help="runtime to measure with (default: the profile's)")
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads (default: the profile's; 0 = the runtime's default)")
    parser.add_argument("--run", type=Path, default=None, help="training run, for --runtime torch")
    parser.add_argument("--out", type=Path, default=None, help="JSON output (default <export>/repeatability.json)")
    return parser.parse_args(argv)


def profile_once(export: Path, profile: Any, args: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    """One `seekdeploy profile` run; per role the reported and first-window figures and the verdict."""
    settings = ProfileSettings(repeats=args.windows, runtime=args.runtime, threads=args.threads, run_dir=args.run,
                               out=out)
    outcome = profile_local(export, profile, settings)
    rows = []
    for result, verdict in zip(outcome.results, outcome.verdicts):
        windows = result["repeats"]
        load = result["environment"].get("load") or {}
        rows.append({
            "role": result["role"], "runtime": result["runtime"], "status": verdict.status,
            "p50_ms": result["latency"]["median_ms"], "p95_ms": result["latency"]["p95_ms"],
            "first_window_p50_ms": windows[0]["median_ms"], "first_window_p95_ms": windows[0]["p95_ms"],
            "window_p50_ms": [window["median_ms"] for window in windows],
            "window_others_busy_cores": [(window.get("load") or {}).get("others_busy_cores") for window in windows],
            "spread_percent": result["windows"]["spread_percent"],
            "others_busy_cores_max": load.get("others_busy_cores_max"),
            "others_busy_cores_median": load.get("others_busy_cores_median"),
            "loadavg_1m_max": load.get("loadavg_1m_max"),
        })  # fmt: skip
    return rows


def summarize(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per role: CV of the reported p50 and of the first window's p50 over the runs, verdicts."""
    summary = []
    for role in [row["role"] for row in runs[0]]:
        rows = [row for run in runs for row in run if row["role"] == role]
        summary.append({
            "role": role, "runtime": rows[0]["runtime"],
            "cv_reported_p50_percent": round(cv_percent([row["p50_ms"] for row in rows]), 2),
            "cv_first_window_p50_percent": round(cv_percent([row["first_window_p50_ms"] for row in rows]), 2),
            "reported_p50_ms": [row["p50_ms"] for row in rows],
            "first_window_p50_ms": [row["first_window_p50_ms"] for row in rows],
            "verdicts": [row["status"] for row in rows],
            "clean_verdicts_disagree": {"PASS", "FAIL"} <= {row["status"] for row in rows},
            "others_busy_cores_max": max(row["others_busy_cores_max"] or 0.0 for row in rows),
            "others_busy_cores_median_per_run": [row["others_busy_cores_median"] for row in rows],
        })  # fmt: skip
    return summary


def print_table(summary: list[dict[str, Any]], load: dict[str, Any], loadavg: tuple[Any, Any]) -> None:
    """The figures, then the machine's load over the whole benchmark."""
    print(f"{'role':<10} {'runtime':<12} {'CV p50':>7} {'CV 1st':>7}  reported p50 per run (ms) · verdicts")
    for row in summary:
        p50s = " ".join(f"{v:.4f}" for v in row["reported_p50_ms"])
        print(f"{row['role']:<10} {row['runtime']:<12} {row['cv_reported_p50_percent']:>6.2f}% "
              f"{row['cv_first_window_p50_percent']:>6.2f}%  {p50s} · {' '.join(row['verdicts'])}")
        busy = " ".join(f"{v:.2f}" for v in row["others_busy_cores_median_per_run"])
        print(f"{'':<10} other processes' busy cores, median window of each run: {busy}; "
              f"busiest window {row['others_busy_cores_max']:.2f}")
    print(f"load average before/after: {loadavg[0]} / {loadavg[1]}; other processes kept "
          f"{load.get('others_busy_cores', 0):.2f} cores busy on average over the benchmark "
          f"(machine busy {load.get('busy_cores', 0):.2f} of its cores, steal {load.get('steal_percent', 0)}%)")
    for process in load.get("busy_processes") or ():
        print(f"  busy: pid {process['pid']} {process['name']} (nice {process['nice']}) {process['cores']:.2f} cores")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON."""
    args = parse_args(argv)
    loadavg_before, stop = read_loadavg(), watch_load()
    try:
        profile = load_profile(args.profile)
        with tempfile.TemporaryDirectory(prefix="seekdeploy-repeatability-") as folder:
            runs = [profile_once(args.export, profile, args, Path(folder) / f"profile.{index}.json")
                    for index in range(args.repeats)]  # fmt: skip
    except SeekdeployError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    load, loadavg_after = stop(), read_loadavg()
    summary = summarize(runs)
    print_table(summary, load, (loadavg_before, loadavg_after))
    export_dir = args.export if args.export.is_dir() else args.export.parent
    out = args.out or export_dir / "repeatability.json"
    atomic_write_json(out, {"profile": profile.name, "export": str(args.export), "repeats": args.repeats,
                            "windows": args.windows, "threads": args.threads, "summary": summary, "runs": runs,
                            "load": {"loadavg_before": loadavg_before, "loadavg_after": loadavg_after, **load}})
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
