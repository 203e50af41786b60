"""Data-parallel throughput: training samples/s of `seekdeploy train` in 1 process vs N under torchrun.

Every configuration trains the same pair on digits with the same global batch and a seeded
`random` condition (the same role sequence whatever the world size, so each does the same work).
Throughput is global samples / the training seconds recorded in metrics.jsonl (the step loop
only: no process start-up, data loading or evaluation). Configurations: 1 process with 1 thread,
1 process with N threads (the fair single-process baseline on N cores), N processes × 1 thread.

    python bench/ddp_throughput.py [--nproc 2] [--epochs 2] [--batch-size 64]
                                   [--out bench/results/ddp_throughput.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from seekdeploy._io import atomic_write_json

SPECS = ["--arch", "resnet", "--base", "depth=1,1,1;width=8,16,32",
         "--motivated", "depth=2,2,2;width=16,32,64"]


def train_seconds(run_dir: Path) -> tuple[float, int]:
    """(training seconds summed over epochs, steps) of a finished run."""
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    seconds = sum(m["seconds"] for m in metrics if m["role"] == "base")
    steps = json.loads((run_dir / "manifest.json").read_text())["final"]["steps"]
    return seconds, steps


def run_config(processes: int, threads: int, args: argparse.Namespace, root: Path) -> dict:
    """Train once with `processes` ranks of `threads` threads; return the measured throughput."""
    run_dir = root / f"p{processes}-t{threads}"
    train = ["train", "--profile", "x86-cpu", *SPECS, "--data", "digits", "--epochs",
             str(args.epochs), "--batch-size", str(args.batch_size), "--condition",
             "random:p=0.25", "--bn-recalibrate", "0", "--device", "cpu", "--out", str(run_dir)]
    if processes == 1:
        command = [sys.executable, "-m", "seekdeploy", *train]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc-per-node", str(processes), "-m", "seekdeploy", *train]
    env = {key: value for key, value in os.environ.items()
           if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    seconds, steps = train_seconds(run_dir)
    samples = steps * args.batch_size
    return {"processes": processes, "threads_per_process": threads, "steps": steps,
            "samples": samples, "train_seconds": round(seconds, 3),
            "samples_per_s": round(samples / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default="bench/results/ddp_throughput.json")
    args = parser.parse_args()
    configs = [(1, 1), (1, args.nproc), (args.nproc, 1)]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_config(processes, threads, args, Path(tmp)) for processes, threads in configs]
    baseline = rows[0]["samples_per_s"]
    print(f"{'processes':>9} {'threads':>7} {'steps':>5} {'train s':>8} {'samples/s':>10} {'speed-up':>8}")
    for row in rows:
        row["speedup_vs_1x1"] = round(row["samples_per_s"] / baseline, 2)
        print(f"{row['processes']:>9} {row['threads_per_process']:>7} {row['steps']:>5} "
              f"{row['train_seconds']:>8.2f} {row['samples_per_s']:>10.1f} {row['speedup_vs_1x1']:>7.2f}x")
    result = {"benchmark": "ddp_throughput", "global_batch": args.batch_size, "epochs": args.epochs,
              "specs": SPECS, "cpu_count": os.cpu_count(), "platform": platform.platform(),
              "load_average_1min": os.getloadavg()[0], "rows": rows}
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
