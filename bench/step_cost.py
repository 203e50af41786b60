"""CPU time of each kind of training step, measured side by side, and the CPU-cost axis it gives.

A run's CPU seconds move with the machine's load (a 1-thread run measured at load 10 used up to
2x the CPU seconds of the same run at load 1.5), so ratios between runs measured at different
loads are not a cost measurement. This script times the kinds of step that the pair and its
baselines are made of — a base step, a shielded motivated step (motivated model and base, both
backward passes), the same step of an additive pair (one nested forward: the base's, then only
what the motivated model adds; `--additive`, --bn shared) and a motivated-alone step (`always`) —
interleaved in one process, so all share the same load, and reports the CPU-time cost of each
training recipe as a ratio to `always`'s:

    never                = t_base / t_always
    pair at share p      = ((1 - p) t_base + p t_shielded) / t_always   (t_additive for an additive pair)
    separate, K of E ep. = t_base / t_always + K / E

and the K at which the separate trainings cost exactly what the pair does. Each family has its
own file (`separate_curve.step_cost_file`): resnet's is bench/results/step_cost.json, another
family's bench/results/step_cost.<family>.json; the additive step is timed for resnet only (the
family that builds an additive pair).

    python bench/step_cost.py --rounds 30
    python bench/step_cost.py --family mbconv --rounds 30
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from separate_curve import step_cost_file

from seekdeploy._io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"


def _session(family: str, run_dir: Path, condition: str, step: str, data_dir: str | None, data: str,
             additive: bool = False):
    import dataclasses

    from seekdeploy.nn import default_pair
    from seekdeploy.profiles.loader import load_profile
    from seekdeploy.train.config import TrainConfig
    from seekdeploy.train.run import start_run

    _, base, motivated = default_pair(family)
    profile = load_profile("x86-cpu")
    profile = dataclasses.replace(profile, input=dataclasses.replace(
        profile.input, channels=1, height=28, width=28))
    config = TrainConfig(arch=family, data=data, data_dir=data_dir, epochs=10,
                         base_spec=base.to_text(), motivated_spec=motivated.to_text(),
                         condition=condition, motivated_step=step, device="cpu", growth=True,
                         private_affine=not additive, motivated_clock=condition != "never",
                         additive=additive, bn="shared" if additive else "private")
    return start_run(config, run_dir, profile=profile)


def measure(family: str, rounds: int, data_dir: str | None, data: str) -> dict[str, float]:
    """Median CPU seconds of one step of each kind (batch 64), interleaved over `rounds`."""
    from seekdeploy.profiles.schema import Role
    from seekdeploy.train import loop

    with tempfile.TemporaryDirectory() as tmp:
        pair = _session(family, Path(tmp) / "pair", "schedule:p=0.5", "shielded", data_dir, data)
        alone = _session(family, Path(tmp) / "always", "always", "alone", data_dir, data)
        train = pair.dataset.train
        images, labels = train.images[:64], train.labels[:64]
        kinds = {"base": (pair, Role.BASE), "shielded": (pair, Role.MOTIVATED),
                 "always": (alone, Role.MOTIVATED)}
        if family == "resnet":
            additive = _session(family, Path(tmp) / "additive", "schedule:p=0.5", "shielded", data_dir, data,
                                additive=True)
            kinds["additive"] = (additive, Role.MOTIVATED)
        samples: dict[str, list[float]] = {kind: [] for kind in kinds}
        for round_index in range(rounds + 3):  # 3 warm-up rounds
            for kind, (session, role) in kinds.items():
                started = time.process_time()
                loop.train_step(session, images, labels, role)
                if round_index >= 3:
                    samples[kind].append(time.process_time() - started)
    return {kind: statistics.median(values) for kind, values in samples.items()}


def cost_axis(seconds: dict[str, float], shares: list[float], epochs: int) -> dict[str, object]:
    """The CPU-time cost of never, the pair at each share and the equal-cost K of `always`."""
    base, shielded, always = seconds["base"], seconds["shielded"], seconds["always"]
    pair = {f"{p:g}": ((1 - p) * base + p * shielded) / always for p in shares}
    additive = {f"{p:g}": ((1 - p) * base + p * seconds["additive"]) / always for p in shares} \
        if "additive" in seconds else None
    return {"never": base / always, "pair": pair, "additive_pair": additive,
            "equal_cost_always_epochs": {key: (value - base / always) * epochs
                                         for key, value in pair.items()}}


def main(argv: list[str] | None = None) -> int:
    """Measure, print and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="resnet", help="whose default pair to time (default resnet)")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--shares", default="0.3,0.4,0.5,0.6")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None,
                        help="default: the family's file in bench/results (step_cost.json for resnet)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    seconds = measure(args.family, args.rounds, args.data_dir, args.data)
    shares = [float(p) for p in args.shares.split(",")]
    result = {"family": args.family, "step_cpu_seconds": seconds, **cost_axis(seconds, shares, args.epochs),
              "rounds": args.rounds, "batch": 64, "threads": 1,
              "load_average_1m": os.getloadavg()[0],
              "date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv)}
    atomic_write_json(args.out or step_cost_file(RESULTS, args.family), result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
