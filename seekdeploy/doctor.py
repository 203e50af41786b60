"""What works on this machine: runtimes, accelerators, tools and datasets, each with the fix.

`check_environment()` is the library half of `seekdeploy doctor`; every heavy import happens inside
the check that needs it, so a broken optional backend shows up as one failed line instead of
breaking the command.
"""

from __future__ import annotations

import importlib
import platform
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

# Where JetPack installs trtexec without putting it on PATH.
TRTEXEC_FALLBACK_PATHS = (Path("/usr/src/tensorrt/bin/trtexec"),)


@dataclass(frozen=True)
class DoctorCheck:
    """One line of the doctor's report: what, whether it is usable, the details and the fix."""

    name: str
    usable: bool
    detail: str
    fix: str = ""


def check_environment() -> list[DoctorCheck]:
    """Run every check (Python, torch, onnx, onnxruntime, openvino, tensorrt, trtexec, GPU, ssh, datasets)
    and return one `DoctorCheck` each; never raises for a missing or broken component."""
    checks: list[Callable[[], list[DoctorCheck]]] = [
        _check_python,
        _check_torch_and_gpu,
        _check_onnx,
        _check_onnxruntime,
        _check_openvino,
        _check_tensorrt,
        _check_trtexec,
        _check_ssh,
        check_datasets,
    ]
    return [result for check in checks for result in check()]


def _import(module: str) -> tuple[ModuleType | None, str]:
    # A broken native backend can raise anything from its import (OSError for a missing .so,
    # RuntimeError for a CUDA mismatch); doctor's job is to report that, not to crash on it.
    try:
        return importlib.import_module(module), ""
    except ImportError as exc:
        return None, f"not installed ({exc})"
    except Exception as exc:  # noqa: BLE001 - see the comment above
        return None, f"installed but fails to import: {type(exc).__name__}: {exc}"


def _check_python() -> list[DoctorCheck]:
    version = platform.python_version()
    machine = f"{platform.machine()}, {platform.system()}"
    return [DoctorCheck("python", True, f"{version} ({machine})")]


def _check_torch_and_gpu() -> list[DoctorCheck]:
    torch, problem = _import("torch")
    if torch is None:
        fix = "pip install -e '.[dev]' (installs the pinned torch)"
        return [
            DoctorCheck("torch", False, problem, fix),
            DoctorCheck("cuda-gpu", False, "cannot check without torch", fix),
        ]
    cuda = torch.cuda.is_available()
    cuda_build = torch.version.cuda or "none (CPU-only build)"
    results = [DoctorCheck("torch", True, f"{torch.__version__} (CUDA build: {cuda_build}, "
                                          f"CUDA available: {'yes' if cuda else 'no'})")]
    if cuda:
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        results.append(DoctorCheck("cuda-gpu", True, ", ".join(names)))
    else:
        results.append(DoctorCheck(
            "cuda-gpu", False, "no CUDA GPU visible to torch",
            "train on the CPU here (small models are fine); profile GPU targets on the device "
            "itself or with `seekdeploy profile EXPORT --profile jetson --host user@device`",
        ))
    return results


def _check_onnx() -> list[DoctorCheck]:
    onnx, problem = _import("onnx")
    if onnx is None:
        return [DoctorCheck("onnx", False, problem, "pip install onnx onnxscript")]
    return [DoctorCheck("onnx", True, onnx.__version__)]


def _check_onnxruntime() -> list[DoctorCheck]:
    ort, problem = _import("onnxruntime")
    if ort is None:
        return [DoctorCheck("onnxruntime", False, problem, "pip install onnxruntime")]
    providers = ", ".join(ort.get_available_providers())
    return [DoctorCheck("onnxruntime", True, f"{ort.__version__} (providers: {providers})")]


def _check_openvino() -> list[DoctorCheck]:
    ov, problem = _import("openvino")
    if ov is None:
        return [DoctorCheck("openvino", False, problem, "pip install 'seekdeploy[openvino]' (only needed "
                            "for profiles with `runtime: openvino`, e.g. x86-cpu-openvino)")]
    try:
        devices = ", ".join(ov.Core().available_devices)
    except Exception as exc:  # noqa: BLE001 - a broken plugin must be one failed line, not a crash
        return [DoctorCheck("openvino", False, f"imports but cannot list devices: {exc}",
                            "reinstall it: pip install --force-reinstall 'seekdeploy[openvino]'")]
    version = getattr(ov, "get_version", lambda: getattr(ov, "__version__", "unknown"))()
    return [DoctorCheck("openvino", "CPU" in devices, f"{version} (devices: {devices or 'none'})",
                        "" if "CPU" in devices else "OpenVINO sees no CPU device; reinstall it")]


def _check_tensorrt() -> list[DoctorCheck]:
    trt, problem = _import("tensorrt")
    if trt is None:
        fix = ("pip install 'seekdeploy[tensorrt]' on an x86 machine with an NVIDIA GPU; "
               "on a Jetson it comes with JetPack (python3-libnvinfer)")
        return [DoctorCheck("tensorrt", False, problem, fix)]
    return [DoctorCheck("tensorrt", True, f"{getattr(trt, '__version__', 'unknown version')}")]


def _check_trtexec() -> list[DoctorCheck]:
    found = shutil.which("trtexec")
    if found:
        return [DoctorCheck("trtexec", True, f"on PATH: {found}")]
    for candidate in TRTEXEC_FALLBACK_PATHS:
        if candidate.is_file():
            return [DoctorCheck("trtexec", False, f"found at {candidate} but not on PATH",
                                f"export PATH=\"$PATH:{candidate.parent}\"")]
    return [DoctorCheck("trtexec", False, "not on PATH",
                        "install TensorRT (JetPack on a Jetson) and add its bin/ folder to PATH; "
                        "only needed to build engines on this machine")]


def _check_ssh() -> list[DoctorCheck]:
    found = shutil.which("ssh")
    if found:
        return [DoctorCheck("ssh", True, f"client: {found} (for profiling on a remote device)")]
    return [DoctorCheck("ssh", False, "no ssh client on PATH",
                        "sudo apt-get install openssh-client (only needed for --host)")]


def check_datasets() -> list[DoctorCheck]:
    """One `DoctorCheck` per built-in dataset, from `seekdeploy.data.dataset_status()`."""
    data, problem = _import("seekdeploy.data")
    status = getattr(data, "dataset_status", None) if data is not None else None
    if status is None:
        detail = problem or "seekdeploy.data has no dataset_status()"
        return [DoctorCheck("datasets", False, f"cannot check datasets: {detail}",
                            "reinstall seekdeploy (pip install -e '.[dev]')")]
    # The data package's reason already says where it looked and how to get the dataset.
    return [DoctorCheck(f"data:{name}", bool(usable), reason) for name, usable, reason in status()]
