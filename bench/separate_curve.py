"""The equal-cost baseline of a pair, and selection on the validation split.

What a user would do instead of training the pair: train the base alone (`never`) and the
motivated model alone for fewer epochs (`always-eK`, its cosine compressed to K epochs). Their
summed cost and the motivated model's top-1 make one point of the *separate curve* per K (and
`always` itself at K = the run's epochs); a pair is worth training only where its motivated model
is above that curve at the pair's own cost. Cost is read on two axes: honest training FLOPs and
measured CPU seconds (1 thread), each divided by the same seed's `always`.

Used by bench/pair_vs_baselines.py (the `separate-eK` rows and the equal-cost gaps of every row)
and bench/pair_frontier.py (the curve on the plot). `runs` is {label: {seed: result record}} as
pair_vs_baselines writes them (seeds as ints or as the strings of a summary.json).
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

ALWAYS_SHORT = re.compile(r"^always-e([0-9]+)$")
Runs = dict[str, dict[Any, dict[str, Any]]]

# Cost axis name -> what one run record spends on it.
COST_AXES: dict[str, Callable[[dict[str, Any]], float | None]] = {
    "flops": lambda record: record.get("train_flops"),
    "cpu": lambda record: record.get("cpu_seconds"),
}


def add_step_cost_axis(step_seconds: dict[str, float], epochs: int) -> None:
    """Add the `cpu_steps` axis: a run's CPU time from the per-step CPU seconds that
    bench/step_cost.py measured side by side (base, shielded, additive and always steps), in units
    of a full `always` run, so runs measured at different loads compare on the same footing. A run
    of a step kind the file lacks (an additive pair before step_cost.py timed one) has no cost."""
    base, shielded, always = (step_seconds[k] for k in ("base", "shielded", "always"))

    def cost(record: dict[str, Any]) -> float | None:
        spec = record.get("run_spec") or {}
        fraction = record.get("motivated_fraction", 0.0)
        run_epochs = spec.get("epochs") or epochs
        motivated = always if spec.get("motivated_step", "alone") == "alone" else shielded
        if spec.get("additive") and fraction:
            motivated = step_seconds.get("additive")
            if motivated is None:
                return None
        per_step = (1 - fraction) * base + fraction * motivated
        return per_step / always * run_epochs / epochs

    COST_AXES["cpu_steps"] = cost


def step_cost_file(results_dir: Path, family: str) -> Path:
    """Where bench/step_cost.py keeps a family's per-step CPU seconds (resnet: step_cost.json)."""
    return results_dir / ("step_cost.json" if family == "resnet" else f"step_cost.{family}.json")


def use_step_cost_file(results_dir: Path, family: str, epochs: int) -> bool:
    """Set the `cpu_steps` axis from the family's bench/step_cost.py file, or remove it where the
    family has none: another family's step times are not its cost. True when the axis is set."""
    path = step_cost_file(results_dir, family)
    COST_AXES.pop("cpu_steps", None)
    if not path.is_file():
        return False
    measured = json.loads(path.read_text(encoding="utf-8"))
    if measured.get("family", "resnet") != family:
        raise ValueError(f"{path} timed {measured.get('family')!r} steps, not {family!r}; re-run "
                         f"bench/step_cost.py --family {family}")
    add_step_cost_axis(measured["step_cpu_seconds"], epochs)
    return True


def _by_seed(runs: Runs, label: str) -> dict[int, dict[str, Any]]:
    return {int(seed): record for seed, record in runs.get(label, {}).items()}


# Axes whose `always` figure is the same for every seed (counted, not timed): a seed whose own
# `always` has not run yet may be costed against another seed's.
SEED_FREE_AXES = ("flops", "cpu_steps")


def always_reference(runs: Runs, seed: int, axis: str) -> dict[str, Any] | None:
    """The `always` record that costs on `axis` are divided by: the seed's own; on a seed-free axis
    another seed's; and where `always` has not run at all, a stand-in priced from the seed's `never`
    record (every full-length run records `standalone_motivated_flops`, which is what `always`
    spends; on the step-CPU axis `always` costs 1 by definition). None if neither ran."""
    always = _by_seed(runs, "always")
    if seed in always:
        return always[seed]
    if axis not in SEED_FREE_AXES:
        return None
    if always:
        return next(iter(always.values()))
    flops = (_by_seed(runs, "never").get(seed) or {}).get("standalone_motivated_flops")
    return {"train_flops": flops, "motivated_fraction": 1.0,
            "run_spec": {"motivated_step": "alone"}} if flops else None


def _ratio(axis: str, spent: list[dict[str, Any]], reference: dict[str, Any]) -> float | None:
    values = [COST_AXES[axis](record) for record in spent]
    denominator = COST_AXES[axis](reference)
    if any(value is None for value in values) or not denominator:
        return None
    return sum(values) / denominator


def _top1(record: dict[str, Any], split: str, role: str = "motivated") -> float | None:
    # A role's top-1 on "test" or "val" (None where the run did not record it).
    return (record.get("test_top1") if split == "test" else record.get("val_top1") or {}).get(role)


def separate_points(runs: Runs, seed: int, axis: str, split: str = "test") -> list[tuple[float, float]]:
    """(cost ÷ `always`, motivated top-1 on `split`) of `never` + `always-eK` for every K this seed
    ran, and of `never` + `always` where it ran; sorted by cost. Empty without that seed's `never`
    (or without any cost reference: `always_reference`)."""
    never, always = _by_seed(runs, "never").get(seed), always_reference(runs, seed, axis)
    if never is None or always is None:
        return []
    points = []
    for label in runs:
        if label != "always" and not ALWAYS_SHORT.match(label):
            continue
        record = _by_seed(runs, label).get(seed)
        cost = None if record is None else _ratio(axis, [never, record], always)
        if cost is not None and (top1 := _top1(record, split)) is not None:
            points.append((cost, top1))
    return sorted(points)


def interpolate(points: list[tuple[float, float]], cost: float) -> float | None:
    """The curve's top-1 at `cost` (linear between the neighbouring points); None outside the
    measured range: the curve is never extrapolated."""
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= cost <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (cost - x0) / (x1 - x0)
    return points[0][1] if len(points) == 1 and points[0][0] == cost else None


def equal_cost_gaps(runs: Runs, label: str, axis: str, split: str = "test") -> list[tuple[int, float]]:
    """Per seed: the pair's motivated top-1 on `split` minus the separate curve's at the pair's
    own cost (only seeds where the curve covers that cost)."""
    gaps = []
    for seed, record in sorted(_by_seed(runs, label).items()):
        always = always_reference(runs, seed, axis)
        cost = None if always is None else _ratio(axis, [record], always)
        curve = separate_points(runs, seed, axis, split)
        reference = None if cost is None else interpolate(curve, cost)
        if reference is not None and (top1 := _top1(record, split)) is not None:
            gaps.append((seed, top1 - reference))
    return gaps


def separate_rows(runs: Runs) -> list[dict[str, Any]]:
    """One `separate-eK` row per K: base from `never`, motivated from `always-eK`, cost on both
    axes as the sum (each a list of per-seed values, in seed order)."""
    rows = []
    for label in sorted(runs, key=lambda name: int(ALWAYS_SHORT.match(name).group(1))
                        if ALWAYS_SHORT.match(name) else 10**9):
        match = ALWAYS_SHORT.match(label)
        if not match:
            continue
        never = _by_seed(runs, "never")
        seeds = [seed for seed in sorted(_by_seed(runs, label)) if seed in never
                 and always_reference(runs, seed, "flops") is not None]
        if not seeds:
            continue
        short = _by_seed(runs, label)

        def cost(axis: str, seed: int) -> float | None:
            always = always_reference(runs, seed, axis)
            return None if always is None else _ratio(axis, [never[seed], short[seed]], always)

        rows.append({
            "condition": f"separate-e{match.group(1)}", "seeds": seeds,
            "base_top1": [never[s]["test_top1"]["base"] for s in seeds],
            "motivated_top1": [short[s]["test_top1"]["motivated"] for s in seeds],
            "cost_vs_always": [cost("flops", s) for s in seeds],
            **{f"{axis}_vs_always": [cost(axis, s) for s in seeds]
               for axis in COST_AXES if axis != "flops"}})
    return rows


def mean_validation(runs: Runs, label: str, role: str) -> float | None:
    """Mean over seeds of a label's last-epoch validation top-1 for `role` (None if unrecorded)."""
    values = [record.get("val_top1", {}).get(role) for record in _by_seed(runs, label).values()]
    values = [value for value in values if value is not None]
    return statistics.fmean(values) if values else None


def validated_seeds(runs: Runs, label: str) -> set[int]:
    return {seed for seed, record in _by_seed(runs, label).items()
            if record.get("val_top1", {}).get("motivated") is not None}


# The bar a pair must clear to be worth training (issue 24), read on validation by the selection:
# the motivated model above its base on every seed and by this much on average (a fraction), the
# base no more than BASE_SLACK below `never`'s, and the motivated model not below the separate
# curve at its own cost on any cost axis (means over seeds).
BAR_GAIN, BASE_SLACK = 0.003, 0.001
# Labels whose FLOPs differ by less than this share cost the same to the selection (variants of
# one share, such as a private classifier head, differ by a few multiply-adds).
COST_TIE = 0.01


def _validation(runs: Runs, label: str, seed: int, role: str) -> float | None:
    return _top1(_by_seed(runs, label)[seed], "val", role)


def bar_figures(runs: Runs, label: str, seeds: set[int]) -> dict[str, Any]:
    """What the bar reads of `label` on `seeds`, validation split only: per seed the motivated
    model's margin over its base (`gains`); the mean margin of its base over `never`'s (`base_gap`,
    None where `never` recorded no validation figures); per cost axis the mean margin of its
    motivated model over the separate curve (`separate`, None where the curve does not cover every
    seed at that cost); and whether all of that clears the bar (`cleared`): motivated above its
    base on every seed and by BAR_GAIN on average, base within BASE_SLACK of `never`'s, not under
    the separate curve at equal FLOPs nor, once bench/step_cost.py's axis is added, at equal step
    CPU time."""
    gains = {seed: _validation(runs, label, seed, "motivated") - _validation(runs, label, seed, "base")
             for seed in sorted(seeds)}
    never = [_validation(runs, "never", seed, "base") for seed in seeds
             if seed in _by_seed(runs, "never")]
    base_gap = (statistics.fmean(_validation(runs, label, seed, "base") for seed in seeds)
                - statistics.fmean(never)) if len(never) == len(seeds) and None not in never else None
    separate: dict[str, float | None] = {}
    for axis in ("flops", "cpu_steps"):
        if axis in COST_AXES:
            margins = dict(equal_cost_gaps(runs, label, axis, split="val"))
            separate[axis] = (statistics.fmean(margins[seed] for seed in seeds)
                              if seeds <= set(margins) else None)
    cleared = (min(gains.values()) > 0 and statistics.fmean(gains.values()) >= BAR_GAIN
               and (base_gap is None or base_gap >= -BASE_SLACK)
               and all(margin is not None and margin >= 0 for margin in separate.values()))
    return {"gains": gains, "base_gap": base_gap, "separate": separate, "cleared": cleared}


def meets_bar(runs: Runs, label: str, seeds: set[int]) -> bool:
    """Whether `label`'s validation figures on `seeds` clear the bar (`bar_figures`)."""
    return bar_figures(runs, label, seeds)["cleared"]


def _mean_cost(runs: Runs, label: str, seeds: set[int]) -> float:
    ratios = [_ratio("flops", [_by_seed(runs, label)[seed]], always_reference(runs, seed, "flops") or {})
              for seed in seeds]
    return statistics.fmean(ratio if ratio is not None else float("inf") for ratio in ratios)


def selection_seeds(runs: Runs, labels: list[str]) -> tuple[set[int], list[str], list[str]]:
    """(the seeds selection reads, the labels judged on them, the labels with validation figures
    that lack some of them): the seeds are, among the labels' validated seed sets, the one that
    holds the most (label, seed) results (`select_on_validation`)."""
    seed_sets = {label: validated_seeds(runs, label) for label in labels}
    labels = [label for label in labels if seed_sets[label]]
    if not labels:
        raise ValueError("none of the labels has validation figures; re-run them")

    def evidence(seeds: set[int]) -> tuple[int, int]:
        covering = sum(seeds <= seed_sets[label] for label in labels)
        return len(seeds) * covering, covering

    seeds = max((seed_sets[label] for label in labels), key=evidence)
    judged = [label for label in labels if seeds <= seed_sets[label]]
    return seeds, judged, [label for label in labels if label not in judged]


def select_on_validation(runs: Runs, labels: list[str]) -> tuple[str, str]:
    """(the label selected, the rule that selected it), reading the validation split only.

    The seeds read are, among the labels' validated seed sets, the one that holds the most
    (label, seed) results: its size times the labels that cover it (ties: more labels). A label
    lacking one of those seeds is left out and named in the rule, so one label run on fewer seeds
    does not shrink what every other label is judged on, and a label's extra seeds do not shut
    the others out.

    First rule: the cheapest label (FLOPs) whose validation figures clear the bar (`meets_bar`) on
    those seeds: a pair is worth training once its motivated model is clearly
    better than its base and than training the two models separately, and a cheaper one is then
    the better buy; among cleared labels within COST_TIE of the cheapest's cost, the one with the
    larger mean validation gain of the motivated model over its base. Where no label clears it:
    the largest mean margin of the motivated model's validation top-1 over the separate curve's
    (validation top-1 of `never` + `always-eK`) at the label's own FLOPs, among the labels the curve covers on those seeds (a label it cannot judge
    does not win by its top-1 alone: a larger motivated share always buys some). Where the curve
    covers none, the best mean motivated validation top-1 over those seeds (ties: the better
    base). A label without validation figures cannot win."""
    seeds, judged, left_out = selection_seeds(runs, labels)
    best, rule = _select(runs, judged, seeds)
    if left_out:
        rule += f"; left out, lacking some of those seeds: {', '.join(left_out)}"
    return best, rule


def _select(runs: Runs, labels: list[str], seeds: set[int]) -> tuple[str, str]:
    seed_text = ",".join(map(str, sorted(seeds)))
    figures = {label: bar_figures(runs, label, seeds) for label in labels}
    cleared = [label for label in labels if figures[label]["cleared"]]
    if cleared:
        costs = {label: _mean_cost(runs, label, seeds) for label in cleared}
        tied = [label for label in cleared if costs[label] <= min(costs.values()) * (1 + COST_TIE)]
        best = max(tied, key=lambda label: statistics.fmean(figures[label]["gains"].values()))
        return best, (f"the cheapest label whose validation figures clear the bar (motivated above its base on "
                      f"every seed and by >= {BAR_GAIN * 100:.1f} pp on average, not below the separate curve at equal "
                      f"cost; labels within {COST_TIE:.0%} of its cost: the larger mean gain over the base), "
                      f"seeds {seed_text}")
    margins = {label: dict(equal_cost_gaps(runs, label, "flops", split="val")) for label in labels}
    judged = [label for label in labels if seeds <= set(margins[label])]
    if judged:
        best = max(judged, key=lambda label: statistics.fmean(margins[label][seed] for seed in seeds))
        return best, (f"no label clears the bar; largest mean margin of the motivated model's validation top-1 "
                      f"over the separate curve's at equal FLOPs among the {len(judged)} labels the curve "
                      f"covers, seeds {seed_text}")

    def score(label: str, role: str) -> float:
        return statistics.fmean(_by_seed(runs, label)[seed]["val_top1"].get(role, 0.0)
                                for seed in seeds)

    best = max(labels, key=lambda label: (score(label, "motivated"), score(label, "base")))
    return best, f"no label clears the bar; best mean motivated validation top-1, seeds {seed_text}"
