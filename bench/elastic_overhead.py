"""Elastic overhead: one SGD training step of the supernet at a spec vs the same network built static.

For the base and motivated spec of every registered family (vit included when registered), time
forward + backward + SGD step, median of repeated runs (interleaved, so background load hits both
sides alike), print a ratio table and write JSON. Goal: <= 1.15x at base, <= 1.05x at full spec.

    python bench/elastic_overhead.py [--batch 32] [--image-size 32] [--repeats 30] [--threads 1]
                                     [--out bench/results/elastic_overhead.json]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from seekdeploy._io import atomic_write_json
from seekdeploy.nn import build_static, create_supernet, default_pair, list_families


def step_time_s(model: torch.nn.Module, forward, x: torch.Tensor, y: torch.Tensor) -> float:
    """Seconds of one forward + backward + SGD step (perf_counter; CPU is synchronous)."""
    optimizer = model._bench_optimizer  # type: ignore[attr-defined]
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(forward(x), y)
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start


def measure_pair(family: str, role: str, spec, args: argparse.Namespace) -> dict:
    """Median step time of the supernet at `spec` and of the static network of `spec`."""
    config, _, _ = default_pair(family)
    kwargs = dict(num_classes=10, in_channels=3, image_size=args.image_size)
    supernet = create_supernet(family, config, **kwargs).train()
    static = build_static(spec, **kwargs).train()
    for model in (supernet, static):
        model._bench_optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(args.batch, 3, args.image_size, args.image_size)
    y = torch.randint(0, 10, (args.batch,))
    elastic_forward = lambda inputs: supernet(inputs, spec, role)  # noqa: E731
    times: dict[str, list[float]] = {"elastic": [], "static": []}
    for index in range(args.warmup + args.repeats):
        elastic = step_time_s(supernet, elastic_forward, x, y)
        plain = step_time_s(static, static, x, y)
        if index >= args.warmup:
            times["elastic"].append(elastic)
            times["static"].append(plain)
    elastic_ms = 1e3 * statistics.median(times["elastic"])
    static_ms = 1e3 * statistics.median(times["static"])
    return {"family": family, "role": role, "spec": spec.to_text(), "elastic_ms": elastic_ms,
            "static_ms": static_ms, "ratio": elastic_ms / static_ms,
            "goal": 1.15 if role == "base" else 1.05}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--families", default=",".join(list_families()))
    parser.add_argument("--out", default="bench/results/elastic_overhead.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    for family in args.families.split(","):
        _, base, motivated = default_pair(family)
        for role, spec in (("base", base), ("motivated", motivated)):
            row = measure_pair(family, role, spec, args)
            rows.append(row)
            verdict = "ok" if row["ratio"] <= row["goal"] else "OVER"
            print(f"{family:7s} {role:9s} elastic {row['elastic_ms']:8.2f} ms  static "
                  f"{row['static_ms']:8.2f} ms  ratio {row['ratio']:.3f}  (goal {row['goal']}) {verdict}",
                  flush=True)
    atomic_write_json(args.out, {"batch": args.batch, "image_size": args.image_size,
                                 "repeats": args.repeats, "threads": args.threads,
                                 "torch": torch.__version__, "machine": platform.machine(),
                                 "processor": platform.processor(), "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
