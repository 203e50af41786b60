"""Assemble report.json from a run, its export and its profiling results; write all three files.

`write_report(run_dir, export_dir, profile)` is what `seekdeploy report`, `profile` and `run` call.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy import layout
from seekdeploy._io import atomic_write_bytes, atomic_write_json, atomic_write_text
from seekdeploy.report.cascade_model import deployed_cascade_section
from seekdeploy.report import pair as pair_figures
from seekdeploy.report.cpu_precisions import cpu_section
from seekdeploy.report.schema import SCHEMA_VERSION
from seekdeploy.report.sources import (
    ROLES, ExportFiles, RunFiles, default_export_dir, read_export, read_profile_results, read_run,
    result_for,
)  # fmt: skip

if TYPE_CHECKING:
    from seekdeploy.profiles.schema import HardwareProfile
    from seekdeploy.report.predictions import Predictions

PLOTS_DIR = "plots"


@dataclass(frozen=True)
class Report:
    """A built report: the JSON document and its figures (name -> PNG bytes)."""

    document: dict[str, Any]
    plots: dict[str, bytes]


def write_report(run_dir: str | Path, export_dir: str | Path | None = None,
                 profile: HardwareProfile | str | Path | None = None, *,
                 out_dir: str | Path | None = None, latency_statistic: str = "mean") -> Path:
    """Write report.json, report.md, report.html and plots/*.png; return the HTML's path.

    `export_dir` defaults to `exports/<run>` beside `runs/`; `profile` (a `HardwareProfile`, a
    name or a YAML path, or None) gives the budgets, else those recorded in profile.json are used.
    The output folder defaults to the run folder. Files are written atomically.
    """
    report = build_report(run_dir, export_dir, profile, latency_statistic=latency_statistic)
    return write_built_report(report, Path(out_dir) if out_dir is not None else Path(run_dir))


def write_built_report(report: Report, out: Path) -> Path:
    """Write a built report's files into `out` (atomic each); return the HTML's path."""
    from seekdeploy.report.render_html import render_html
    from seekdeploy.report.render_md import render_markdown

    for name, png in report.plots.items():
        atomic_write_bytes(out / PLOTS_DIR / f"{name}.png", png)
    atomic_write_json(out / layout.REPORT_JSON, report.document)
    atomic_write_text(out / layout.REPORT_MD, render_markdown(report.document))
    return atomic_write_text(out / layout.REPORT_HTML, render_html(report.document, report.plots))


def build_report(run_dir: str | Path, export_dir: str | Path | None = None,
                 profile: HardwareProfile | str | Path | None = None, *,
                 latency_statistic: str = "mean", with_plots: bool = True, device: str | None = None) -> Report:
    """Read everything and compute the report (no files written except the predictions cache);
    `with_plots=False` skips drawing the figures (the JSON figures are the same). `device` picks
    the results of one of several profiled devices (`profile.<device>.json`); without it the
    report shows profile.json, else the newest device's results."""
    if latency_statistic not in pair_figures.LATENCY_STATISTICS:
        from seekdeploy.errors import ConfigError, did_you_mean

        raise ConfigError(f"unknown latency statistic {latency_statistic!r}"
                          f"{did_you_mean(latency_statistic, pair_figures.LATENCY_STATISTICS)}; "
                          f"choose one of {', '.join(pair_figures.LATENCY_STATISTICS)}")
    notes: list[str] = []
    run = read_run(run_dir)
    export_path = Path(export_dir) if export_dir is not None else default_export_dir(run.run_dir)
    export = read_export(export_path)
    document = read_profile_results(_profile_results_path(export_path, notes, device)) if export else None
    hardware = _load_hardware_profile(profile)
    _note_missing(notes, run, export, export_path, document)
    predictions = _predictions(export, run, notes)
    costs = {role: pair_figures.role_cost(role, run, _role_manifest(export, role)) for role in ROLES}
    roles = [pair_figures.summarize_role(role, run, export, document, hardware,
                                         _accuracy(role, run, export, predictions), costs[role])
             for role in ROLES]
    cascade = _cascade(predictions, document, roles, latency_statistic, notes)
    report = {
        "schema_version": SCHEMA_VERSION, "kind": layout.REPORT_KIND,
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "run": _run_section(run), "export": {"dir": str(export_path), "present": export is not None},
        "profile": _profile_section(hardware, document),
        "roles": roles, "pair": _pair_section(roles, document, costs, latency_statistic, predictions),
        "cascade": cascade, "training": _training_section(run), "plots": [], "notes": notes,
        "cpu_precisions": cpu_section(export_path, export.manifests) if export else None,
        "deployed_cascade": deployed_cascade_section(export_path, notes) if export else None,
    }
    plots = _make_plots(report, run, document, latency_statistic) if with_plots else {}
    report["plots"] = [{"name": name, "title": title, "file": f"{PLOTS_DIR}/{name}.png"}
                       for name, title in PLOT_TITLES.items() if name in plots]
    return Report(document=report, plots=plots)


PLOT_TITLES = {
    "training_curves": "Training curves of both roles, with the motivated steps",
    "latency_distribution": "Latency distribution per role, against its budget",
    "accuracy_latency": "Accuracy vs latency: base, motivated and the cascade",
    "training_cost": "Training cost: paired run vs the standalone motivated model",
}


def _make_plots(report: dict[str, Any], run: RunFiles, document: dict[str, Any] | None,
                statistic: str) -> dict[str, bytes]:
    from seekdeploy.report import plots

    figures: dict[str, bytes] = {}
    if run.metrics:
        figures["training_curves"] = plots.plot_training_curves(run.metrics, run.motivation)
    samples = {role: (result_for(document, role) or {}).get("latency", {}).get("samples_ms") or []
               for role in ROLES}
    if any(samples.values()):
        budgets = {role["role"]: role["budget"] for role in report["roles"]}
        figures["latency_distribution"] = plots.plot_latency_distribution(samples, budgets)
    if any(role["latency"] for role in report["roles"]):
        figures["accuracy_latency"] = plots.plot_accuracy_latency(report["roles"], report["cascade"], statistic)
    costs = report["training"]["costs"]
    if costs.get("train_flops") and costs.get("standalone_motivated_train_flops"):
        figures["training_cost"] = plots.plot_training_cost(
            costs, report["training"]["steps"], report["training"]["motivated_batches"])
    return figures


def _load_hardware_profile(profile: HardwareProfile | str | Path | None) -> HardwareProfile | None:
    if profile is None or not isinstance(profile, (str, Path)):
        return profile
    from seekdeploy.profiles.loader import load_profile

    return load_profile(str(profile))


def _note_missing(notes: list[str], run: RunFiles, export: ExportFiles | None, export_path: Path,
                  document: dict[str, Any] | None) -> None:
    if export is None:
        notes.append(f"no export at {export_path}: accuracy is the training run's (PyTorch), and "
                     f"there is no latency or cascade. Run `seekdeploy export {run.run_dir}`.")
    elif document is None:
        notes.append(f"no profiling results ({export_path / layout.PROFILE_DOCUMENT}): no latency, budget "
                     f"verdict or cascade. Run `seekdeploy profile {export_path} --profile P`.")


def _profile_results_path(export_path: Path, notes: list[str], device: str | None = None) -> Path:
    # profile.json, or with several devices profile.<host>.json each: the report covers one device.
    from seekdeploy.measure.profile import default_out, device_results

    single = export_path / layout.PROFILE_DOCUMENT
    per_device = device_results(export_path)
    if device is not None:
        chosen = default_out(export_path, device)
        if not chosen.is_file():
            from seekdeploy.errors import ConfigError

            found = ", ".join(sorted(label for label, _ in per_device)) or "none"
            raise ConfigError(f"no results for device {device!r} in {export_path} (no {chosen.name}); "
                              f"devices profiled there: {found}. Profile it with `seekdeploy profile "
                              f"{export_path} --profile P --host {device} --host …`")
        return chosen
    if single.is_file() or not per_device:
        return single
    newest_label, newest = per_device[-1]
    if len(per_device) > 1:
        others = ", ".join(label for label, _ in per_device[:-1])
        notes.append(f"several devices were profiled; this report shows {newest_label} (the "
                     f"newest), not {others}: choose one with --device")
    return newest


def _role_manifest(export: ExportFiles | None, role: str) -> dict[str, Any]:
    return ((export.manifests.get(role) if export else None) or {})


def _predictions(export: ExportFiles | None, run: RunFiles, notes: list[str]) -> Predictions | None:
    if export is None or set(export.model_paths) != set(ROLES):
        return None
    from seekdeploy.report.predictions import load_or_compute_predictions

    return load_or_compute_predictions(export.export_dir, export.model_paths, run.manifest)


def _accuracy(role: str, run: RunFiles, export: ExportFiles | None,
              predictions: Predictions | None) -> dict[str, Any]:
    if predictions is not None:
        return {"test_top1": predictions.top1(role),
                "source": f"exported ONNX model on the test split ({predictions.labels.size} images)"}
    declared = (_role_manifest(export, role).get("accuracy") or {}).get("test_top1")
    if isinstance(declared, (int, float)):
        return {"test_top1": float(declared), "source": "export manifest"}
    trained = (run.final.get("test_top1") or {}).get(role)
    if isinstance(trained, (int, float)):
        return {"test_top1": float(trained), "source": "training run (PyTorch, test split)"}
    return {"test_top1": None, "source": "unavailable"}


def _cascade(predictions: Predictions | None, document: dict[str, Any] | None, roles: list[dict[str, Any]],
             statistic: str, notes: list[str]) -> dict[str, Any] | None:
    results = {role: result_for(document, role) for role in ROLES}
    if predictions is None or not all(results.values()):
        notes.append("cascade not computed: it needs both exported models and both measured latencies")
        return None
    from seekdeploy.report.cascade import cascade_section

    latency = {role: pair_figures.latency_of(results[role], statistic) for role in ROLES}
    return cascade_section(predictions, latency, roles[1]["budget"], statistic, notes)


def _run_section(run: RunFiles) -> dict[str, Any]:
    config = run.manifest.get("config") or run.config
    return {"name": run.name, "dir": str(run.run_dir), "family": run.manifest.get("family"),
            "dataset": (run.manifest.get("dataset") or {}).get("name", config.get("data")),
            "specs": run.manifest.get("specs") or {}, "trained_for_profile": run.manifest.get("profile"),
            "condition": config.get("condition"), "bn": config.get("bn"), "epochs": config.get("epochs"),
            # Runs saved before these options trained the motivated model alone, undistilled.
            "motivated_step": config.get("motivated_step", "alone"),
            "distill_weight": config.get("distill_weight", 0.0),
            "batch_size": config.get("batch_size"), "seed": config.get("seed")}


def _profile_section(hardware: HardwareProfile | None, document: dict[str, Any] | None) -> dict[str, Any]:
    measured_with = (document or {}).get("profile")
    name = hardware.name if hardware is not None else measured_with
    source = "--profile" if hardware is not None else (layout.PROFILE_DOCUMENT if document else None)
    runtimes = sorted({r["runtime"] for r in (document or {}).get("results", [])})
    return {"name": name, "source": source, "measured_with": measured_with,
            "host": (document or {}).get("host"), "runtimes": runtimes}


def _pair_section(roles: list[dict[str, Any]], document: dict[str, Any] | None,
                  costs: dict[str, dict[str, Any]], statistic: str,
                  predictions: Predictions | None) -> dict[str, Any]:
    base, motivated = roles
    ratio = None
    if base["latency"] and motivated["latency"]:
        key = "mean_ms" if statistic == "mean" else f"{statistic}_ms"
        low, high = base["latency"].get(key), motivated["latency"].get(key)
        ratio = high / low if low and high else None
    top1 = [role["accuracy"]["test_top1"] for role in roles]
    gain = 100 * (top1[1] - top1[0]) if None not in top1 else None
    predicted = [{"role": r["role"], "predicted_ms": r["predicted_latency_ms"],
                  "measured_ms": (r["latency"] or {}).get("at_budget_percentile_ms")}
                 for r in roles if r["predicted_latency_ms"] is not None]
    return {"memory_both": pair_figures.memory_of_both(document, costs), "latency_ratio": ratio,
            "latency_statistic": statistic, "accuracy_gain_pts": gain,
            "test_disagreement": None if predictions is None else pair_figures.disagreement(
                predictions.base_logits, predictions.motivated_logits, predictions.labels),
            "predicted_vs_measured": predicted}


def _training_section(run: RunFiles) -> dict[str, Any]:
    final = run.final
    return {"epochs": run.metrics, "steps": final.get("steps"),
            "motivated_batches": final.get("motivated_batches"),
            "motivated_fraction": final.get("motivated_fraction"), "costs": final.get("costs") or {},
            "seconds": final.get("seconds"), "test_top1_pytorch": final.get("test_top1")}
