"""bench/separate_curve.py: the equal-cost separate baseline and selection on validation."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from seekdeploy.errors import SeekdeployError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import separate_curve  # noqa: E402  (a bench script's module, found through the path above)


def _record(top1_base, top1_motivated, flops, cpu, val=None):
    return {"test_top1": {"base": top1_base, "motivated": top1_motivated},
            "train_flops": flops, "cpu_seconds": cpu, **({"val_top1": val} if val else {})}


RUNS = {
    "never": {0: _record(0.90, 0.1, 16.0, 40.0)},
    "always": {0: _record(0.1, 0.94, 100.0, 100.0)},
    "always-e3": {0: _record(0.1, 0.91, 30.0, 30.0)},
    "always-e5": {0: _record(0.1, 0.93, 50.0, 50.0)},
    # FLOPs 56 = 0.56x (between e3's 0.46 and e5's 0.66); CPU 80 = 0.8x (e3 0.70, e5 0.90)
    "pair": {0: _record(0.90, 0.925, 56.0, 80.0, {"base": 0.91, "motivated": 0.90})},
    "other": {0: _record(0.90, 0.95, 56.0, 80.0, {"base": 0.91, "motivated": 0.89})},
}


def test_the_separate_curve_sums_never_and_the_short_motivated_run() -> None:
    points = separate_curve.separate_points(RUNS, 0, "flops")
    assert points == [(pytest.approx(0.46), 0.91), (pytest.approx(0.66), 0.93),
                      (pytest.approx(1.16), 0.94)]
    rows = separate_curve.separate_rows(RUNS)
    assert [row["condition"] for row in rows] == ["separate-e3", "separate-e5"]
    assert rows[0]["cpu_vs_always"] == [pytest.approx(0.70)]
    assert rows[1]["base_top1"] == [0.90] and rows[1]["motivated_top1"] == [0.93]


def test_the_gap_is_read_at_the_pairs_own_cost_on_each_axis() -> None:
    (seed, gap_flops), = separate_curve.equal_cost_gaps(RUNS, "pair", "flops")
    # 0.56 is halfway between 0.46 (91 %) and 0.66 (93 %): the curve gives 92 %.
    assert seed == 0 and gap_flops == pytest.approx(0.925 - 0.92)
    (_, gap_cpu), = separate_curve.equal_cost_gaps(RUNS, "pair", "cpu")
    assert gap_cpu == pytest.approx(0.925 - 0.92)  # 0.8: halfway between 0.70 and 0.90


def test_the_curve_is_never_extrapolated() -> None:
    assert separate_curve.interpolate([(0.5, 0.9), (0.7, 0.92)], 0.3) is None
    assert separate_curve.interpolate([(0.5, 0.9), (0.7, 0.92)], 0.8) is None
    cheap = {**RUNS, "pair": {0: _record(0.9, 0.9, 20.0, 45.0)}}
    assert separate_curve.equal_cost_gaps(cheap, "pair", "flops") == []


def test_selection_reads_validation_not_test() -> None:
    # `other` has the better test top-1 (95 % vs 92.5 %) but the worse validation top-1.
    assert separate_curve.select_on_validation(RUNS, ["pair", "other"])[0] == "pair"
    with pytest.raises(ValueError, match="validation"):
        separate_curve.select_on_validation(RUNS, ["never", "always"])
    # A label ahead on a seed the others did not run does not win on that seed alone.
    lucky = {0: _record(0.9, 0.9, 56.0, 80.0, {"base": 0.9, "motivated": 0.85}),
             1: _record(0.9, 0.9, 56.0, 80.0, {"base": 0.9, "motivated": 0.99})}
    assert separate_curve.select_on_validation({**RUNS, "lucky": lucky},
                                               ["pair", "lucky"])[0] == "pair"


def test_with_a_validated_separate_curve_selection_reads_the_margin_over_it() -> None:
    # The separate curve on validation: 0.46x -> 90 %, 0.66x -> 92 %, 1.16x -> 93 %.
    curve = {"always-e3": {0: _record(0.1, 0.91, 30.0, 30.0, {"motivated": 0.90})},
             "always-e5": {0: _record(0.1, 0.93, 50.0, 50.0, {"motivated": 0.92})},
             "always": {0: _record(0.1, 0.94, 100.0, 100.0, {"motivated": 0.93})}}
    # Both motivated models are only 0.1 pp above their bases (the bar asks 0.3): no label clears it.
    cheap = {0: _record(0.9, 0.90, 56.0, 80.0, {"base": 0.914, "motivated": 0.915})}  # curve 91 %: +0.5 pp
    costly = {0: _record(0.9, 0.96, 96.0, 120.0, {"base": 0.925, "motivated": 0.926})}  # curve 92.6 %: +0.0 pp
    runs = {**RUNS, **curve, "cheap": cheap, "costly": costly}
    selected, rule = separate_curve.select_on_validation(runs, ["cheap", "costly"])
    assert selected == "cheap" and "margin" in rule and "no label clears" in rule  # costly: better val
    assert dict(separate_curve.equal_cost_gaps(runs, "costly", "flops", split="val"))[0] == pytest.approx(0.0)
    # Without the curve's validation figures: the best motivated validation top-1.
    assert separate_curve.select_on_validation({**RUNS, "cheap": cheap, "costly": costly},
                                               ["cheap", "costly"])[0] == "costly"


def _bar_runs(**labels):
    # The separate curve on validation (seeds 0 and 1): 0.46x -> 90 %, 0.66x -> 92 %, 1.16x -> 93 %.
    curve = {"never": {s: _record(0.90, 0.1, 16.0, 40.0, {"base": 0.90}) for s in (0, 1)},
             "always-e3": {s: _record(0.1, 0.91, 30.0, 30.0, {"motivated": 0.90}) for s in (0, 1)},
             "always-e5": {s: _record(0.1, 0.93, 50.0, 50.0, {"motivated": 0.92}) for s in (0, 1)},
             "always": {s: _record(0.1, 0.94, 100.0, 100.0, {"motivated": 0.93}) for s in (0, 1)}}
    return {**curve, **labels}


def _pair(flops, *vals):
    # One seed per (base val, motivated val) pair; test figures deliberately opposite (never read).
    return {seed: _record(0.99, 0.5, flops, 80.0, {"base": base, "motivated": motivated})
            for seed, (base, motivated) in enumerate(vals)}


def test_selection_takes_the_cheapest_label_that_clears_the_bar_on_validation() -> None:
    runs = _bar_runs(
        # 0.56x: curve 91 %; motivated +1.0 pp over it but only +0.1 pp over its base: fails.
        small_gain=_pair(56.0, (0.919, 0.920), (0.919, 0.920)),
        # 0.76x: curve 92.2 %; +0.5 pp over its base on both seeds, +0.5 pp over the curve: clears.
        clears=_pair(76.0, (0.922, 0.927), (0.922, 0.927)),
        # 0.96x: curve 92.6 %; clears too, but costs more.
        costly=_pair(96.0, (0.922, 0.930), (0.922, 0.930)),
        # 0.66x: +0.9 pp mean over its base but below it on seed 1: fails.
        one_seed_below=_pair(66.0, (0.90, 0.93), (0.93, 0.92)),
        # 0.86x: curve 92.4 %; +0.5 pp over its base but 0.1 pp under the curve: fails.
        under_curve=_pair(86.0, (0.918, 0.923), (0.918, 0.923)),
        # 0.76x: its base 0.5 pp under never's (90 %): fails.
        weak_base=_pair(76.0, (0.895, 0.925), (0.895, 0.925)))
    every = ["small_gain", "clears", "costly", "one_seed_below", "under_curve", "weak_base"]
    assert separate_curve.meets_bar(runs, "clears", {0, 1})
    assert not any(separate_curve.meets_bar(runs, label, {0, 1})
                   for label in ("small_gain", "one_seed_below", "under_curve", "weak_base"))
    selected, rule = separate_curve.select_on_validation(runs, every)
    assert selected == "clears" and "clear the bar" in rule
    assert separate_curve.select_on_validation(runs, ["costly", "small_gain"])[0] == "costly"
    # At the same cost (within 1 %), the larger mean gain over the base wins, whatever the order.
    runs["same_cost_more_gain"] = _pair(76.5, (0.922, 0.929), (0.922, 0.928))
    for order in (["clears", "same_cost_more_gain"], ["same_cost_more_gain", "clears"]):
        assert separate_curve.select_on_validation(runs, order)[0] == "same_cost_more_gain"
    assert separate_curve.select_on_validation(runs, ["clears", "costly"])[0] == "clears"
    # A label run on one seed only is left out; it does not narrow the others to that seed.
    runs["one_seed"] = _pair(56.0, (0.90, 0.91))
    selected, rule = separate_curve.select_on_validation(runs, ["one_seed", "clears", "costly"])
    assert selected == "clears" and "seeds 0,1" in rule and "left out" in rule and "one_seed" in rule
    # A step-CPU axis on which the label sits under the curve fails it there too.
    axes = dict(separate_curve.COST_AXES)
    try:
        separate_curve.COST_AXES["cpu_steps"] = lambda record: (record["train_flops"] * 1.5
                                                                if record["train_flops"] == 76.0
                                                                else record["train_flops"])
        assert not separate_curve.meets_bar(runs, "clears", {0, 1})
    finally:
        separate_curve.COST_AXES.clear()
        separate_curve.COST_AXES.update(axes)


def test_the_step_cost_axis_prices_each_step_kind_it_timed() -> None:
    axes = dict(separate_curve.COST_AXES)
    try:
        separate_curve.add_step_cost_axis({"base": 1.0, "shielded": 4.0, "additive": 3.0, "always": 3.0}, 10)
        cost = separate_curve.COST_AXES["cpu_steps"]
        shielded = {"motivated_fraction": 0.5, "run_spec": {"motivated_step": "shielded"}}
        additive = {"motivated_fraction": 0.5, "run_spec": {"motivated_step": "shielded", "additive": True}}
        short = {"motivated_fraction": 1.0, "run_spec": {"motivated_step": "alone", "epochs": 5}}
        assert cost(shielded) == pytest.approx((0.5 * 1 + 0.5 * 4) / 3)
        assert cost(additive) == pytest.approx((0.5 * 1 + 0.5 * 3) / 3)
        assert cost(short) == pytest.approx(0.5)
        separate_curve.add_step_cost_axis({"base": 1.0, "shielded": 4.0, "always": 3.0}, 10)
        assert separate_curve.COST_AXES["cpu_steps"](additive) is None  # not timed: no cost
    finally:
        separate_curve.COST_AXES.clear()
        separate_curve.COST_AXES.update(axes)


def test_a_one_seed_frontier_draws_that_seeds_separate_curve() -> None:
    import pair_frontier  # a bench script, found through the path above

    other = {"never": {1: _record(0.90, 0.1, 16.0, 40.0)}, "always": {1: _record(0.1, 0.90, 100.0, 100.0)},
             "always-e3": {1: _record(0.1, 0.80, 30.0, 30.0)}}
    runs = {label: {**RUNS.get(label, {}), **other.get(label, {})} for label in {*RUNS, *other}}
    summary = {"runs": {label: {str(seed): run for seed, run in by_seed.items()} for label, by_seed in runs.items()},
               "rows": [{"condition": "separate-e3", "cost_vs_always": [0.46, 0.0], "motivated_top1": [0.855, 0.0]}]}
    assert pair_frontier.separate_curve_points(summary, "cost_vs_always", seed=1) == [
        (pytest.approx(0.46), 0.80), (pytest.approx(1.16), 0.90)]
    assert pair_frontier.separate_curve_points(summary, "cost_vs_always")[0] == (0.46, 0.855)  # the mean row


def test_a_one_seed_frontier_row_reads_that_seeds_gap_and_drops_a_resumed_runs_cpu() -> None:
    import pair_frontier

    pair = {**_record(0.90, 0.925, 56.0, 80.0), "cost_flops": {"steps": 56.0}, "train_seconds": 1.0}
    resumed = {**pair, "test_top1": {"base": 0.90, "motivated": 0.95}, "resumed": True}
    runs = {label: {str(seed): dict(run, cost_flops={"steps": run["train_flops"]}, train_seconds=1.0)
                    for seed, run in by_seed.items()} for label, by_seed in RUNS.items()}
    runs["shielded-p0.4"] = {"0": pair, "1": resumed}
    for label in ("never", "always", "always-e3", "always-e5"):
        runs[label]["1"] = runs[label]["0"]
    summary = {"runs": runs, "rows": [{"condition": "shielded-p0.4", "cost_vs_always": [0.56, 0.0],
                                       "motivated_minus_separate_flops": [0.0, 0.0]}]}  # the mean row's
    (row0,) = pair_frontier.frontier_rows(summary, "shielded", None, 0, "")
    (row1,) = pair_frontier.frontier_rows(summary, "shielded", None, 1, "")
    assert row0["motivated_minus_separate_flops"][0] == pytest.approx(0.925 - 0.92)  # seed 0's own
    assert row1["motivated_minus_separate_flops"][0] == pytest.approx(0.95 - 0.92)
    assert row0["cpu_vs_always"][0] == pytest.approx(0.8) and row1["cpu_vs_always"] is None
    assert "| +0.50 | — |" in pair_frontier.to_markdown([row0], 0.90, 0.94)  # no step-CPU axis here


def test_without_an_always_run_costs_are_priced_from_nevers_standalone_flops() -> None:
    # The motivated model alone would spend 100 FLOPs: what every full-length run records.
    never = {**_record(0.90, 0.1, 16.0, 40.0), "standalone_motivated_flops": 100.0}
    runs = {"never": {0: never}, "always-e3": RUNS["always-e3"], "always-e5": RUNS["always-e5"],
            "pair": RUNS["pair"]}
    assert separate_curve.separate_points(runs, 0, "flops") == [(pytest.approx(0.46), 0.91),
                                                               (pytest.approx(0.66), 0.93)]
    (_, gap), = separate_curve.equal_cost_gaps(runs, "pair", "flops")
    assert gap == pytest.approx(0.925 - 0.92)
    assert separate_curve.equal_cost_gaps(runs, "pair", "cpu") == []  # measured seconds: no stand-in
    del never["standalone_motivated_flops"]
    assert separate_curve.separate_points(runs, 0, "flops") == []


def test_without_a_label_clearing_the_bar_one_the_curve_cannot_judge_does_not_win_on_top1() -> None:
    runs = _bar_runs(
        # 0.56x: curve 91 %, +0.2 pp over it; only +0.1 pp over its base: fails the bar.
        judged=_pair(56.0, (0.911, 0.912), (0.911, 0.912)),
        # 1.26x: beyond the curve's last point (1.16x): no margin; the better validation top-1.
        beyond=_pair(126.0, (0.95, 0.951), (0.95, 0.951)))
    selected, rule = separate_curve.select_on_validation(runs, ["beyond", "judged"])
    assert selected == "judged" and "among the 1 labels the curve covers" in rule


# The committed summaries of the runs that chose the default (docs/results.md): the 12,000-image
# runs chose the variant (step type, growth, private offsets, clock) at the default share, the
# full-set runs chose the share among that variant's and the private head.
@pytest.mark.parametrize("setting, what", [("e10-n12000-b64-r20", "variant"), ("e10-n60000-b64-r20", "all")])
def test_the_shipped_default_is_what_validation_selected(setting: str, what: str) -> None:
    # Changing a default without the measurement that selects it, or a measurement that selects
    # another, fails here.
    import dataclasses
    import json

    import pair_vs_baselines
    from seekdeploy.train.config import DEFAULT_CONDITION, DEFAULT_PRIVATE_HEAD

    path = Path(__file__).resolve().parents[1] / "bench/results/pair_vs_baselines/resnet" / setting
    summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    selected = summary["selected_on_validation"]
    assert selected and "validation" in summary["selection_rule"]
    spec = pair_vs_baselines.run_spec(selected)
    if what == "variant":  # the head was compared on the full set only
        spec = dataclasses.replace(spec, condition=DEFAULT_CONDITION, private_head=DEFAULT_PRIVATE_HEAD)
    assert pair_vs_baselines.is_default(spec), selected


def test_each_family_is_priced_by_its_own_step_times(tmp_path) -> None:
    import json

    axes = dict(separate_curve.COST_AXES)
    record = {"motivated_fraction": 0.5, "run_spec": {"motivated_step": "shielded"}}
    try:
        (tmp_path / "step_cost.json").write_text(json.dumps(  # resnet's file predates the key
            {"step_cpu_seconds": {"base": 1.0, "shielded": 4.0, "always": 2.0}}))
        assert separate_curve.use_step_cost_file(tmp_path, "resnet", 10)
        assert separate_curve.COST_AXES["cpu_steps"](record) == pytest.approx(1.25)
        # No mbconv file: resnet's times must not price mbconv runs.
        assert not separate_curve.use_step_cost_file(tmp_path, "mbconv", 10)
        assert "cpu_steps" not in separate_curve.COST_AXES
        (tmp_path / "step_cost.mbconv.json").write_text(json.dumps(
            {"family": "mbconv", "step_cpu_seconds": {"base": 1.0, "shielded": 6.0, "always": 4.0}}))
        assert separate_curve.use_step_cost_file(tmp_path, "mbconv", 10)
        assert separate_curve.COST_AXES["cpu_steps"](record) == pytest.approx(0.875)
        (tmp_path / "step_cost.vit.json").write_text(json.dumps(
            {"family": "mbconv", "step_cpu_seconds": {"base": 1.0, "shielded": 6.0, "always": 4.0}}))
        with pytest.raises(ValueError, match="--family vit"):
            separate_curve.use_step_cost_file(tmp_path, "vit", 10)
    finally:
        separate_curve.COST_AXES.clear()
        separate_curve.COST_AXES.update(axes)


def test_a_frontier_without_an_always_run_leaves_its_deltas_blank() -> None:
    import pair_frontier

    row = {"fraction": 0.4, "cost_vs_always": (0.51, 0.0), "base_top1": (0.912, 0.0),
           "motivated_top1": (0.9214, 0.0), "base_minus_never": (0.0, 0.0),
           "motivated_minus_always": None, "motivated_minus_separate_flops": (0.0019, 0.0)}
    line = pair_frontier.to_markdown([row], 0.912, None).splitlines()[-1]
    assert line == "| 0.4 | 0.51 | — | 91.20 | +0.00 | 92.14 | — | +0.19 | — | — |"


def test_a_labels_variant_suffixes_switch_on_their_training_options() -> None:
    import pair_vs_baselines

    spec = pair_vs_baselines.run_spec("shielded-p0.6-ramp0.4-grow-priv-head-clock")
    assert (spec.condition, spec.motivated_step) == ("schedule:p=0.6,ramp=0.4", "shielded")
    assert spec.growth and spec.private_affine and spec.private_head and spec.motivated_clock
    assert not spec.additive
    plain = pair_vs_baselines.run_spec("shielded-p0.6-ramp0.4-grow-priv-clock")
    assert not plain.private_head and not plain.clone_growth and not plain.private_convs
    convs = pair_vs_baselines.run_spec("shielded-p0.6-ramp0.4-grow-priv-head-convs-clock")
    assert convs.private_convs and convs.private_head and not pair_vs_baselines.is_default(convs)
    copied = pair_vs_baselines.run_spec("shielded-p0.6-start0.4-grow-priv-head-clock-clone")
    assert copied.condition == "schedule:p=0.6,start=0.4"
    assert copied.clone_growth and copied.growth and copied.private_head
    with pytest.raises(SeekdeployError, match="unknown label"):
        pair_vs_baselines.run_spec("shielded-p0.6-wide")


def test_a_fresh_checkout_restores_the_committed_runs_before_it_rewrites_a_summary(tmp_path) -> None:
    import json

    import pair_vs_baselines

    args = pair_vs_baselines.parse_args(["--epochs", "10", "--train-subset", "60000",
                                         "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")])
    setting = pair_vs_baselines.setting_name(args)
    result = {"family": "resnet", "seed": 1, "test_top1": {"base": 0.9, "motivated": 0.91}}
    summary = tmp_path / "out" / "resnet" / setting / "summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text(json.dumps({"runs": {"never": {"1": result}}}))
    assert pair_vs_baselines.restore_results(args, "resnet") == 1
    written = tmp_path / "work" / "resnet" / setting / "never" / "seed1" / "result.json"
    assert json.loads(written.read_text()) == result
    # What is on disk wins: a run finished here is never overwritten by the summary's copy.
    written.write_text(json.dumps(result | {"seed": 1, "rerun": True}))
    assert pair_vs_baselines.restore_results(args, "resnet") == 0
    assert json.loads(written.read_text())["rerun"] is True
    assert pair_vs_baselines.collect_results(tmp_path / "work" / "resnet" / setting)["never"][1]["rerun"]


def test_split_overlap_finds_each_images_nearest_training_image() -> None:
    import torch

    import split_overlap

    train = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    queries = torch.tensor([[0.0, 0.0], [3.0, 4.5], [10.0, 4.0]])
    distances = split_overlap.nearest_distances(queries, train)
    assert torch.allclose(distances, torch.tensor([0.0, 0.5, 7.0]))
    figures = split_overlap.overlap(distances)
    assert figures["within_1"] == pytest.approx(2 / 3) and figures["within_3"] == pytest.approx(2 / 3)
    assert figures["median"] == pytest.approx(0.5)
