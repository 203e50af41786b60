"""The cost-accuracy frontier of the motivated fraction, from a pair_vs_baselines summary.

Reads OUT/<family>/<setting>/summary.json (written by bench/pair_vs_baselines.py), takes the
fixed-fraction rows of one step type and ramp (`joint-p0.2`, `joint-p0.3`, ...; with `--ramp 0.4`,
`shielded-p0.4-ramp0.4`, `shielded-p0.6-ramp0.4`, ...), and draws base and motivated test top-1
against the honest training cost (÷ `always`), with the two standalone baselines and the tolerances
the product promises (base ≥ `never` − 0.2 pp, motivated ≥ `always` − 0.5 pp). Writes
frontier[-<step>[-ramp<R>]].{png,md} beside the summary and prints the table. Rows are the means
over each row's seeds, unless `--seed S` takes every point from seed S alone (each Δ paired with
that seed's `never` and `always`), which keeps a frontier of one seed honest when some of its
points have more seeds.

    python bench/pair_frontier.py bench/results/pair_vs_baselines/resnet/e10-n12000-b64-r20
    python bench/pair_frontier.py bench/results/pair_vs_baselines/resnet/e10-n60000-b64-r20 \
        --step shielded --ramp 0.4 --seed 0
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import separate_curve  # bench/ is on the path when this script runs

# Summary row key of a cost axis -> separate_curve's axis name.
CURVE_AXES = {"cost_vs_always": "flops", "cpu_steps_vs_always": "cpu_steps", "cpu_vs_always": "cpu"}

BASE_TOLERANCE_PP = 0.2
MOTIVATED_TOLERANCE_PP = 0.5


def frontier_rows(summary: dict[str, Any], step: str, ramp: float | None = None,
                  seed: int | None = None, variant: str = "") -> list[dict[str, Any]]:
    """The `{step}-p{P}` rows (`{step}-p{P}-ramp{R}` with a ramp; no distillation), sorted by
    fraction; with `seed`, rebuilt from that seed's runs alone."""
    suffix = rf"-ramp{re.escape(f'{ramp:g}')}" if ramp is not None else ""
    pattern = re.compile(rf"^{step}-p([0-9.]+){suffix}{variant}$")
    rows = [dict(row, fraction=float(match.group(1))) for row in summary["rows"]
            if (match := pattern.match(row["condition"])) and row.get("cost_vs_always")]
    if seed is not None:
        rows = [one for row in rows if (one := _one_seed(summary, row, seed)) is not None]
    return sorted(rows, key=lambda row: row["fraction"])


def _one_seed(summary: dict[str, Any], row: dict[str, Any], seed: int) -> dict[str, Any] | None:
    """`row` with every figure taken from seed `seed`'s run (None when that seed, or its `never`
    or `always`, has not run); values as (value, 0.0) pairs like the summary's (mean, std)."""
    runs = summary["runs"]
    run, never, always = (runs.get(label, {}).get(str(seed))
                          for label in (row["condition"], "never", "always"))
    if run is None or never is None or always is None:
        return None
    cost = sum(run["cost_flops"].values()) / sum(always["cost_flops"].values())
    return dict(row, seeds=[seed], base_top1=(run["test_top1"]["base"], 0.0),
                motivated_top1=(run["test_top1"]["motivated"], 0.0),
                base_minus_never=(run["test_top1"]["base"] - never["test_top1"]["base"], 0.0),
                motivated_minus_always=(run["test_top1"]["motivated"]
                                        - always["test_top1"]["motivated"], 0.0),
                cost_vs_always=(cost, 0.0),
                # A resumed run's CPU seconds count only its last stretch.
                cpu_vs_always=((run["cpu_seconds"] / always["cpu_seconds"], 0.0)
                               if run.get("cpu_seconds") and always.get("cpu_seconds")
                               and not run.get("resumed") and not always.get("resumed") else None),
                wall_vs_always=(run["train_seconds"] / always["train_seconds"], 0.0),
                **{f"motivated_minus_separate_{axis}": _seed_gap(runs, row["condition"], seed, axis)
                   for axis in ("flops", "cpu_steps")})


def _seed_gap(runs: dict[str, Any], label: str, seed: int, axis: str) -> tuple[float, float] | None:
    if axis not in separate_curve.COST_AXES:  # cpu_steps: only once step_cost.json is read
        return None
    gap = dict(separate_curve.equal_cost_gaps(runs, label, axis)).get(seed)
    return None if gap is None else (gap, 0.0)


def _reference(summary: dict[str, Any], label: str, role: str, seeds: set[int]) -> float | None:
    """A baseline's test top-1 for `role`, averaged over the seeds the frontier rows ran."""
    runs = summary["runs"].get(label, {})
    values = [run["test_top1"][role] for seed, run in runs.items() if int(seed) in seeds]
    return sum(values) / len(values) if values else None


def to_markdown(rows: list[dict[str, Any]], never: float | None, always: float | None) -> str:
    """The frontier as a table: fraction, cost, both accuracies and their gaps."""
    lines = ["| motivated fraction | FLOPs / always | step CPU / always | base top-1 % | Δ vs never (pp) "
             "| motivated top-1 % | Δ vs always (pp) | Δ vs separate, FLOPs (pp) | Δ vs separate, step CPU (pp) "
             "| both within tolerance |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        base, motivated = row["base_top1"][0], row["motivated_top1"][0]
        # Paired per seed against the same seed's baselines (the summary's own deltas).
        d_base = row["base_minus_never"][0] * 100 if row.get("base_minus_never") else None
        d_mot = (row["motivated_minus_always"][0] * 100 if row.get("motivated_minus_always")
                 else None)
        ok = (d_base is not None and d_mot is not None and d_base >= -BASE_TOLERANCE_PP
              and d_mot >= -MOTIVATED_TOLERANCE_PP)
        cpu = row.get("cpu_steps_vs_always")  # bench/step_cost.py's per-step CPU seconds
        gaps = [row.get(f"motivated_minus_separate_{axis}") for axis in ("flops", "cpu_steps")]
        gap_cells = " | ".join(f"{gap[0] * 100:+.2f}" if gap else "—" for gap in gaps)
        # Where `always` (or `never`) has not run, its deltas and the tolerance verdict are blank.
        lines.append(f"| {row['fraction']:g} | {row['cost_vs_always'][0]:.2f} | "
                     f"{f'{cpu[0]:.2f}' if cpu else '—'} | {base * 100:.2f} | {_signed(d_base)} | "
                     f"{motivated * 100:.2f} | {_signed(d_mot)} | {gap_cells} | "
                     f"{'—' if d_mot is None or d_base is None else 'yes' if ok else 'no'} |")
    return "\n".join(lines) + "\n"


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}"


def separate_curve_points(summary: dict[str, Any], key: str,
                          seed: int | None = None) -> list[tuple[float, float]]:
    """(mean cost on axis `key`, mean motivated top-1) of every `separate-eK` row, and of
    `never` + `always` (the two models trained separately for the run's epochs); with `seed`,
    that seed's own points."""
    if seed is not None:
        return separate_curve.separate_points(summary.get("runs", {}), seed, CURVE_AXES[key])
    rows = {row["condition"]: row for row in summary["rows"]}
    points = [(row[key][0], row["motivated_top1"][0]) for name, row in rows.items()
              if name.startswith("separate-e") and row.get(key)]
    never, always = rows.get("never"), rows.get("always")
    if never and always and never.get(key) and always.get(key):
        points.append((never[key][0] + always[key][0], always["motivated_top1"][0]))
    return sorted(points)


def plot(rows: list[dict[str, Any]], never: float | None, always: float | None,
         title: str, path: Path, summary: dict[str, Any] | None = None, seed: int | None = None) -> None:
    """Both roles' top-1 against cost (FLOPs, and CPU seconds where measured), with the
    baselines, tolerance bands and the equal-cost separate curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_keys = [("cost_vs_always", "honest training FLOPs ÷ the motivated model alone")]
    if all(row.get("cpu_steps_vs_always") for row in rows):  # bench/step_cost.py's axis
        axes_keys.append(("cpu_steps_vs_always",
                          "CPU time (per-step CPU seconds) ÷ the motivated model alone"))
    elif all(row.get("cpu_vs_always") for row in rows):
        axes_keys.append(("cpu_vs_always", "measured CPU seconds ÷ the motivated model alone"))
    figure, axes = plt.subplots(1, len(axes_keys), figsize=(7.5 * len(axes_keys), 4.5),
                                squeeze=False)
    for axis, (cost_key, xlabel) in zip(axes[0], axes_keys):
        cost = [row[cost_key][0] for row in rows]
        for key, label, color, reference, tolerance in (
                ("base_top1", "base", "#1f77b4", never, BASE_TOLERANCE_PP),
                ("motivated_top1", "motivated", "#d62728", always, MOTIVATED_TOLERANCE_PP)):
            values = [row[key][0] * 100 for row in rows]
            axis.plot(cost, values, "o-", color=color, label=f"{label} (one paired run)")
            for x, y, row in zip(cost, values, rows):
                axis.annotate(f"p={row['fraction']:g}", (x, y), textcoords="offset points",
                              xytext=(4, -10 if label == "base" else 6), fontsize=7, color=color)
            if reference is not None:
                axis.axhline(reference * 100, color=color, linestyle="--", linewidth=1,
                             label=f"{label} trained alone")
                axis.axhspan(reference * 100 - tolerance, reference * 100, color=color,
                             alpha=0.08)
        curve = separate_curve_points(summary, cost_key, seed) if summary else []
        if curve:
            axis.plot([x for x, _ in curve], [y * 100 for _, y in curve], "s:", color="#555555",
                      label="motivated, trained separately (never + always-eK)")
        axis.set(xlabel=xlabel, ylabel="test top-1 (%)", title=title)
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small", loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    """Write frontier.{png,md} for one benchmark setting folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("setting", type=Path, help="folder holding summary.json")
    parser.add_argument("--step", choices=("joint", "shielded", "alone"), default="joint")
    parser.add_argument("--ramp", type=float, default=None,
                        help="take the `-ramp<R>` rows of this ramp (default: the flat rows)")
    parser.add_argument("--variant", default="",
                        help="label suffix of the rows to draw, e.g. -grow-priv")
    parser.add_argument("--seed", type=int, default=None,
                        help="every point from this seed's runs (default: each row's mean)")
    args = parser.parse_args(argv)
    summary_path = args.setting / "summary.json"
    if not summary_path.is_file():
        print(f"error: no summary.json in {args.setting}; run bench/pair_vs_baselines.py first",
              file=sys.stderr)
        return 1
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    # Before the rows: a seed's gap on the step-CPU axis needs bench/step_cost.py's file, if it ran.
    separate_curve.use_step_cost_file(args.setting.parents[2], summary["settings"]["family"],
                                      summary["settings"]["epochs"])
    rows = frontier_rows(summary, args.step, args.ramp, args.seed, args.variant)
    ramp = "" if args.ramp is None else f"-ramp{args.ramp:g}"
    if not rows:
        print(f"error: {summary_path} has no {args.step}-p<P>{ramp} rows with an `always` reference"
              + ("" if args.seed is None else f" on seed {args.seed}"), file=sys.stderr)
        return 1
    seeds = {seed for row in rows for seed in row["seeds"]}
    never = _reference(summary, "never", "base", seeds)
    always = _reference(summary, "always", "motivated", seeds)
    settings = summary["settings"]
    title = (f"{settings['family']}, Fashion-MNIST, {settings['train_subset']} images, "
             f"{settings['epochs']} epochs, {args.step} steps{ramp.replace('-', ', ')}"
             + ("" if args.seed is None else f", seed {args.seed}"))
    # The flat joint frontier keeps its historical name; every other choice gets its own files.
    stem = ("frontier" if (args.step, args.ramp, args.variant) == ("joint", None, "")
            else f"frontier-{args.step}{ramp}{args.variant}")
    table = to_markdown(rows, never, always)
    plot(rows, never, always, title, args.setting / f"{stem}.png", summary, args.seed)
    (args.setting / f"{stem}.md").write_text(table, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
