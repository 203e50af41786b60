"""What an export resolves before it writes anything: the run, the target profile (given, or the
one the run records), the ONNX opset the target reads, the exported input shape and the evaluation
data (`plan_export` -> `ExportPlan`). `export_run` and the per-role writers read it.

No runtime is named here: a format other than ONNX is some backend's `ExportStep.format`, the opset
ceiling comes from each backend's export step (`opset_ceiling`), and a runtime that builds its own
INT8 (`Backend.int8_needs_calibration_cache`) refuses an INT8 QDQ ONNX.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from seekdeploy import layout
from seekdeploy._io import safe_name
from seekdeploy.backends import export_backends, get_backend
from seekdeploy.errors import ConfigError, ProfileError
from seekdeploy.export.options import ONNX_FORMAT, ExportOptions
from seekdeploy.export.static_models import EvalData, load_eval_data
from seekdeploy.profiles.schema import HardwareProfile, Precision
from seekdeploy.train.checkpoint import load_run

if TYPE_CHECKING:
    from seekdeploy.train.checkpoint import LoadedRun


@dataclass(frozen=True)
class ExportPlan:
    """Everything an export resolves once, before the first file is written."""

    run: LoadedRun
    run_name: str
    options: ExportOptions
    profile: HardwareProfile | None
    profile_name: str | None
    opset: int
    input_shape: tuple[int, int, int, int]  # (B, C, H, W) of the exported input
    data: EvalData

    @property
    def runtime_name(self) -> str | None:
        """The target profile's runtime (a backend name), None without a profile."""
        return str(self.profile.runtime.name.value) if self.profile else None


def run_name_of(run_dir: str | Path) -> str:
    """The run's name (its folder name), refused when it is not a plain name ('..', '.', '')."""
    return safe_name(Path(run_dir).name, "run name (the RUN folder's name)")


def recorded_profile_name(run_dir: Path) -> str | None:
    """The profile a run was trained for (config.yaml, else manifest.json), or None."""
    import json

    for name, reader in ((layout.CONFIG, yaml.safe_load), (layout.MANIFEST, json.loads)):
        path = run_dir / name
        if path.is_file():
            try:
                data = reader(path.read_text(encoding="utf-8"))
            except (ValueError, yaml.YAMLError):
                continue  # an unreadable side file; the checkpoint is what matters
            if isinstance(data, dict) and isinstance(data.get("profile"), str):
                return data["profile"]
    return None


def _resolve_profile(options: ExportOptions, run_dir: Path) -> tuple[HardwareProfile | None, str | None]:
    from seekdeploy.profiles.loader import load_profile

    if options.profile:
        profile = load_profile(options.profile)
        return profile, profile.name
    name = recorded_profile_name(run_dir)
    own_formats = [f for f in options.formats if f != ONNX_FORMAT]  # a runtime's artifact, built for a target
    if own_formats:
        if name is None:
            raise ConfigError(f"--format {own_formats[0]} needs a target: pass --profile P (a profile whose "
                              f"runtime builds {own_formats[0]}); the run records none")
        profile = load_profile(name)
        return profile, profile.name
    if name is None:
        return None, None
    try:
        return load_profile(name), name
    except ProfileError:
        return None, name  # only recorded in the manifest; nothing depends on its contents


def _resolve_opset(options: ExportOptions, profile: HardwareProfile | None) -> int:
    # Each export step may cap the opset for the profile (TensorRT: what its declared version's
    # parser reads); an --opset above a cap is refused only when that backend's artifact is asked for.
    from seekdeploy.export.onnx_export import DEFAULT_OPSET

    ceilings = []
    for backend in export_backends():
        ceiling_of = getattr(backend.export_step.load(), "opset_ceiling", None)
        found = ceiling_of(profile) if ceiling_of and profile else None
        if found is not None:
            ceilings.append((backend, *found))
    if not ceilings:
        return options.opset or DEFAULT_OPSET
    if options.opset is None:
        return min(DEFAULT_OPSET, *(ceiling for _, ceiling, _ in ceilings))
    for backend, ceiling, reader in ceilings:
        if options.opset > ceiling and options.wants(backend.export_step.format):
            raise ConfigError(f"--opset {options.opset} is newer than {reader} of profile "
                              f"{profile.name} reads (<= {ceiling}); use --opset {ceiling} or omit it")
    return options.opset


def _refuse_int8_onnx_for_own_int8(options: ExportOptions, profile: HardwareProfile | None) -> None:
    # A QDQ model is for CPU runtimes; a runtime that calibrates its own INT8 artifact (TensorRT's
    # engine) builds it from the fp32 ONNX.
    if Precision.INT8 not in options.onnx_precisions() or profile is None:
        return
    backend = get_backend(profile.runtime.name)
    if backend.int8_needs_calibration_cache:
        own = backend.export_step.format if backend.export_step else None
        raise ConfigError(f"--precision int8 --format onnx makes an INT8 QDQ model for CPU runtimes, but "
                          f"profile {profile.name} runs {backend.name}, which builds its INT8 "
                          f"{own or 'model'} from the fp32 ONNX: use --format {ONNX_FORMAT},{own or ONNX_FORMAT}")


def plan_export(run_dir: str | Path, options: ExportOptions) -> ExportPlan:
    """Load the run, the profile and the data and resolve every choice; writes nothing."""
    run_dir = Path(run_dir)
    run_name = run_name_of(run_dir)
    run = load_run(run_dir)
    profile, profile_name = _resolve_profile(options, run_dir)
    _refuse_int8_onnx_for_own_int8(options, profile)
    opset = _resolve_opset(options, profile)
    batch = (profile.input.batch if profile else 1) if options.static_batch else 1
    supernet = run.supernet
    shape = (batch, supernet.in_channels, supernet.image_size, supernet.image_size)
    data = load_eval_data(run, options.max_parity_images,
                          calibration_images=options.int8.calibration_images)
    return ExportPlan(run, run_name, options, profile, profile_name, opset, shape, data)
