"""The agent's onnxruntime path: load the ONNX model in onnxruntime and time it with the protocol.

Standalone (standard library + numpy + onnxruntime; shipped beside `agent.py` and `timing.py`): it
cannot import seekdeploy. seekdeploy's own `OnnxRuntimeRunner`, the export's parity proof and the
report's scoring open their sessions with `session_arguments` from here too, so a model runs the
same way on a device, at home and in the proof.
"""

from __future__ import annotations

import importlib
import os

REQUIRED_MODULES = ("onnxruntime",)
# onnxruntime 1.32's MatmulTransposeFusion segfaults the whole process while loading some fp16
# attention graphs; the fusion changes speed, not which function the graph computes.
ORT_DISABLED_OPTIMIZERS = ("MatmulTransposeFusion",)


class OnnxRuntimeAgentError(Exception):
    """The model could not be loaded or run by onnxruntime; the message says why."""


MeasureError = OnnxRuntimeAgentError  # what agent.py catches from `measure`


def disabled_optimizers(model_path: str, precision=None) -> list:
    """Graph optimizers to switch off for this model: MatmulTransposeFusion for fp16 models (the
    profile's precision says fp16, or the file is `*.fp16.onnx`)."""
    fp16 = precision == "fp16" or os.path.basename(str(model_path)).endswith(".fp16.onnx")
    return list(ORT_DISABLED_OPTIMIZERS) if fp16 else []


def session_arguments(ort, model_path: str, threads: int = 0, precision=None) -> dict:
    """The keyword arguments of `ort.InferenceSession` for the model at `model_path`: every graph
    optimization on, `threads` intra-op threads (0 = one per physical core), errors-only logging,
    and the optimizers this model must not run. The one definition of how seekdeploy loads a model
    in onnxruntime: this agent, the `OnnxRuntimeRunner`, the export's parity proof and the
    report's scoring all open their sessions with it, so what is proven is what runs."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = int(threads)
    options.log_severity_level = 3  # errors only: warnings would interleave with the output
    return {"sess_options": options, "disabled_optimizers": disabled_optimizers(model_path, precision)}


def measure(args, timing, numpy, protocol, input_shape_of, watch_load=None) -> dict:
    """Load `args.model`, time it in `--repeats` windows (each with the machine's load, read by
    `watch_load` around it), sweep batches if asked; returns the agent's `measured` dict."""
    ort = importlib.import_module("onnxruntime")
    providers = [p for p in args.providers.split(",") if p]
    available = ort.get_available_providers()
    unknown = [p for p in providers if p not in available]
    if unknown:
        raise OnnxRuntimeAgentError(f"execution provider(s) {unknown} not available in this onnxruntime "
                                    f"build; it has {available}")
    timing.reset_peak_rss()  # the peak then covers this model's load and runs, not the imports
    name = os.path.basename(args.model)
    try:
        session = ort.InferenceSession(args.model, providers=providers,
                                       **session_arguments(ort, args.model, args.threads, args.precision))
    except Exception as exc:  # onnxruntime's own error types vary by version
        raise OnnxRuntimeAgentError(f"onnxruntime cannot load {name}: {exc}")
    input_name = session.get_inputs()[0].name
    rng = numpy.random.default_rng(0)
    try:  # fail fast, with a message, on an input the model cannot take
        session.run(None, {input_name: numpy.zeros(input_shape_of(args, args.batch), numpy.float32)})
    except Exception as exc:  # onnxruntime's own error types vary by version
        raise OnnxRuntimeAgentError(f"onnxruntime cannot run {name} on input "
                                    f"{input_shape_of(args, args.batch)}: {exc}")

    def time_batch(batch: int, windows: int) -> list:
        feed = {input_name: rng.standard_normal(input_shape_of(args, batch)).astype(numpy.float32)}
        return timing.measure_windows(lambda: session.run(None, feed), protocol, windows,
                                      batch=batch, watch_load=watch_load)  # fmt: skip

    runs = time_batch(args.batch, max(1, args.repeats))
    sweep = [(b, time_batch(b, 1)[0].stats) for b in (args.sweep_batches or [])]
    return {"runs": runs, "sweep": sweep, "providers": session.get_providers(),
            "model_file": args.model, "peak_memory_mib": timing.peak_rss_mib()}  # fmt: skip
