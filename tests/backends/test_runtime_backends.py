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
from seekdeploy.backends._backend import Backend, DeviceAgent, DoctorCheck, Runtime

BACKEND = Backend(
    name="fakert", summary="a test backend",
    runtime=Runtime(create_runner=lambda model, providers, threads, precision: model,
                    check_here=lambda: [DoctorCheck("fakert", True, "always here")],
                    install_fix="pip install fakert"),
    agent=DeviceAgent(module="agent_fakert.py", device_modules=("numpy",), install_hint="pip install fakert",
                      times_here=True),
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

    assert "fakert" in backend_names() and get_backend("fakert").runtime.create_runner("m", (), 0, None) == "m"
    assert {c.name: c.usable for c in check_environment()}["fakert"] is True
    assert "pip install fakert" in str(diagnose.missing_module_error("fakert", "python3", "dev"))
    assert agent_files("fakert")["agent_fakert.py"] == fake_backend / "agent_fakert.py"
    model = tmp_path / "model.bin"
    model.write_bytes(b"not read by the fake runtime")
    result = measure_in_child(model, input_shape=(2, 3, 4, 4), protocol=FAST, runtime="fakert", repeats=2)
    assert result["runtime"] == "fakert" and result["providers"] == ["fakert"]
    assert result["latency"]["iterations"] >= 3 and len(result["repeats"]) == 2
    assert np.isfinite(result["latency"]["median_ms"]) and result["latency"]["median_ms"] > 0


# --- A backend's export step, report rows, calibration and versions come from its declaration ------

TOY_FOLDER = Path(__file__).resolve().parents[1] / "fixtures" / "toy_backend"
SEEKDEPLOY = Path(backends.__file__).resolve().parents[1]
# The standalone device agent runs without seekdeploy, so it keeps its default runtime's name.
STANDALONE = {SEEKDEPLOY / "remote" / "agent.py"}


@pytest.fixture()
def toy_backend(monkeypatch: pytest.MonkeyPatch):
    """`tests/fixtures/toy_backend/toyrt.py` on the backends' search path (not copied into the package)."""
    monkeypatch.setattr(backends, "__path__", [*backends.__path__, str(TOY_FOLDER)])
    backends._registry.cache_clear()
    yield get_backend("toyrt")
    backends._registry.cache_clear()
    sys.modules.pop("seekdeploy.backends.toyrt", None)


def _own_code_of(backend) -> set[Path]:
    # A backend's export step module and the helper package of its name beside it (export/tensorrt/).
    step = Path(importlib.util.find_spec(backend.export_step.module).origin)
    return {step, *(step.parent / backend.name).glob("*.py")}


def test_no_stage_types_a_runtime_name() -> None:
    """Outside seekdeploy/backends/, only a backend's own export-step code spells its name."""
    allowed = set(STANDALONE)
    for backend in backends.export_backends():
        allowed |= _own_code_of(backend)
    found = []
    for path in sorted(SEEKDEPLOY.rglob("*.py")):
        if path.parent.name == "backends" or path in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in backends.profile_runtime_names():
                found.append(f"{path.relative_to(SEEKDEPLOY.parent)}:{node.lineno} {node.value!r}")
    assert found == [], "ask the backend (seekdeploy.backends) instead of typing its name:\n" + "\n".join(found)


def test_the_exporter_finds_a_backends_export_step_through_the_backend(toy_backend, tiny_run: Path,
                                                                         tiny_profile_file: Path, tmp_path: Path) -> None:
    from helpers import cli_in_process

    from seekdeploy.errors import ConfigError
    from seekdeploy.export.options import format_precisions, parse_export_options
    from seekdeploy.profiles.schema import Precision

    assert format_precisions()["toyfmt"] == (Precision.FP32, Precision.INT8)
    assert parse_export_options(formats="onnx,toyfmt", precision="int8").onnx_precisions() == (Precision.FP32,)
    with pytest.raises(ConfigError, match="toyfmt: fp32, int8"):
        parse_export_options(formats="toyfmt", precision="fp16")
    common = ("export", str(tiny_run), "--roles", "base", "--profile", str(tiny_profile_file), "--out", str(tmp_path))
    code, _, stderr = cli_in_process(*common, "--format", "onnx,toyfmt", "--opset", "19")
    assert code == 1 and "--opset 19 is newer than ToyRT 1.0" in stderr  # its opset_ceiling
    code, stdout, stderr = cli_in_process(*common, "--format", "onnx,toyfmt")
    assert code == 0, stderr
    manifest = json.loads((tmp_path / "tiny" / "base" / "manifest.json").read_text())
    section = manifest["toyrt"]  # the section named after the backend, written by its step
    assert section["backend"] == "toyrt" and section["role"] == "base" and section["opset"] == 18
    assert "model.onnx" in section["proven"]  # the step runs after the ONNX proofs, and is handed them
    assert manifest["openvino"] is None and manifest["tensorrt"] is None  # the other steps ran and declined
    assert "toyrt section: " in stdout and "NOTICE: toyrt step ran for base" in stdout


def test_the_report_compares_every_runtime_that_runs_the_onnx_copies(toy_backend, tmp_path: Path) -> None:
    from seekdeploy.report.cpu_precisions import cpu_section

    manifest = {"files": {"model.onnx": {"bytes": 2048}}, "parity": {"files": {"model.onnx": {"test_top1": 0.9}}},
                "toyrt": {"files": {"model.onnx": {"test_top1": 0.8}}}}
    (tmp_path / "profile.json").write_text(json.dumps({"results": [
        {"role": "base", "model_file": "model.onnx", "runtime": "toyrt", "batch": 1, "latency": {"median_ms": 2.0}}]}))
    section = cpu_section(tmp_path, {"base": manifest})
    rows = [(row["runtime"], row["test_top1"], row["p50_ms"]) for row in section["rows"]]
    assert rows == [("onnxruntime", 0.9, None), ("toyrt", 0.8, 2.0)]


def test_calibration_times_here_only_a_backend_that_says_it_can(toy_backend, tiny_profile_file: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from seekdeploy.errors import ConfigError
    from seekdeploy.plan.calibration import measure_specs
    from seekdeploy.plan.space import design_specs
    from seekdeploy.profiles.loader import load_profile
    from seekdeploy.profiles.schema import MeasurementProtocol

    tiny = load_profile(str(tiny_profile_file))
    profile = dataclasses.replace(tiny, runtime=dataclasses.replace(tiny.runtime, name="toyrt"))
    specs = design_specs("resnet", 2, seed=3, profile=tiny)
    protocol = MeasurementProtocol(warmup_ms=1, warmup_iterations=2, duration_ms=5, min_iterations=3)
    measurements, environment = measure_specs(profile, specs, protocol=protocol, rounds=1)
    assert environment["runtime"] == "toyrt" and len(measurements) == 2
    monkeypatch.setitem(backends._registry(), "toyrt", dataclasses.replace(
        toy_backend, runtime=dataclasses.replace(toy_backend.runtime, calibrates_here=False)))
    with pytest.raises(ConfigError, match="runs toyrt, which cannot be timed here"):
        measure_specs(profile, specs, protocol=protocol, rounds=1)


def test_the_environment_records_the_versions_a_backend_declares(toy_backend) -> None:
    from importlib import metadata

    from seekdeploy.runtime.environment import collect_environment

    versions = collect_environment("toyrt", distributions=backends.version_distributions())["versions"]
    assert versions["toyrt"] == metadata.version("numpy")  # its second declared distribution
    assert versions["onnxruntime"] == metadata.version("onnxruntime")
    assert "toyrt" not in collect_environment("toyrt")["versions"]  # no distribution named toyrt
