"""Motivated pair vs baselines on Fashion-MNIST: does one run give both models?

For each family, with the same epochs, seeds and training images, train: the traditional base
(`never`), the standalone motivated model (`always`), the paper's paired run (`streak`), the
paper's ablations (`random`, and `matched` to the paired run's motivated count), the other
conditions, and fixed-fraction schedules with either step type (labels below). Report per
label: base and motivated test top-1 (mean ± std over seeds, full 10,000-image test set),
motivated fraction, honest training FLOPs (every pass the pair pays: both roles' steps, the
base's extra pass on joint batches, BN recalibration), wall time; and, per seed then averaged,
the paired deltas (base − `never` base, motivated − `always` motivated), cost / `always` cost and
training wall time / `always` training wall time. The row trained with the shipped defaults is
marked `"default": true`.

    python bench/pair_vs_baselines.py --family resnet --seeds 0,1,2 --epochs 10 --train-subset 60000 \
        --conditions never,always,streak,joint-p0.4

Labels: `never`, `always`, `streak`, `matched`, `random`, `ema-streak`, `slope`, `target` (one role
per batch, as before), `trend` (joint), `always-e{K}` (the motivated model alone for K epochs, its cosine
compressed to K: with `never` it makes the equal-cost `separate` rows), and
`{joint|shielded|alone}-p{P}[-ramp{R}][-start{S}][-distill][-grow][-priv][-head][-convs][-clock][-add][-clone]`:
a fixed fraction P of motivated batches (`schedule:p=P,ramp=R,start=S`: the first S of the run
trains the base alone), motivated batches joint, shielded or alone, optionally
with in-place distillation (weight 0.5, temperature 2), growth from the base (`-grow`), the
motivated role's own BN scale/shift and classifier bias (`-priv`) and classifier weight offset
(`-head`, with `-priv`) and every convolution weight offset (`-convs`, with `-priv`; resnet),
and the motivated-only weights
on their own learning-rate clock (`-clock`), additive nesting (`-add`, with --bn shared: a
shielded motivated step reuses the base's forward), growth by copying the base's channels when
the motivated model first trains (`-clone`, with `-grow`).

Several processes may run the same command side by side (one per core): each claims a run
before training it (a `claim` file with its pid; a dead owner's claim is taken over and its run
resumed), and every finished run rewrites the summary, so results land as they come in.

The training subset is class-balanced and the same for every run (drawn with --subset-seed); 10 %
of it is held out for validation, as the trainer always does. Each run lives in
WORK/<family>/e<E>-n<N>-b<B>-r<R>/<condition>/seed<S>/ (the trainer's run folder `run/` plus
`result.json`; WORK defaults to the git-ignored runs/pair_vs_baselines); a run whose
result.json exists is skipped, an interrupted one is resumed from its checkpoint. The committed
summary holds every finished run's result: a fresh checkout writes them back into WORK first, so
they are skipped too and stay in the summary. Results:
OUT/<family>/e<E>-n<N>-b<B>-r<R>/summary.{json,md}. BN statistics of each role are re-estimated
on R training batches before every evaluation (the motivated model's statistics are otherwise
stale after long runs of base steps).
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import os
import platform
import re
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import separate_curve  # bench/ is on the path when this script runs
from seekdeploy import layout
from seekdeploy._io import atomic_write_bytes, atomic_write_json, atomic_write_text
from seekdeploy.errors import SeekdeployError

DEFAULT_OUT = Path("bench/results/pair_vs_baselines")  # summaries (small, committed)
DEFAULT_WORK = Path("runs/pair_vs_baselines")  # data subset and run folders (git-ignored)
# (label, condition text) of the one-role-per-batch conditions; `matched` gets its reference (the
# same seed's streak run) at run time.
CONDITIONS: tuple[tuple[str, str], ...] = (
    ("never", "never"), ("always", "always"), ("streak", "streak:k=3,hold=1"),
    ("random", "random:p=0.3"), ("matched", "matched"), ("ema-streak", "ema-streak:k=3,hold=2"),
    ("slope", "slope:window=32,hold=1"), ("target", "target:target=0.4,hold=2"),
)
DISTILL = {"distill_weight": 0.5, "distill_temperature": 2.0}
SCHEDULE_LABEL = re.compile(r"^(joint|shielded|alone)-p([0-9.]+)(?:-ramp([0-9.]+))?"
                            r"(?:-start([0-9.]+))?(-distill)?"
                            r"((?:-(?:grow|priv|head|convs|clock|add|clone))*)$")
# Label suffix -> TrainConfig option switched on (every other run keeps them off).
VARIANT_OPTIONS = {"grow": "growth", "priv": "private_affine", "head": "private_head",
                   "convs": "private_convs", "clock": "motivated_clock", "add": "additive",
                   "clone": "clone_growth"}


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """What one label trains: the condition text and the step options."""

    condition: str
    motivated_step: str = "alone"
    distill_weight: float = 0.0
    distill_temperature: float = 1.0
    epochs: int | None = None  # None: the setting's epochs; K: `always-eK`, its cosine over K
    growth: bool = False
    private_affine: bool = False
    private_head: bool = False
    private_convs: bool = False
    motivated_clock: bool = False
    additive: bool = False
    clone_growth: bool = False


ALWAYS_SHORT = re.compile(r"^always-e([0-9]+)$")


def run_spec(label: str) -> RunSpec:
    """The RunSpec of a label (see the module docstring), or SeekdeployError naming the forms."""
    fixed = dict(CONDITIONS)
    if label in fixed:
        return RunSpec(fixed[label])
    short = ALWAYS_SHORT.match(label)
    if short:
        return RunSpec("always", epochs=int(short.group(1)))
    if label == "trend":
        return RunSpec("trend:window=256,t=2,floor=0.1,ceiling=0.6", "joint")
    match = SCHEDULE_LABEL.match(label)
    if not match:
        raise SeekdeployError(f"unknown label {label!r}; use one of {sorted(fixed)}, trend, or "
                              "always-e{K}, {joint|shielded|alone}-p{P}[-ramp{R}][-distill] (e.g. joint-p0.4)")
    step, p, ramp, start, distill, variants = match.groups()
    condition = (f"schedule:p={float(p):g}" + (f",ramp={float(ramp):g}" if ramp else "")
                 + (f",start={float(start):g}" if start else ""))
    options = {VARIANT_OPTIONS[name]: True for name in variants.split("-") if name}
    return RunSpec(condition, step, **(DISTILL if distill else {}), **options)


def is_default(spec: RunSpec) -> bool:
    """Whether a RunSpec trains with the shipped defaults of TrainConfig."""
    from seekdeploy.train.config import TrainConfig

    default = TrainConfig()
    return (spec.condition == default.condition and spec.epochs is None
            and all(getattr(spec, option) == getattr(default, option)
                    for option in VARIANT_OPTIONS.values())
            and spec.motivated_step == default.motivated_step.value
            and spec.distill_weight == default.distill_weight
            and (spec.distill_weight == 0 or spec.distill_temperature == default.distill_temperature))
IDX_NAMES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


def encode_idx(array: np.ndarray) -> bytes:
    """IDX bytes of a uint8 array: magic (0, 0, 0x08 = ubyte, ndim), big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big")
                                                          for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def balanced_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted indices of `size` samples, as equal per class as possible, drawn with `seed`."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = [size // len(classes) + (i < size % len(classes)) for i in range(len(classes))]
    chosen = [rng.choice(np.flatnonzero(labels == c), n, replace=False)
              for c, n in zip(classes, per_class)]
    return np.sort(np.concatenate(chosen))


def write_subset(out_dir: Path, size: int, seed: int, source_dir: str | None) -> Path:
    """A folder of Fashion-MNIST IDX files: `size` balanced training images, the full test set.

    Feeding the trainer a folder (its public `data_dir`) keeps every run reproducible from its
    own config; the folder is written once and reused.
    """
    from seekdeploy.data._fashion_mnist import find_files
    from seekdeploy.data._idx import read_idx
    from seekdeploy.data._locations import SYSTEM_FASHION_MNIST_DIR

    folder = out_dir / "data" / f"fashion-mnist-n{size}-s{seed}"
    if all((folder / f"{name}.gz").is_file() for name in IDX_NAMES.values()):
        return folder
    roots = [Path(source_dir)] if source_dir else [Path(SYSTEM_FASHION_MNIST_DIR)]
    files = find_files(roots)
    if files is None:
        raise SeekdeployError(f"Fashion-MNIST not found in {roots[0]}; install the Debian "
                              "package dataset-fashion-mnist or pass --data-dir")
    arrays = {key: read_idx(path) for key, path in files.items()}
    if not 10 <= size <= len(arrays["train_labels"]):
        raise SeekdeployError(f"--train-subset {size} must be in [10, "
                              f"{len(arrays['train_labels'])}]")
    keep = balanced_subset(arrays["train_labels"], size, seed)
    arrays["train_images"], arrays["train_labels"] = (arrays["train_images"][keep],
                                                      arrays["train_labels"][keep])
    for key, name in IDX_NAMES.items():
        atomic_write_bytes(folder / f"{name}.gz", gzip.compress(encode_idx(arrays[key]), 6))
    return folder


def bench_profile() -> Any:
    """The x86-cpu profile with Fashion-MNIST's native input (1 x 28 x 28)."""
    from seekdeploy.profiles.loader import load_profile

    profile = load_profile("x86-cpu")
    return dataclasses.replace(profile, input=dataclasses.replace(
        profile.input, channels=1, height=28, width=28))


def claim_run(run_root: Path) -> bool:
    """Claim a run for this process: True if it is ours to train (no live process holds it)."""
    run_root.mkdir(parents=True, exist_ok=True)
    claim = run_root / "claim"
    for _ in range(2):
        try:
            fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                owner = int(claim.read_text(encoding="utf-8") or "0")
            except (OSError, ValueError):
                owner = 0
            if owner == os.getpid():
                return True
            if owner and _alive(owner):
                return False
            claim.unlink(missing_ok=True)  # its owner died: take the run over (and resume it)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(str(os.getpid()))
        return True
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_one(run_root: Path, args: argparse.Namespace, family: str, seed: int,
            spec: RunSpec, data_dir: Path) -> dict[str, Any] | None:
    """Train (or resume, or skip) one run; its result record, or None if another process has it."""
    import json

    from rich.console import Console

    from seekdeploy.nn import default_pair
    from seekdeploy.train.config import BnMode, DeviceChoice, TrainConfig
    from seekdeploy.train.run import train_pair

    result_path = run_root / "result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text(encoding="utf-8"))
    if not claim_run(run_root):
        return None
    run_dir = run_root / "run"
    resume = (run_dir / layout.CHECKPOINT).is_file()
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir)  # died before its first checkpoint: nothing to keep
    # Pinned to the family's default pair: left open, the trainer would plan specs from the
    # profile's budgets, and every condition must train the same two models.
    _, base, motivated = default_pair(family)
    config = TrainConfig(arch=family, data="fashion-mnist", data_dir=str(data_dir),
                         base_spec=base.to_text(), motivated_spec=motivated.to_text(),
                         epochs=spec.epochs or args.epochs, batch_size=args.batch_size, lr=args.lr, seed=seed,
                         bn_recalibrate_batches=args.bn_recalibrate_batches, bn=BnMode(args.bn),
                         condition=spec.condition, motivated_step=spec.motivated_step,
                         distill_weight=spec.distill_weight,
                         distill_temperature=spec.distill_temperature, growth=spec.growth,
                         private_affine=spec.private_affine, private_head=spec.private_head,
                         private_convs=spec.private_convs,
                         motivated_clock=spec.motivated_clock, additive=spec.additive,
                         clone_growth=spec.clone_growth,
                         device=DeviceChoice.CPU)
    started, cpu_started = time.perf_counter(), time.process_time()
    summary = train_pair(None if resume else config, run_dir, profile=bench_profile(),
                         resume=resume, console=Console(stderr=True))
    result = {"family": family, "seed": seed, "condition": spec.condition,
              "run_spec": dataclasses.asdict(spec),
              "specs": {"base": base.to_text(), "motivated": motivated.to_text()},
              "test_top1": summary.test_top1, "motivated_fraction": summary.motivated_fraction,
              "train_flops": summary.train_flops, "cost_flops": summary.cost_flops,
              "standalone_motivated_flops": summary.standalone_motivated_flops,
              "train_seconds": summary.seconds,
              "wall_seconds": time.perf_counter() - started,
              "cpu_seconds": time.process_time() - cpu_started,
              "load_average_1m_at_end": os.getloadavg()[0], "resumed": resume,
              "recalibration_effect": recalibration_effect(run_dir),
              "val_top1": final_val_top1(run_dir)}
    atomic_write_json(result_path, result)
    (run_root / "claim").unlink(missing_ok=True)
    return result


def final_val_top1(run_dir: Path) -> dict[str, float]:
    """Per trained role: the validation top-1 of its last evaluated epoch (metrics.jsonl), the
    figure every selection between labels reads (the test split is only reported)."""
    import json

    path = run_dir / "metrics.jsonl"
    last: dict[str, float] = {}
    for line in path.read_text(encoding="utf-8").splitlines() if path.is_file() else ():
        record = json.loads(line)
        if record.get("val_top1") is not None:
            last[record["role"]] = record["val_top1"]
    return last


def recalibration_effect(run_dir: Path) -> dict[str, dict[str, float]]:
    """Per recalibrated role: last-epoch validation top-1 with the running BN statistics
    (`before`) and after re-estimating them (`after`), from the run's metrics.jsonl."""
    import json

    effect = {}
    path = run_dir / "metrics.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines() if path.is_file() else ():
        record = json.loads(line)
        if "val_top1_before_recalibration" in record:
            effect[record["role"]] = {"before": record["val_top1_before_recalibration"],
                                      "after": record["val_top1"]}
    return effect


def condition_spec(label: str, seed_root: dict[str, Path]) -> RunSpec:
    """The RunSpec of `label`; `matched` points at the same seed's streak run."""
    spec = run_spec(label)
    if label != "matched":
        return spec
    return dataclasses.replace(
        spec, condition=f"matched:reference={seed_root['streak'] / 'run' / 'motivation.jsonl'}")


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def summarize(results: dict[str, dict[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per label: mean ± std over seeds, and per-seed-paired deltas, cost ratio and
    training-wall-time ratio against `never` (base) and `always` (motivated, cost, time) where
    those ran for the seed."""
    rows = []
    for label, by_seed in results.items():
        seeds = sorted(by_seed)
        if not seeds:
            continue
        row: dict[str, Any] = {"condition": label, "seeds": seeds,
                               "text": by_seed[seeds[0]]["condition"],
                               "default": is_default(run_spec(label))}
        for key, pick in (("base_top1", lambda r: r["test_top1"]["base"]),
                          ("motivated_top1", lambda r: r["test_top1"]["motivated"]),
                          ("motivated_fraction", lambda r: r["motivated_fraction"]),
                          ("train_gflops", lambda r: r["train_flops"] / 1e9),
                          ("train_seconds", lambda r: r["train_seconds"]),
                          ("wall_seconds", lambda r: r["wall_seconds"])):
            row[key] = mean_std([pick(by_seed[s]) for s in seeds])
        paired = {"base_minus_never": ("never", lambda r, ref: r["test_top1"]["base"]
                                       - ref["test_top1"]["base"]),
                  "motivated_minus_always": ("always", lambda r, ref: r["test_top1"]["motivated"]
                                             - ref["test_top1"]["motivated"]),
                  "cost_vs_always": ("always", lambda r, ref: r["train_flops"]
                                     / ref["train_flops"]),
                  "wall_vs_always": ("always", lambda r, ref: r["train_seconds"]
                                     / ref["train_seconds"]),
                  "cpu_vs_always": ("always", lambda r, ref: r["cpu_seconds"] / ref["cpu_seconds"]
                                    if r.get("cpu_seconds") and ref.get("cpu_seconds") else None)}
        for key, (reference, pick) in paired.items():
            refs = results.get(reference, {})
            if key == "cost_vs_always":  # FLOPs are counted: priced even where `always` has not run
                refs = {s: ref for s in seeds
                        if (ref := separate_curve.always_reference(results, s, "flops")) is not None}
            values = [pick(by_seed[s], refs[s]) for s in seeds if s in refs]
            values = [value for value in values if value is not None]
            row[key] = mean_std(values) if values else None
        if "cpu_steps" in separate_curve.COST_AXES:
            cost = separate_curve.COST_AXES["cpu_steps"]
            row["cpu_steps_vs_always"] = mean_std([cost(by_seed[s]) for s in seeds])
        for role in ("base", "motivated"):
            values = [by_seed[s].get("val_top1", {}).get(role) for s in seeds]
            values = [value for value in values if value is not None]
            row[f"{role}_val_top1"] = mean_std(values) if values else None
        for axis in separate_curve.COST_AXES:
            baseline = label in ("never", "always") or separate_curve.ALWAYS_SHORT.match(label)
            gaps = [] if baseline else [
                gap for _, gap in separate_curve.equal_cost_gaps(results, label, axis)]
            row[f"motivated_minus_separate_{axis}"] = mean_std(gaps) if gaps else None
            row[f"motivated_minus_separate_{axis}_seeds"] = len(gaps)
        rows.append(row)
    for separate in separate_curve.separate_rows(results):
        rows.append({"condition": separate["condition"], "seeds": separate["seeds"],
                     "text": "never + " + separate["condition"].replace("separate", "always"),
                     "default": False,
                     **{key: mean_std([v for v in separate[key] if v is not None])
                        if any(v is not None for v in separate[key]) else None
                        for key in ("base_top1", "motivated_top1", "cost_vs_always",
                                    *(f"{axis}_vs_always" for axis in separate_curve.COST_AXES
                                      if axis != "flops" and f"{axis}_vs_always" in separate))}})
    return rows


def _cell(value: tuple[float, float | None] | None, scale: float = 1.0, digits: int = 1,
          signed: bool = False) -> str:
    if value is None:
        return "—"
    mean, std = value
    text = f"{mean * scale:+.{digits}f}" if signed else f"{mean * scale:.{digits}f}"
    return text + (f" ± {std * scale:.{digits}f}" if std is not None else "")


def to_markdown(rows: list[dict[str, Any]], settings: dict[str, Any]) -> str:
    """The results table (accuracies in %, deltas in percentage points)."""
    lines = [f"Fashion-MNIST, family `{settings['family']}` ({settings['base_spec']} in "
             f"{settings['motivated_spec']}), {settings['epochs']} epochs, "
             f"{settings['train_subset']} training images (90 % trained on), batch "
             f"{settings['batch_size']}, BN {settings.get('bn', 'private')}; mean ± std over "
             "the seeds of each row. Cost: honest training FLOPs / `always`'s; CPU: measured "
             "CPU seconds (1 thread) / `always`'s, same seed (moves with the load each run "
             "had); step CPU: the same runs costed with per-step CPU seconds measured side by "
             "side (bench/step_cost.py). `separate-eK`: `never` plus "
             "`always` for K epochs (cosine over K). Δ vs separate: motivated top-1 minus the "
             "separate curve's at the row's own cost (interpolated, per seed). Validation "
             "top-1 (val) is what selection reads; test top-1 is reported. **bold** = the "
             "shipped defaults.", "",
             "| label | seeds | base top-1 % | motivated top-1 % | base val % | motivated val % "
             "| motivated fraction | cost / always | CPU / always | Δ base vs never (pp) "
             "| Δ motivated vs always (pp) | Δ vs separate, FLOPs (pp) | Δ vs separate, CPU (pp) "
             "| Δ vs separate, step CPU (pp) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        label = f"**`{row['condition']}`**" if row.get("default") else f"`{row['condition']}`"
        lines.append(
            f"| {label} | {','.join(map(str, row['seeds']))} | {_cell(row['base_top1'], 100)} | "
            f"{_cell(row['motivated_top1'], 100)} | {_cell(row.get('base_val_top1'), 100)} | "
            f"{_cell(row.get('motivated_val_top1'), 100)} | "
            f"{_cell(row.get('motivated_fraction'), 1, 3)} | "
            f"{_cell(row['cost_vs_always'], 1, 2)} | {_cell(row.get('cpu_vs_always'), 1, 2)} | "
            f"{_cell(row.get('base_minus_never'), 100, 2, True)} | "
            f"{_cell(row.get('motivated_minus_always'), 100, 2, True)} | "
            f"{_cell(row.get('motivated_minus_separate_flops'), 100, 2, True)} | "
            f"{_cell(row.get('motivated_minus_separate_cpu'), 100, 2, True)} | "
            f"{_cell(row.get('motivated_minus_separate_cpu_steps'), 100, 2, True)} |")
    return "\n".join(lines) + "\n"


def describe_machine() -> dict[str, Any]:
    """CPU model, core count, load and library versions at the start of the benchmark."""
    import torch

    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").is_file():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average_1m": os.getloadavg()[0], "python": sys.version.split()[0],
            "torch": torch.__version__, "platform": platform.platform()}


def setting_name(args: argparse.Namespace) -> str:
    """The folder name of one benchmark setting (epochs, images, batch, recalibration, BN)."""
    return (f"e{args.epochs}-n{args.train_subset}-b{args.batch_size}"
            f"-r{args.bn_recalibrate_batches}" + ("-bnshared" if args.bn == "shared" else ""))


def collect_results(root: Path) -> dict[str, dict[int, dict[str, Any]]]:
    """Every finished run under a setting's work folder (any process's), by label and seed."""
    import json

    results: dict[str, dict[int, dict[str, Any]]] = {}
    for path in sorted(root.glob("*/seed*/result.json")):
        label, seed = path.parent.parent.name, int(path.parent.name.removeprefix("seed"))
        results.setdefault(label, {})[seed] = json.loads(path.read_text(encoding="utf-8"))
    order = [label for label, _ in CONDITIONS]
    return dict(sorted(results.items(), key=lambda item: (
        order.index(item[0]) if item[0] in order else len(order), item[0])))


def restore_results(args: argparse.Namespace, family: str) -> int:
    """Write back the result.json of every run the committed summary holds and the work folder
    lacks (a fresh checkout has no runs/): those runs count as finished, are skipped, and stay in
    the summary the next finished run rewrites. Returns how many were restored. To rerun one,
    delete its folder and its entry in summary.json."""
    import json

    setting = setting_name(args)
    path = args.out / family / setting / "summary.json"
    if not path.exists():
        return 0
    runs = json.loads(path.read_text(encoding="utf-8")).get("runs", {})
    restored = 0
    for label, seeds in runs.items():
        for seed, result in seeds.items():
            target = args.work / family / setting / label / f"seed{seed}" / "result.json"
            if not target.exists():
                atomic_write_json(target, result)
                restored += 1
    return restored


def write_summary(args: argparse.Namespace, family: str) -> str:
    """Rewrite OUT/<family>/<setting>/summary.{json,md} from every finished run on disk."""
    import json

    from seekdeploy.nn import default_pair

    separate_curve.use_step_cost_file(args.out.parent, family, args.epochs)  # bench/step_cost.py's, if it ran

    setting = setting_name(args)
    results = collect_results(args.work / family / setting)
    _, base, motivated = default_pair(family)
    settings = {"family": family, "epochs": args.epochs, "train_subset": args.train_subset,
                "bn_recalibrate_batches": args.bn_recalibrate_batches, "bn": args.bn,
                "subset_seed": args.subset_seed, "batch_size": args.batch_size, "lr": args.lr,
                "base_spec": base.to_text(), "motivated_spec": motivated.to_text(),
                "input": [1, 28, 28]}
    rows = summarize(results)
    table = to_markdown(rows, settings)
    # The pair labels that recorded validation figures compete; the test split is only reported.
    candidates = [label for label in results if not label.startswith(("never", "always"))
                  and separate_curve.mean_validation(results, label, "motivated") is not None]
    try:
        selected, rule = separate_curve.select_on_validation(results, candidates)
    except ValueError:  # no candidate yet, or no seed they all ran
        selected = rule = None
    if selected:
        table += validation_table(results, candidates)
        table += f"\nSelected on validation among {len(candidates)} labels ({rule}): `{selected}`.\n"
    summary_root = args.out / family / setting
    atomic_write_json(summary_root / "summary.json", {
        "settings": settings, "machine": describe_machine(), "rows": rows,
        "selected_on_validation": selected, "selection_rule": rule, "runs": results})
    atomic_write_text(summary_root / "summary.md", table)
    return table


def validation_table(results: dict[str, dict[int, dict[str, Any]]], candidates: list[str]) -> str:
    """The figures the selection reads (validation split, the seeds it reads:
    `separate_curve.selection_seeds`), one row per candidate that ran them: motivated minus base
    per seed, base minus `never`, motivated minus the separate curve at equal FLOPs and step CPU
    time, and whether that clears the bar."""
    seeds, candidates, left_out = separate_curve.selection_seeds(results, candidates)

    def pp(value: float | None) -> str:
        return "—" if value is None else f"{value * 100:+.2f}"

    lines = [f"\nValidation split, seeds {','.join(map(str, sorted(seeds)))} (what selection reads; "
             f"bar: motivated above its base on every seed and by ≥ {separate_curve.BAR_GAIN * 100:.1f} pp "
             f"on average, base ≥ `never` − {separate_curve.BASE_SLACK * 100:.1f} pp, motivated ≥ the "
             "separate curve at equal FLOPs and step CPU):\n",
             "| label | motivated − base, per seed (pp) | mean (pp) | base − never (pp) "
             "| Δ vs separate, FLOPs (pp) | Δ vs separate, step CPU (pp) | clears the bar |",
             "|---|---|---|---|---|---|---|"]
    for label in candidates:
        bar = separate_curve.bar_figures(results, label, seeds)
        gains = bar["gains"]
        lines.append(f"| `{label}` | {', '.join(pp(gains[s]) for s in sorted(gains))} | "
                     f"{pp(statistics.fmean(gains.values()))} | {pp(bar['base_gap'])} | "
                     f"{pp(bar['separate'].get('flops'))} | {pp(bar['separate'].get('cpu_steps'))} | "
                     f"{'yes' if bar['cleared'] else 'no'} |")
    if left_out:
        lines.append(f"\nNot judged yet (lacking some of those seeds): {', '.join(f'`{label}`' for label in left_out)}.")
    return "\n".join(lines) + "\n"


def run_family(args: argparse.Namespace, family: str, labels: list[str]) -> None:
    """All runs of one family this process can claim (streak before matched), the summary
    rewritten after each one that finishes."""
    root = args.work / family / setting_name(args)
    data_dir = write_subset(args.work, args.train_subset, args.subset_seed, args.data_dir)
    for seed in args.seeds:
        seed_root = {label: root / label / f"seed{seed}" for label in labels}
        for label in labels:
            if label == "matched" and not (seed_root["streak"] / "result.json").is_file():
                print(f"[{family} seed {seed}] matched waits for streak", file=sys.stderr)
                continue
            print(f"[{family} seed {seed}] {label}", file=sys.stderr, flush=True)
            result = run_one(seed_root[label], args, family, seed,
                             condition_spec(label, seed_root), data_dir)
            if result is not None:
                write_summary(args, family)
    print(write_summary(args, family))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="resnet",
                        help="comma-separated model families (resnet, mbconv, vit)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-subset", type=int, default=6000,
                        help="class-balanced training images (10 %% become validation)")
    parser.add_argument("--subset-seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--bn", choices=("private", "shared"), default="private",
                        help="BatchNorm statistics per role (private) or one set for both (shared)")
    parser.add_argument("--bn-recalibrate-batches", type=int, default=20,
                        help="training batches that re-estimate each role's BN statistics "
                             "before every evaluation (0 = off)")
    parser.add_argument("--conditions", default=",".join(label for label, _ in CONDITIONS),
                        help="comma-separated labels (see the module docstring), run in order")
    parser.add_argument("--summary-only", action="store_true",
                        help="train nothing: rewrite the summaries from the finished runs on disk")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1 is fastest on a shared 2-core machine)")
    parser.add_argument("--data-dir", default=None, help="folder with the Fashion-MNIST IDX files")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="summary.{json,md} root")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK,
                        help="root of the data subset and the run folders (resumable)")
    args = parser.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    args.families = [f.strip() for f in args.family.split(",") if f.strip()]
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every requested family; exit 1 with one line on a user error."""
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    labels = [c.strip() for c in args.conditions.split(",") if c.strip()]
    try:
        for label in labels:
            run_spec(label)  # unknown labels fail before anything runs
        if "matched" in labels and "streak" not in labels:
            raise SeekdeployError("`matched` needs the `streak` run of the same seed; "
                                  "add streak to --conditions")
        for family in args.families:
            restored = restore_results(args, family)
            if restored:
                print(f"{family}: {restored} finished runs restored from the committed summary",
                      file=sys.stderr)
            if args.summary_only:
                print(write_summary(args, family))
            else:
                run_family(args, family, labels)
    except SeekdeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
