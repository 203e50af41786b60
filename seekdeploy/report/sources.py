"""Read what a report is made from: the run folder, the export folder and profile.json.

Everything here is plain JSON/YAML reading (no torch). A run folder is required; the export
folder and the profiling results are optional, and whatever is missing becomes a note in the
report instead of an error, so `seekdeploy report` works right after `seekdeploy train`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from seekdeploy import layout
from seekdeploy.errors import CheckpointError, ExportError
from seekdeploy.roles import ROLES


@dataclass(frozen=True)
class RunFiles:
    """A training run's records: manifest, resolved config, per-epoch metrics, per-step roles."""

    run_dir: Path
    manifest: dict[str, Any]
    config: dict[str, Any]
    metrics: list[dict[str, Any]]
    motivation: list[dict[str, Any]]

    @property
    def name(self) -> str:
        """The run's name (its folder name unless the manifest says otherwise)."""
        return str(self.manifest.get("run") or self.run_dir.name)

    @property
    def final(self) -> dict[str, Any]:
        """The manifest's end-of-run summary (test top-1, costs, motivated fraction)."""
        return self.manifest.get(layout.FINAL) or {}


@dataclass(frozen=True)
class ExportFiles:
    """An export folder: each role's manifest (None when the role was not exported) and pair.json."""

    export_dir: Path
    manifests: dict[str, dict[str, Any] | None]
    pair: dict[str, Any] | None
    model_paths: dict[str, Path] = field(default_factory=dict)


def read_run(run_dir: str | Path) -> RunFiles:
    """Read `runs/<name>/`; raises `CheckpointError` when it is not a finished training run."""
    from seekdeploy.train.records import read_jsonl  # light: json only

    run_dir = Path(run_dir)
    run = layout.RunLayout(run_dir)
    manifest_path = run.manifest
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder {run_dir} does not exist; pass a folder written by "
                              "`seekdeploy train` (e.g. runs/<name>)")
    if not manifest_path.is_file():
        raise CheckpointError(f"{run_dir} has no {layout.MANIFEST}: the run is not finished (resume "
                              f"it with `seekdeploy train --resume {run_dir}`) or not a run folder")
    manifest = _read_json(manifest_path, CheckpointError, "re-run `seekdeploy train`")
    config_path = run.config
    config: dict[str, Any] = {}
    if config_path.is_file():
        loaded = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        config = loaded if isinstance(loaded, dict) else {}
    return RunFiles(run_dir=run_dir, manifest=manifest, config=config or manifest.get("config", {}),
                    metrics=read_jsonl(run.metrics), motivation=read_jsonl(run.motivation))


def default_export_dir(run_dir: Path) -> Path:
    """`exports/<run>` beside the `runs/` folder that holds the run (the export command's default)."""
    return layout.export_dir_of(run_dir)


def read_export(export_dir: Path | None) -> ExportFiles | None:
    """Read `exports/<run>/`; None when the folder does not exist (nothing exported yet)."""
    if export_dir is None or not export_dir.is_dir():
        return None
    manifests: dict[str, dict[str, Any] | None] = {}
    models: dict[str, Path] = {}
    export = layout.ExportLayout(export_dir)
    for role in ROLES:
        manifest_path = export.role(role).manifest
        manifests[role] = (_read_json(manifest_path, ExportError, "re-run `seekdeploy export`")
                           if manifest_path.is_file() else None)
        if export.role(role).onnx().is_file():
            models[role] = export.role(role).onnx()
    pair_path = export.pair
    pair = _read_json(pair_path, ExportError, "re-run `seekdeploy export`") if pair_path.is_file() else None
    return ExportFiles(export_dir=export_dir, manifests=manifests, pair=pair, model_paths=models)


def read_profile_results(path: Path | None) -> dict[str, Any] | None:
    """profile.json (checked by `seekdeploy.runtime.results`); None when it does not exist."""
    if path is None or not path.is_file():
        return None
    from seekdeploy.runtime.results import load_profile_document

    return load_profile_document(path)


def result_for(document: dict[str, Any] | None, role: str) -> dict[str, Any] | None:
    """The model result of `role` in a profile.json document, or None."""
    for result in (document or {}).get("results", []):
        if result.get("role") == role:
            return result
    return None


def verdict_for(document: dict[str, Any] | None, role: str) -> dict[str, Any] | None:
    """The stored verdict of `role` in a profile.json document, or None."""
    for verdict in (document or {}).get("verdicts", []):
        if verdict.get("role") == role:
            return verdict
    return None


def _read_json(path: Path, error: type[Exception], fix: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise error(f"cannot read {path}: {exc}; {fix}") from exc
    if not isinstance(data, dict):
        raise error(f"{path} is not a JSON object; {fix}")
    return data
