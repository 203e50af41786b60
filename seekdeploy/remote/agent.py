#!/usr/bin/env python3
"""seekdeploy's standalone latency agent: runs on the device, prints nothing but the results JSON.

Copied over SSH beside `timing.py`, `environment.py`, `result_schema.py` and the runtime's own
`agent_<runtime>.py` from `seekdeploy/backends/` (plus `_cuda.py` for TensorRT), then run as::

    python3 agent.py --model model.onnx --runtime onnxruntime --providers CPUExecutionProvider \
        --threads 4 --batch 1 --input-shape 3,32,32 --warmup-ms 200 --duration-ms 1000 \
        --output results.json

It needs only the standard library, numpy and the runtime (onnxruntime, OpenVINO, or TensorRT with
libcudart or `trtexec`) — never torch and never seekdeploy itself — so a bare device with JetPack or
`pip install onnxruntime` can run it. The result is built by the same `build_model_result` the
local runner uses, so both have one schema. Exit codes: 0 ok, 2 bad arguments, 3 a module is
missing (stderr line `seekdeploy-agent: missing-module NAME`), 4 the model could not be measured
(stderr line `seekdeploy-agent: error MESSAGE`).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MISSING_MODULE_TAG = "seekdeploy-agent: missing-module "
ERROR_TAG = "seekdeploy-agent: error "
EXIT_MISSING_MODULE = 3
EXIT_FAILED = 4


class AgentError(Exception):
    """The model could not be loaded, built or measured; the message says why."""


def import_required(name: str):
    """Import `name` or exit with the tagged missing-module line the caller parses."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        sys.stderr.write(f"{MISSING_MODULE_TAG}{name} ({exc})\n")
        sys.exit(EXIT_MISSING_MODULE)


def parse_dims(text: str, what: str) -> list[int]:
    """'3,32,32' -> [3, 32, 32]; argparse turns a ValueError into a usage error."""
    try:
        dims = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be comma-separated integers, got {text!r}")
    if not dims or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"{what} must be positive integers, got {text!r}")
    return dims


def build_parser() -> argparse.ArgumentParser:
    """The agent's command line."""
    parser = argparse.ArgumentParser(prog="agent.py", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--model", required=True, help="the ONNX model to measure")
    shipped = runtimes_here()
    add("--runtime", choices=shipped, default="onnxruntime" if "onnxruntime" in shipped else shipped[0])
    add("--providers", default="CPUExecutionProvider", help="comma-separated onnxruntime providers")
    add("--threads", type=int, default=0, help="intra-op threads (0 = the runtime's default)")
    add("--batch", type=int, default=1)
    add("--input-shape", type=lambda t: parse_dims(t, "--input-shape"), default=[3, 32, 32],
        help="C,H,W (or B,C,H,W with B equal to --batch)")
    add("--warmup-ms", type=float, default=200.0)
    add("--warmup-iterations", type=int, default=10)
    add("--duration-ms", type=float, default=1000.0)
    add("--min-iterations", type=int, default=50)
    add("--repeats", type=int, default=1, help="timed windows; the quietest (lowest median) is reported")
    add("--sweep-batches", type=lambda t: parse_dims(t, "--sweep-batches"), default=None)
    add("--role", default=None)
    add("--host", default="local", help="how the result names this device")
    add("--precision", choices=("fp32", "fp16", "int8"), default=None)
    add("--output", default=None, help="write the JSON here instead of stdout")
    add("--profile-name", default="device", help="TensorRT: the profile named in the engine file")
    add("--calibration-cache", default=None, help="TensorRT INT8: calibration cache from export")
    add("--workspace-mib", type=int, default=1024, help="TensorRT builder workspace limit")
    add("--trtexec", default=None, help="TensorRT: path of trtexec (default: found on PATH)")
    return parser


def input_shape_of(args: argparse.Namespace, batch: int) -> list[int]:
    """The full NCHW shape for `batch` from --input-shape."""
    dims = list(args.input_shape)
    if len(dims) == 4:
        if dims[0] != args.batch:
            raise AgentError(f"--input-shape batch {dims[0]} differs from --batch {args.batch}")
        dims = dims[1:]
    return [int(batch), *dims]


def protocol_of(args: argparse.Namespace, timing):
    """The measurement protocol from the command line."""
    return timing.ProtocolSettings(
        warmup_ms=args.warmup_ms, warmup_iterations=args.warmup_iterations,
        duration_ms=args.duration_ms, min_iterations=args.min_iterations,
    )  # fmt: skip


def as_windows(runs: list, timing) -> list:
    """The timed windows as `TimedWindow`s (the TensorRT path returns bare `LatencyStats`)."""
    return [run if isinstance(run, timing.TimedWindow) else timing.TimedWindow(run) for run in runs]


def sha256_of(path: str) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def runtimes_here() -> list[str]:
    """The runtimes whose device-side module (`agent_<runtime>.py`) was shipped beside this file."""
    names = [name[len("agent_"):-len(".py")] for name in os.listdir(HERE)
             if name.startswith("agent_") and name.endswith(".py")]  # fmt: skip
    return sorted(names) or ["onnxruntime"]


def measure_with(args: argparse.Namespace, timing, numpy, watch_load) -> dict:
    """Import the runtime's modules (a missing one exits with the tagged line), then time the model
    with its `agent_<runtime>.py`; that module's `MeasureError` becomes `AgentError`."""
    backend = importlib.import_module(f"agent_{args.runtime}")  # shipped beside this file
    for name in backend.REQUIRED_MODULES:
        import_required(name)
    try:
        return backend.measure(args, timing, numpy, protocol_of(args, timing), input_shape_of, watch_load)
    except backend.MeasureError as exc:
        raise AgentError(str(exc))


def build_result(args: argparse.Namespace, measured: dict, timing, environment, schema) -> dict:
    """The results JSON through the shared builder (identical schema to a local run): every window,
    and the quietest one (lowest median) reported, as a local run does."""
    windows = as_windows(measured["runs"], timing)
    reported = windows[timing.quietest_index([window.stats.median_ms for window in windows])].stats
    sweep = None
    if args.sweep_batches:
        sweep = [schema.build_sweep_entry(input_shape_of(args, b), stats.to_json(), None)
                 for b, stats in measured["sweep"]]  # fmt: skip
    model_file = measured["model_file"]
    return schema.build_model_result(
        role=args.role, model_file=os.path.basename(model_file), runtime=args.runtime,
        providers=measured["providers"], threads=args.threads,
        input_shape=input_shape_of(args, args.batch), protocol=protocol_of(args, timing).to_json(),
        latency=reported.to_json(), repeats=[window.to_json() for window in windows],
        environment=environment.collect_environment(args.runtime, measured["providers"], args.threads),
        peak_memory_mib=measured["peak_memory_mib"],
        file_size_mib=os.path.getsize(model_file) / (1024.0 * 1024.0), sweep=sweep,
        precision=args.precision, model_sha256=sha256_of(model_file), host=args.host,
    )  # fmt: skip


def write_output(result: dict, output: str | None) -> None:
    """Write the JSON atomically to `output`, or to stdout when no file is given."""
    text = json.dumps(result) + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    temporary = output + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, output)


def main(argv: list[str] | None = None) -> int:
    """Parse, import the runtime, measure, write the JSON; tagged errors for the caller."""
    args = build_parser().parse_args(argv)
    if not os.path.isfile(args.model):
        sys.stderr.write(f"{ERROR_TAG}model file {args.model} does not exist\n")
        return EXIT_FAILED
    numpy = import_required("numpy")
    sys.path.insert(0, HERE)  # the shipped runtime modules live beside this file
    timing = importlib.import_module("timing")
    environment = importlib.import_module("environment")
    schema = importlib.import_module("result_schema")
    try:
        measured = measure_with(args, timing, numpy, environment.watch_load)
        result = build_result(args, measured, timing, environment, schema)
    except AgentError as exc:
        sys.stderr.write(f"{ERROR_TAG}{exc}\n")
        return EXIT_FAILED
    write_output(result, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
