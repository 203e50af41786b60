"""The one TensorRT core: engine file names, trtexec command lines and the engine builder, used by
the exporter (`seekdeploy/export/tensorrt/`) and by the device agent (`agent_tensorrt.py`) alike.

Standalone (standard library only; TensorRT is passed in; Python 3.8 syntax): it is shipped to the
device beside the agent, so it cannot import seekdeploy. Errors are `TensorRTBuildError`; the
exporter turns them into `ExportError`, the agent into its tagged error line.

trtexec flags follow NVIDIA's trtexec help: `--memPoolSize=workspace:<N>M` since TensorRT 8.4
(8.0-8.2 take `--workspace=<N>` MiB), `--skipInference` to build without timing since 8.6 (older
releases call it `--buildOnly`), `--shapes` for one fixed input shape, `--minShapes/--optShapes/
--maxShapes` for a batch range.
"""

from __future__ import annotations

import os
import re


class TensorRTBuildError(Exception):
    """TensorRT could not parse the model or build its engine; the message says why."""


def version_numbers(version) -> tuple:
    """(major, minor) of a version string ('8.6.2.3' -> (8, 6)); () when it has no number."""
    return tuple(int(n) for n in re.findall(r"\d+", str(version or ""))[:2])


def major_minor(version: str) -> str:
    """'8.6.2.3' -> '8.6': what the agent names an engine it builds after."""
    return ".".join(str(version).split(".")[:2])


def engine_filename(profile: str, trt_version: str, precision: str, stem: str = "model") -> str:
    """`<stem>.<profile>.trt<version>.<precision>.engine`, e.g. `model.jetson-orin-nano.trt8.6.fp16.engine`."""
    return f"{stem}.{profile}.trt{trt_version}.{precision}.engine"


def workspace_flag(workspace_mib: int, trt_version=None) -> str:
    """The trtexec flag that caps the builder's workspace at `workspace_mib` MiB for this version."""
    numbers = version_numbers(trt_version)
    if numbers and numbers < (8, 4):  # JetPack 4.6's trtexec rejects --memPoolSize
        return f"--workspace={int(workspace_mib)}"
    return f"--memPoolSize=workspace:{int(workspace_mib)}M"


def build_only_flag(trt_version=None) -> str:
    """The trtexec flag that builds without timing: --skipInference (8.6+, or no version given) or
    --buildOnly (older, or a version with no number in it)."""
    if trt_version is None:
        return "--skipInference"
    return "--buildOnly" if version_numbers(trt_version) < (8, 6) else "--skipInference"


def shape_text(input_name: str, dims) -> str:
    """'input:4x3x32x32', trtexec's spelling of one input shape."""
    return f"{input_name}:" + "x".join(str(int(d)) for d in dims)


def trtexec_command(trtexec: str, onnx: str, engine: str, *, input_name: str, shape, precision: str,
                    workspace_mib: int, max_shape=None, opt_shape=None, trt_version=None,
                    calibration_cache=None, extra=()) -> list:
    """The trtexec argument list (no shell) that builds `engine` from `onnx`.

    With only `shape`, the input is fixed at it (`--shapes`); with `max_shape` (and `opt_shape`,
    default `shape`), `shape` is the minimum of one optimization profile. `extra` flags (timing,
    build-only) go before the precision flags. INT8 keeps fp16 on for layers without int8 kernels.
    """
    argv = [trtexec, f"--onnx={onnx}", f"--saveEngine={engine}"]
    if max_shape is None:
        argv.append(f"--shapes={shape_text(input_name, shape)}")
    else:
        argv += [f"--minShapes={shape_text(input_name, shape)}",
                 f"--optShapes={shape_text(input_name, opt_shape or shape)}",
                 f"--maxShapes={shape_text(input_name, max_shape)}"]  # fmt: skip
    argv.append(workspace_flag(workspace_mib, trt_version))
    argv += list(extra)
    if precision in ("fp16", "int8"):
        argv.append("--fp16")
    if precision == "int8":
        argv.append("--int8")
        if calibration_cache:
            argv.append(f"--calib={calibration_cache}")
    return argv


def network_flags(trt) -> int:
    """TensorRT 8.x needs EXPLICIT_BATCH for ONNX; 10.x made it the only mode and deprecated the flag."""
    if version_numbers(trt.__version__)[0] < 10:
        return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return 0


def build_serialized_engine(trt, onnx_path: str, *, batch_range, precision: str, workspace_mib: int,
                            calibrator=None, chw=None) -> bytes:
    """Parse `onnx_path` and build a serialized engine with TensorRT's Python API (module `trt`).

    Every input gets one optimization profile over `batch_range` (min, opt, max) at `chw` (None:
    the model's own C, H, W). fp16 and int8 are builder flags; int8 uses `calibrator` (an
    IInt8Calibrator: the export's entropy calibrator, or the agent's cache replayer).
    """
    name = os.path.basename(str(onnx_path))
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TensorRTBuildError(f"TensorRT {trt.__version__} cannot parse {name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    profile = builder.create_optimization_profile()
    low, opt, high = (int(b) for b in batch_range)
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        dims = [int(d) for d in (chw if chw is not None else tuple(tensor.shape)[1:])]
        profile.set_shape(tensor.name, [low, *dims], [opt, *dims], [high, *dims])
    config.add_optimization_profile(profile)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator  # deprecated in TensorRT 10.1+, still honoured
        config.set_calibration_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise TensorRTBuildError(f"TensorRT could not build an engine from {name}; rerun with a larger "
                                 "workspace or read the builder log above")
    return bytes(serialized)
