"""What works on this machine: runtimes, accelerators, tools and datasets, each with the fix.

Each runtime backend brings its own check (`Runtime.check_here` in `seekdeploy/backends/`); this
module adds the ones no backend owns (Python, torch and the GPU, onnx, ssh, datasets).

`check_environment()` is the library half of `seekdeploy doctor`; every heavy import happens inside
the check that needs it, so a broken optional backend shows up as one failed line instead of
breaking the command.
"""

from __future__ import annotations

import platform
import shutil
from collections.abc import Callable

from seekdeploy.backends import list_backends
from seekdeploy.backends._backend import DoctorCheck, import_for_doctor

__all__ = ["DoctorCheck", "check_datasets", "check_environment"]


def check_environment() -> list[DoctorCheck]:
    """Run every check (Python, torch and the GPU, onnx, each runtime backend's own check, ssh,
    datasets) and return one `DoctorCheck` each; never raises for a missing or broken component."""
    backends = [backend.runtime.check_here for backend in list_backends() if backend.runtime.check_here is not None]
    checks: list[Callable[[], list[DoctorCheck]]] = [
        _check_python, _check_torch_and_gpu, _check_onnx, *backends, _check_ssh, check_datasets,
    ]  # fmt: skip
    return [result for check in checks for result in check()]


def _check_python() -> list[DoctorCheck]:
    version = platform.python_version()
    machine = f"{platform.machine()}, {platform.system()}"
    return [DoctorCheck("python", True, f"{version} ({machine})")]


def _check_torch_and_gpu() -> list[DoctorCheck]:
    torch, problem = import_for_doctor("torch")
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
    onnx, problem = import_for_doctor("onnx")
    if onnx is None:
        return [DoctorCheck("onnx", False, problem, "pip install onnx onnxscript")]
    return [DoctorCheck("onnx", True, onnx.__version__)]


def _check_ssh() -> list[DoctorCheck]:
    found = shutil.which("ssh")
    if found:
        return [DoctorCheck("ssh", True, f"client: {found} (for profiling on a remote device)")]
    return [DoctorCheck("ssh", False, "no ssh client on PATH",
                        "sudo apt-get install openssh-client (only needed for --host)")]


def check_datasets() -> list[DoctorCheck]:
    """One `DoctorCheck` per built-in dataset, from `seekdeploy.data.dataset_status()`."""
    data, problem = import_for_doctor("seekdeploy.data")
    status = getattr(data, "dataset_status", None) if data is not None else None
    if status is None:
        detail = problem or "seekdeploy.data has no dataset_status()"
        return [DoctorCheck("datasets", False, f"cannot check datasets: {detail}",
                            "reinstall seekdeploy (pip install -e '.[dev]')")]
    # The data package's reason already says where it looked and how to get the dataset.
    return [DoctorCheck(f"data:{name}", bool(usable), reason) for name, usable, reason in status()]
