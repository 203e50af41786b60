"""GPU check: the CUDA code paths no CPU test reaches, in one script of a few minutes.

    python bench/gpu_check.py [--out bench/results/gpu_check.json] [--keep DIR]

1. amp-step-<family> (resnet, mbconv, vit): a run built by seekdeploy's own `start_run` on CUDA
   (AMP in bf16 where the GPU has it, else fp16 with a GradScaler), one base step, one motivated
   step and one more base step through `loop.train_step`: every loss finite, the weights stay
   float32, a step changes the weights, and a base step leaves every element outside the base
   slice bit-for-bit unchanged (the method's invariant, under AMP).
2. amp-step-resnet-fp16-scaler: the same with fp16 autocast and an enabled GradScaler forced, the
   path GPUs without bf16 take (scaled backward, unscale, skipped steps, `regions=` forwarded).
3. adamw-resume: AdamW on CUDA, stopped by a real SIGINT in its second epoch (checkpoint saved),
   rebuilt by `resume_session` (every optimizer state tensor must sit on its parameter's device),
   then finished by `python -m seekdeploy train --resume RUN` in a fresh process.
4. cuda-event-timing: a static model in the `TorchRunner` on CUDA, timed by `runtime.timing.measure`
   with CUDA events recorded by `runtime._cuda.CudaRuntime` (the ctypes libcudart wrapper the
   TensorRT runner uses) as `device_time_ms`; the device time must be positive and not exceed
   the host-side sample.

The last line is the verdict: `GPU CHECK PASSED`, `GPU CHECK FAILED: <checks>`, or
`GPU CHECK SKIPPED: no CUDA device` (exit 0, 1, 0). Results go to `--out` as JSON.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FAMILIES = ("resnet", "mbconv", "vit")
INPUT = SimpleNamespace(channels=3, height=32, width=32)  # the shipped profiles' input
RESUME_TIMEOUT_S = 300


class _Quiet:
    """A progress display that shows nothing; optionally SIGINTs this process at a given step."""

    def __init__(self, signal_at_step: int | None = None) -> None:
        self.signal_at_step, self.steps = signal_at_step, 0

    def update_step(self, *args: object) -> None:
        self.steps += 1
        if self.steps == self.signal_at_step:
            os.kill(os.getpid(), signal.SIGINT)

    def log(self, text: str) -> None:
        pass


def _config(arch: str, **overrides: Any) -> Any:
    from seekdeploy.train.config import TrainConfig

    settings = {"arch": arch, "data": "digits", "epochs": 1, "batch_size": 64, "seed": 0,
                "condition": "random:p=0.5", "device": "cuda", **overrides}
    return TrainConfig(**settings)


def _start(run_dir: Path, config: Any) -> Any:
    from seekdeploy.train.run import start_run

    return start_run(config, run_dir, profile=SimpleNamespace(name="gpu-check", input=INPUT))


def _outside_region_unchanged(before: dict[str, Any], session: Any) -> list[str]:
    """Names of parameters changed outside the base slice by a base step."""
    import torch

    from seekdeploy.roles import Role

    regions = session.regions[Role.BASE]
    changed = []
    for name, param in session.supernet.named_parameters():
        outside = torch.ones_like(param, dtype=torch.bool)
        region = regions.get(param)
        if region is not None:
            outside[region] = False
        if not torch.equal(before[name][outside], param.detach()[outside]):
            changed.append(name)
    return changed


def _steps(session: Any, roles: list[Any]) -> dict[str, Any]:
    """Run `roles` steps on the first batches; check finiteness, dtype, progress and the invariant."""
    import torch

    from seekdeploy.roles import Role
    from seekdeploy.train.loop import train_step

    train = session.dataset.train
    batch = session.config.batch_size
    start = {n: p.detach().clone() for n, p in session.supernet.named_parameters()}
    losses, violations = [], []
    for index, role in enumerate(roles):
        images = train.images[index * batch:(index + 1) * batch].to(session.device)  # (B, C, H, W)
        labels = train.labels[index * batch:(index + 1) * batch].to(session.device)
        before = {n: p.detach().clone() for n, p in session.supernet.named_parameters()}
        values = train_step(session, images, labels, role)  # raises TrainingDiverged on NaN/inf
        losses.append({r.value: v for r, v in values.items()})
        if role is Role.BASE:
            violations += _outside_region_unchanged(before, session)
    torch.cuda.synchronize()
    params = list(session.supernet.named_parameters())
    moved = sum(not torch.equal(start[n], p.detach()) for n, p in params)
    dtypes = sorted({str(p.dtype) for _, p in params})
    devices = sorted({p.device.type for _, p in params})
    problems = []
    if violations:
        problems.append(f"base steps changed weights outside the base slice: {violations[:3]}")
    if moved == 0:
        problems.append("no weight changed")
    if dtypes != ["torch.float32"] or devices != ["cuda"]:
        problems.append(f"weights are {dtypes} on {devices}, not float32 on cuda")
    return {"ok": not problems, "problems": problems, "losses": losses,
            "amp_dtype": str(session.amp_dtype), "scaler_enabled": session.scaler.is_enabled(),
            "scale": float(session.scaler.get_scale()) if session.scaler.is_enabled() else None,
            "params_moved": moved, "params": len(params)}


def check_amp_step(arch: str, work: Path) -> dict[str, Any]:
    """One family: base, motivated, base step under the session's own AMP settings."""
    from seekdeploy.roles import Role

    session = _start(work / f"amp-{arch}", _config(arch))
    if session.amp_dtype is None or session.device.type != "cuda":
        return {"ok": False, "problems": [f"session on {session.device} with amp {session.amp_dtype}"]}
    return _steps(session, [Role.BASE, Role.MOTIVATED, Role.BASE])


def check_fp16_scaler(work: Path) -> dict[str, Any]:
    """resnet with fp16 autocast and an enabled GradScaler (what a GPU without bf16 runs)."""
    import torch

    from seekdeploy.roles import Role

    session = _start(work / "amp-fp16", _config("resnet"))
    session.amp_dtype = torch.float16
    session.scaler = torch.amp.GradScaler("cuda", enabled=True)
    result = _steps(session, [Role.BASE, Role.MOTIVATED] * 3)
    if not result["scale"] or result["scale"] != result["scale"]:  # 0 or NaN: the scaler broke
        result["ok"] = False
        result["problems"].append(f"GradScaler scale is {result['scale']}")
    return result


def _state_off_device(session: Any) -> list[str]:
    """Optimizer state tensors not on (or not shaped/typed like) their parameter's device."""
    import torch

    names = {id(p): n for n, p in session.supernet.named_parameters()}
    wrong = []
    for param, state in session.optimizer.state.items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.device != param.device:
                wrong.append(f"{names.get(id(param), '?')}.{key} on {value.device}")
    return wrong


def check_adamw_resume(work: Path) -> dict[str, Any]:
    """AdamW on CUDA: SIGINT in epoch 2, resume_session's state devices, then `train --resume`."""
    from seekdeploy import layout
    from seekdeploy.train import checkpoint as ckpt
    from seekdeploy.train._signals import TrainingInterrupted
    from seekdeploy.train.loop import run_training
    from seekdeploy.train.session import resume_session

    run_dir = work / "adamw"
    config = _config("resnet", epochs=2, optimizer="adamw", lr=0.002, weight_decay=0.05,
                     condition="random:p=0.3")
    session = _start(run_dir, config)
    stop_at = session.steps_per_epoch + 3  # three steps into the second epoch
    try:
        run_training(session, _Quiet(signal_at_step=stop_at))
        return {"ok": False, "problems": ["the SIGINT did not stop training"]}
    except TrainingInterrupted:
        pass
    resumed = resume_session(run_dir)
    problems = [f"resumed on {resumed.device}"] if resumed.device.type != "cuda" else []
    off = _state_off_device(resumed)
    if off:
        problems.append(f"{len(off)} optimizer state tensors off their parameter's device, "
                        f"e.g. {off[:3]}")
    del resumed
    process = subprocess.run([sys.executable, "-m", "seekdeploy", "train", "--resume", str(run_dir)],
                             capture_output=True, text=True, timeout=RESUME_TIMEOUT_S, cwd=REPO)
    if process.returncode != 0:
        tail = (process.stderr or process.stdout).strip().splitlines()[-3:]
        problems.append(f"train --resume exited {process.returncode}: {' | '.join(tail)}")
    payload = ckpt.read_checkpoint(run_dir / layout.CHECKPOINT)
    progress = payload["progress"]
    if process.returncode == 0 and (progress["epoch"] != 2 or not progress["finished"]):
        problems.append(f"the resumed run ended at epoch {progress['epoch']}, "
                        f"finished={progress['finished']}")
    return {"ok": not problems, "problems": problems, "stopped_at_step": stop_at,
            "final_epoch": progress["epoch"], "saved_device": payload["config"].get("device")}


def _event_timer(cuda: Any) -> tuple[Callable[[], None], Callable[[], None], Callable[[], float]]:
    """(record start, record end, elapsed ms) on the legacy default stream (0), torch's stream."""
    start, end = cuda.event_create(), cuda.event_create()
    return (lambda: cuda.event_record(start, 0), lambda: cuda.event_record(end, 0),
            lambda: cuda.event_elapsed_ms(start, end))


def check_event_timing(work: Path) -> dict[str, Any]:
    """The TorchRunner on CUDA timed by `measure`, with libcudart events as the device time."""
    import numpy as np
    import torch

    from seekdeploy.nn import to_static
    from seekdeploy.roles import Role
    from seekdeploy.runtime._cuda import CudaRuntime
    from seekdeploy.backends.torch import TorchRunner
    from seekdeploy.runtime.timing import ProtocolSettings, measure

    if torch.cuda.current_stream().cuda_stream != 0:
        return {"ok": False, "problems": ["torch's current stream is not the default stream"]}
    session = _start(work / "timing", _config("resnet"))
    model = to_static(session.supernet, session.specs[Role.MOTIVATED], "motivated")
    cuda = CudaRuntime()
    record_start, record_end, elapsed_ms = _event_timer(cuda)
    feed = {"input": np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)}
    with TorchRunner(model, device="cuda") as runner:
        def infer() -> None:
            record_start()
            runner.infer(feed)  # H2D copy, forward, D2H copy: all on stream 0
            record_end()

        protocol = ProtocolSettings(warmup_ms=300, warmup_iterations=20, duration_ms=2000,
                                    min_iterations=200)
        stats = measure(infer, protocol, sync=runner.sync, batch=8, device_time_ms=elapsed_ms)
    device = stats.device_compute
    problems = []
    if device is None or not device.median_ms > 0:
        problems.append(f"no positive CUDA-event time ({device})")
    elif device.median_ms > stats.median_ms * 1.05:
        problems.append(f"device time {device.median_ms:.3f} ms exceeds the host sample "
                        f"{stats.median_ms:.3f} ms")
    return {"ok": not problems, "problems": problems, "iterations": stats.iterations,
            "host_median_ms": stats.median_ms, "host_p95_ms": stats.p95_ms,
            "device_median_ms": device.median_ms if device else None}


def run_checks(work: Path) -> dict[str, dict[str, Any]]:
    """Run every check; an exception fails its check (with the traceback's last line) only."""
    checks: dict[str, Callable[[], dict[str, Any]]] = {
        **{f"amp-step-{arch}": (lambda arch=arch: check_amp_step(arch, work)) for arch in FAMILIES},
        "amp-step-resnet-fp16-scaler": lambda: check_fp16_scaler(work),
        "adamw-resume": lambda: check_adamw_resume(work),
        "cuda-event-timing": lambda: check_event_timing(work),
    }
    results = {}
    for name, check in checks.items():
        started = time.perf_counter()
        try:
            result = check()
        except Exception as exc:  # a bench: report every failure and keep checking the rest
            result = {"ok": False, "problems": [f"{type(exc).__name__}: {exc}"],
                      "traceback": traceback.format_exc()}
        result["seconds"] = round(time.perf_counter() - started, 2)
        results[name] = result
        status = "ok  " if result["ok"] else "FAIL"
        detail = "; ".join(result["problems"]) or _summary(result)
        print(f"{status} {name:<28} {result['seconds']:7.2f} s  {detail}", flush=True)
    return results


def _summary(result: dict[str, Any]) -> str:
    keys = ("amp_dtype", "scale", "params_moved", "final_epoch", "host_median_ms", "device_median_ms")
    return ", ".join(f"{key}={result[key]}" for key in keys if result.get(key) is not None)


def _environment() -> dict[str, Any]:
    import torch

    return {"torch": torch.__version__, "cuda_build": torch.version.cuda,
            "device": torch.cuda.get_device_name(0), "capability": list(torch.cuda.get_device_capability(0)),
            "bf16": torch.cuda.is_bf16_supported()}


def main(argv: list[str] | None = None) -> int:
    """Run the checks (or say why not); print one verdict line; 0 passed or skipped, 1 failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu_check.json")
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temp one)")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print(f"torch {torch.__version__} (CUDA build {torch.version.cuda}): "
              "torch.cuda.is_available() is False")
        print("GPU CHECK SKIPPED: no CUDA device")
        return 0
    environment = _environment()
    print(", ".join(f"{key} {value}" for key, value in environment.items()), flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as temp:
        work = args.keep or Path(temp)
        work.mkdir(parents=True, exist_ok=True)
        results = run_checks(work)
    from seekdeploy._io import atomic_write_json

    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, {"environment": environment, "checks": results})
    failed = [name for name, result in results.items() if not result["ok"]]
    print(f"GPU CHECK FAILED: {', '.join(failed)}" if failed else
          f"GPU CHECK PASSED: {len(results)} checks on {environment['device']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
