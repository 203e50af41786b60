"""How each motivation condition responds to improvement: its motivated fraction on synthetic base
losses with no trend (noise only) and with a steady fall, the same noise on top.

A condition that reads a *signal* of improvement should sit near its floor on noise and rise on a
falling loss; a *rate controller* gives its set fraction whatever the loss does. Each condition
sees the base loss of every batch (as in a joint run, where the base trains on every batch).

    python bench/condition_response.py            # ~1 s; writes bench/results/condition_response.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

CONDITIONS = ("streak:k=3,hold=1", "ema-streak:k=3,hold=2", "slope:window=32,hold=1",
              "target:target=0.4,hold=2", "trend:window=256,floor=0.1,ceiling=0.6",
              "random:p=0.4", "schedule:p=0.4")
NOISE = 0.2  # spread of a batch loss at batch 64 (Fashion-MNIST, measured in training runs)
FALL_PER_BATCH = 0.002  # an early epoch's fall of the base loss


def losses(kind: str, steps: int, seed: int) -> list[float]:
    """`flat`: noise around 1.0; `falling`: 3.0 falling by FALL_PER_BATCH a batch, same noise."""
    rng = random.Random(seed)
    slope = FALL_PER_BATCH if kind == "falling" else 0.0
    return [3.0 - slope * i + rng.gauss(0.0, NOISE) if slope else 1.0 + rng.gauss(0.0, NOISE)
            for i in range(steps)]


def motivated_fraction(text: str, series: list[float]) -> float:
    """The fraction of batches `text` motivates, fed `series` as the base loss of every batch."""
    from seekdeploy.roles import Role
    from seekdeploy.train.conditions import create_condition

    condition = create_condition(text, seed=0, total_steps=len(series))
    motivated = 0
    for step, loss in enumerate(series):
        motivated += condition.decide(step).role is Role.MOTIVATED
        condition.observe_base_loss(loss)
    return motivated / len(series)


def main(argv: list[str] | None = None) -> int:
    """Print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/results/condition_response.json"))
    args = parser.parse_args(argv)
    rows = []
    for text in CONDITIONS:
        row = {"condition": text}
        for kind in ("flat", "falling"):
            fractions = [motivated_fraction(text, losses(kind, args.steps, seed))
                         for seed in range(args.seeds)]
            row[kind] = sum(fractions) / len(fractions)
        rows.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"steps": args.steps, "seeds": args.seeds, "noise": NOISE,
                                    "fall_per_batch": FALL_PER_BATCH, "rows": rows}, indent=2))
    print("| condition | fraction, no trend | fraction, falling loss |\n|---|---|---|")
    for row in rows:
        print(f"| `{row['condition']}` | {row['flat']:.3f} | {row['falling']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
