"""The agent's OpenVINO path: compile the exported ONNX with OpenVINO and time it with the protocol.

Standalone (standard library + numpy + openvino; shipped beside `agent.py` and `timing.py`): it
cannot import seekdeploy. seekdeploy's own `OpenVinoRunner` (`seekdeploy.backends.openvino`)
compiles through `compile_onnx` here too, so a model runs the same way in the agent, in-process
and in the export's parity proof.

OpenVINO reads the ONNX file directly (fp32, fp16 or INT8 QDQ, which its CPU plugin executes in
int8). The CPU plugin is told to compute in f32: on CPUs with AVX512-BF16 or AMX it would
otherwise silently run fp32 models in bfloat16, which is not the model that was proven.
"""

from __future__ import annotations

import importlib
import os

DEVICE = "CPU"
# Latency hint: one stream, all cores on one request (the batch-1 edge case seekdeploy measures).
BASE_CONFIG = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}


REQUIRED_MODULES = ("openvino",)


class OpenVinoAgentError(Exception):
    """The model could not be read, compiled or run by OpenVINO; the message says why."""


MeasureError = OpenVinoAgentError  # what agent.py catches from `measure`


def compile_onnx(path: str, threads: int = 0, openvino=None, input_shape=None):
    """Read and compile an ONNX file for the CPU; returns OpenVINO's CompiledModel.

    `threads` 0 leaves OpenVINO's default (every core). `input_shape` (B, C, H, W) fixes the input
    to that static shape before compiling, as OpenVINO deployments do (its CPU plugin runs a
    dynamic batch markedly slower); None keeps the file's shape. `openvino` is the imported module
    (the caller imports it so that a missing package is reported the caller's way).
    """
    ov = openvino or importlib.import_module("openvino")
    config = dict(BASE_CONFIG)
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    name = os.path.basename(path)
    core = ov.Core()
    try:
        model = core.read_model(path)
    except Exception as exc:  # OpenVINO raises RuntimeError and its own types for unreadable models
        raise OpenVinoAgentError(f"OpenVINO cannot read {name}: {exc}")
    try:
        if input_shape is not None:
            model.reshape({model.inputs[0].get_any_name(): [int(d) for d in input_shape]})
        return core.compile_model(model, DEVICE, config)
    except Exception as exc:  # ditto for unsupported operators or options
        raise OpenVinoAgentError(f"OpenVINO cannot compile {name} for {DEVICE}: {exc}")


def input_name_of(compiled) -> str:
    """The model's (single) input name."""
    return compiled.inputs[0].get_any_name()


def run_request(request, compiled, feed: dict, copy: bool = True) -> list:
    """Run one inference of `feed` (name -> array) on `request`; the outputs as numpy arrays.

    Without `copy` the arrays share the request's output buffers (the next run overwrites them),
    which is what a timing loop wants.
    """
    try:
        results = request.infer(feed)
    except Exception as exc:  # shape or type mismatch, reported by OpenVINO as RuntimeError
        raise OpenVinoAgentError(f"OpenVINO cannot run the model on input "
                                 f"{[list(v.shape) for v in feed.values()]}: {exc}")
    return [results[output].copy() if copy else results[output] for output in compiled.outputs]


def version_of(openvino) -> str:
    """OpenVINO's version string, e.g. '2024.6.0-17404-...'."""
    getter = getattr(openvino, "get_version", None)
    return str(getter() if getter else getattr(openvino, "__version__", "unknown"))


def measure(args, timing, numpy, protocol, input_shape_of, watch_load=None) -> dict:
    """Compile `args.model` with OpenVINO and time it under `protocol` (and each
    `args.sweep_batches`); returns the agent's `measured` dict. (`watch_load` is unused: OpenVINO
    windows are timed one by one.)"""
    openvino = importlib.import_module("openvino")
    timing.reset_peak_rss()  # the peak then covers this model's load and runs, not the imports
    rng = numpy.random.default_rng(0)

    def time_batch(batch: int, repeats: int) -> list:
        shape = input_shape_of(args, batch)
        compiled = compile_onnx(args.model, args.threads, openvino, shape)  # static, per batch
        request, name = compiled.create_infer_request(), input_name_of(compiled)
        run_request(request, compiled, {name: numpy.zeros(shape, numpy.float32)})  # fail fast
        feed = {name: rng.standard_normal(shape).astype(numpy.float32)}
        return [timing.measure(lambda: run_request(request, compiled, feed, copy=False), protocol, batch=batch)
                for _ in range(repeats)]  # fmt: skip

    runs = time_batch(args.batch, max(1, args.repeats))
    sweep = [(b, time_batch(b, 1)[0]) for b in (args.sweep_batches or [])]
    return {"runs": runs, "sweep": sweep, "providers": [f"openvino-{DEVICE}"],
            "model_file": args.model, "peak_memory_mib": timing.peak_rss_mib()}  # fmt: skip
