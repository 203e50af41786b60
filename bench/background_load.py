"""Run a command while other work competes for the CPU, to see what a busy device does to a figure.

    python bench/background_load.py -- python bench/predictor_accuracy.py --profile x86-cpu

The load is deliberate and seeded: `--bursty N` processes each spin for 50-150 ms and sleep for
100-600 ms (short jobs, interrupts), plus `--long N` processes that spin for 2 s and sleep for 3 s
(a compile, another benchmark). The default (2 bursty + 1 long) is what the predictor-accuracy
figures under "heavy background load" used on a 2-core VM. The load stops when the command ends;
the command's exit code is returned.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import subprocess
import sys
import time


def _spin(busy_s: tuple[float, float], idle_s: tuple[float, float], seed: int) -> None:
    rng = random.Random(seed)
    while True:
        end = time.perf_counter() + rng.uniform(*busy_s)
        while time.perf_counter() < end:
            pass
        time.sleep(rng.uniform(*idle_s))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursty", type=int, default=2, help="processes busy 50-150 ms, idle 100-600 ms")
    parser.add_argument("--long", type=int, default=1, help="processes busy 2 s, idle 3 s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    shapes = [((0.05, 0.15), (0.1, 0.6))] * args.bursty + [((2.0, 2.0), (3.0, 3.0))] * args.long
    workers = [multiprocessing.Process(target=_spin, args=(busy, idle, args.seed + index), daemon=True)
               for index, (busy, idle) in enumerate(shapes)]
    for worker in workers:
        worker.start()
    print(f"background load: {args.bursty} bursty + {args.long} long process(es); "
          f"load average {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
    try:
        return subprocess.run(command, check=False).returncode
    finally:
        for worker in workers:
            worker.terminate()


if __name__ == "__main__":
    sys.exit(main())
