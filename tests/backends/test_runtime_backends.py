"""The backend registry: every runtime is one module in `seekdeploy/backends/`, listed without
importing any runtime; its device-side module is self-contained; and a new backend module (written
here into a temporary folder of the package) is picked up by `--runtime`, doctor, the agent's file
list and the real agent in a child process, with no other file touched."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import seekdeploy.backends as backends
from seekdeploy.backends import agent_module_path, backend_names, get_backend, list_backends
from seekdeploy.errors import RuntimeBackendError
from seekdeploy.profiles.schema import RuntimeName
from seekdeploy.remote.agent_files import agent_files, stage_agent
from seekdeploy.runtime.timing import ProtocolSettings

HEAVY = ("torch", "onnx", "onnxruntime", "tensorrt", "openvino", "numpy")
FAST = ProtocolSettings(warmup_ms=1, warmup_iterations=2, duration_ms=5, min_iterations=3)
# What a device-side module may import besides the standard library: numpy, its own runtime, and
# the files shipped beside it.
DEVICE_IMPORTS = {"numpy", "onnxruntime", "openvino", "tensorrt", "_cuda", "_tensorrt_core", "timing"}


def test_each_backend_module_declares_its_own_name() -> None:
    assert backend_names() == ("onnxruntime", "openvino", "tensorrt", "torch")
    for backend in list_backends():
        assert get_backend(backend.name) is backend
        assert Path(backends.__file__).with_name(f"{backend.name}.py").is_file()
    with pytest.raises(RuntimeBackendError, match="did you mean 'openvino'"):
        get_backend("openvno")


def test_profiles_declare_the_device_backends() -> None:
    assert [member.value for member in RuntimeName] == ["onnxruntime", "openvino", "tensorrt"]
    assert RuntimeName("tensorrt") is RuntimeName.TENSORRT and get_backend(RuntimeName.OPENVINO).name == "openvino"


def test_listing_backends_imports_no_runtime() -> None:
    script = ("import sys, json\nimport seekdeploy.backends as b, seekdeploy.profiles.schema\n"
              "names = [x.name for x in b.list_backends()]\n"
              f"print(json.dumps([names, sorted(m for m in {HEAVY!r} if m in sys.modules)]))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    names, heavy = json.loads(done.stdout)
    assert names == list(backend_names()) and heavy == []


@pytest.mark.parametrize("name", ["onnxruntime", "openvino", "tensorrt", "_tensorrt_core"])
def test_device_modules_import_only_stdlib_numpy_and_their_runtime(name: str) -> None:
    path = agent_module_path(get_backend(name)) if name[0] != "_" else Path(backends.__file__).with_name(f"{name}.py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    dynamic = {node.args[0].value for node in ast.walk(tree) if isinstance(node, ast.Call)
               and getattr(node.func, "attr", "") == "import_module" and isinstance(node.args[0], ast.Constant)}
    outside = {m for m in imported | dynamic if m not in sys.stdlib_module_names} - DEVICE_IMPORTS
    assert outside == set(), f"{path.name} imports {outside}: it must run on a device without seekdeploy"
    assert "seekdeploy" not in imported | dynamic


def test_agent_accepts_only_the_runtimes_shipped_beside_it(tmp_path: Path) -> None:
    agent = stage_agent(tmp_path / "agent", "openvino")
    assert sorted(p.name for p in agent.parent.glob("agent_*.py")) == ["agent_openvino.py"]
    done = subprocess.run([sys.executable, str(agent), "--model", str(agent), "--runtime", "tensorrt"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "invalid choice: 'tensorrt'" in done.stderr
    spec = importlib.util.spec_from_file_location("staged_openvino_agent", agent)
    staged = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(staged)
    assert staged.build_parser().parse_args(["--model", "m.onnx"]).runtime == "openvino"  # the one shipped
    with pytest.raises(RuntimeBackendError, match="cannot be timed by the agent"):
        agent_files("torch")


FAKE_BACKEND = '''
from seekdeploy.backends._backend import Backend, DoctorCheck

BACKEND = Backend(
    name="fakert", summary="a test backend", create_runner=lambda model, providers, threads, precision: model,
    check_here=lambda: [DoctorCheck("fakert", True, "always here")],
    agent_module="agent_fakert.py", device_modules=("numpy",), device_install_hint="pip install fakert",
    install_fix="pip install fakert", local_through_agent=True,
)
'''
FAKE_AGENT = '''
REQUIRED_MODULES = ()


class MeasureError(Exception):
    pass


def measure(args, timing, numpy, protocol, input_shape_of, watch_load=None):
    x = numpy.ones(input_shape_of(args, args.batch), numpy.float32)
    runs = timing.measure_windows(lambda: float(x.sum()), protocol, max(1, args.repeats), batch=args.batch,
                                  watch_load=watch_load)
    return {"runs": runs, "sweep": [], "providers": ["fakert"], "model_file": args.model,
            "peak_memory_mib": timing.peak_rss_mib()}
'''


@pytest.fixture()
def fake_backend(tmp_path: Path):
    folder = tmp_path / "more_backends"
    folder.mkdir()
    (folder / "fakert.py").write_text(textwrap.dedent(FAKE_BACKEND))
    (folder / "agent_fakert.py").write_text(textwrap.dedent(FAKE_AGENT))
    backends.__path__.append(str(folder))
    backends._registry.cache_clear()
    yield folder
    backends.__path__.remove(str(folder))
    backends._registry.cache_clear()
    sys.modules.pop("seekdeploy.backends.fakert", None)


def test_a_new_backend_is_one_module(fake_backend: Path, tmp_path: Path) -> None:
    from seekdeploy.doctor import check_environment
    from seekdeploy.remote import diagnose
    from seekdeploy.remote.local_agent import measure_in_child

    assert "fakert" in backend_names() and get_backend("fakert").create_runner("m", (), 0, None) == "m"
    assert {c.name: c.usable for c in check_environment()}["fakert"] is True
    assert "pip install fakert" in str(diagnose.missing_module_error("fakert", "python3", "dev"))
    assert agent_files("fakert")["agent_fakert.py"] == fake_backend / "agent_fakert.py"
    model = tmp_path / "model.bin"
    model.write_bytes(b"not read by the fake runtime")
    result = measure_in_child(model, input_shape=(2, 3, 4, 4), protocol=FAST, runtime="fakert", repeats=2)
    assert result["runtime"] == "fakert" and result["providers"] == ["fakert"]
    assert result["latency"]["iterations"] >= 3 and len(result["repeats"]) == 2
    assert np.isfinite(result["latency"]["median_ms"]) and result["latency"]["median_ms"] > 0
