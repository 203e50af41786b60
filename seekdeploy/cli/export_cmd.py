"""`seekdeploy slice` and `seekdeploy export`: static models, ONNX/TensorRT exports and their proofs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from seekdeploy.backends import list_backends
from seekdeploy.export.cascade_threshold import DEFAULT_EPSILON_PP, TargetKind  # light: no numpy at import
from seekdeploy.export.onnx_export import DEFAULT_OPSET
from seekdeploy.export.options import ONNX_FORMAT
from seekdeploy.export.quantize import DEFAULT_MAX_ACCURACY_DROP_PP, CalibrationMethod, Int8Settings
from seekdeploy.layout import CASCADE_ONNX, EXPORTS_DIR
from seekdeploy.profiles.schema import Precision
from seekdeploy.roles import ROLE_NAMES, ROLES, parse_role

_INT8 = Int8Settings()  # the INT8 defaults the options show

if TYPE_CHECKING:
    from pathlib import Path

# Each runtime backend with an artifact of its own (TensorRT: engines) adds its `--format` value.
_OWN_FORMATS = {b.export_step.format: b.export_step.precisions for b in list_backends()
                if b.export_step is not None and b.export_step.format}


@click.command("slice")
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--role", type=click.Choice([*ROLE_NAMES, "both"]), default="both",
              show_default=True, help="Which model of the pair to slice out.")
@click.option("--out", "out_dir", default=EXPORTS_DIR, show_default=True, type=click.Path(file_okay=False),
              help="Parent folder: writes OUT/<run>/<role>/static.pt.")
def slice_command(run: str, role: str, out_dir: str) -> None:
    """Cut each role out of the trained supernet as an ordinary static network and prove it.

    The static model (stock layers, the role's BN statistics) is compared with the supernet run
    at the role's spec on real validation images (max |diff| <= 1e-5), then saved as static.pt
    (a state_dict plus construction arguments, loadable with torch.load(weights_only=True)).
    """
    from seekdeploy.export.export_run import slice_run
    from seekdeploy.export.parity import parity_line

    roles = ROLES if role == "both" else (parse_role(role),)
    for sliced, path in slice_run(run, roles, out_dir):
        params = sum(int(t.numel()) for t in sliced.module.parameters())
        click.echo(f"{sliced.role.value}: {sliced.spec.to_text()}  ({params:,} parameters, "
                   f"BN statistics '{sliced.bn_role}')")
        click.echo(parity_line("static vs supernet", sliced.parity.to_json()))
        click.echo(f"  saved {path}")
    click.echo(f"PASSED: sliced {', '.join(r.value for r in roles)} (static == supernet within 1e-05)")


@click.command("export")
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--roles", default=",".join(ROLE_NAMES), show_default=True,
              help="Comma-separated roles to export.")
@click.option("--format", "formats", default=ONNX_FORMAT, show_default=True,
              help=f"Comma-separated formats: {', '.join([ONNX_FORMAT, *_OWN_FORMATS])}.")
@click.option("--precision", default=None,
              help=f"{' | '.join(p.value for p in Precision)}. onnx: fp32, fp16 (adds model.fp16.onnx), int8 (adds "
                   "model.int8.onnx, QDQ for CPU runtimes); "
                   + "".join(f"{name}: {', '.join(precisions)}; " for name, precisions in _OWN_FORMATS.items())
                   + "[ONNX fp32; engines: the profile's precision]")
@click.option("--profile", default=None,
              help="Target hardware profile (name or YAML) [the one the run was trained for].")
@click.option("--out", "out_dir", default=EXPORTS_DIR, show_default=True, type=click.Path(file_okay=False),
              help="Parent folder: writes OUT/<run>/<role>/ and OUT/<run>/pair.json.")
@click.option("--opset", type=int, default=None,
              help=f"ONNX opset [{DEFAULT_OPSET}; capped to what the profile's runtime reads].")
@click.option("--static-batch", is_flag=True,
              help="Fix the batch axis to the profile's batch (default: dynamic batch).")
@click.option("--calibration-method", default=_INT8.calibration_method.value, show_default=True,
              help="INT8 ONNX: how activation ranges are calibrated: "
                   f"{', '.join(method.value for method in CalibrationMethod)}.")
@click.option("--calibration-images", type=click.IntRange(min=1), default=_INT8.calibration_images,
              show_default=True,
              help="INT8: how many TRAINING images calibrate the activation ranges.")
@click.option("--max-accuracy-drop", "max_accuracy_drop_pp", type=click.FloatRange(min=0), default=None,
              help="INT8 ONNX: refuse a model whose test top-1 falls more than this many percentage "
                   "points below fp32's [the profile's runtime.int8_max_accuracy_drop_pp, else "
                   f"{DEFAULT_MAX_ACCURACY_DROP_PP:g}].")
@click.option("--cascade", is_flag=True,
              help="Also write OUT/<run>/cascade/cascade.onnx: the pair as one model (base, confidence gate, "
                   "motivated model behind an ONNX If; shared weights stored once), proven against the "
                   "two-file cascade on the test split. See docs/cascade.md.")
@click.option("--cascade-target", default=TargetKind.ACCURACY.value, show_default=True,
              help="How the cascade's threshold is chosen on the validation split: accuracy[:EPS_PP] (the "
                   f"smallest escalation within EPS pp of the motivated model's top-1, default {DEFAULT_EPSILON_PP:g}) or "
                   "latency:MS (the best top-1 whose expected batch-1 latency is at most MS).")
@click.option("--cascade-confidence", type=click.Choice(["softmax", "margin"]), default="softmax",
              show_default=True, help="The cascade's confidence: the base's top-1 softmax, or top-1 minus top-2.")
def export_command(run: str, roles: str, formats: str, precision: str | None, profile: str | None,
                   out_dir: str, opset: int | None, static_batch: bool, calibration_method: str,
                   calibration_images: int, max_accuracy_drop_pp: float | None, cascade: bool,
                   cascade_target: str, cascade_confidence: str) -> None:
    """Export the pair as ONNX (and TensorRT) with parity proofs, accuracy and manifests.

    Every file is checked against the supernet and the static model on real validation images
    (tolerance per precision) and scored on the test split in onnxruntime; a failed proof
    leaves nothing behind. pair.json proves the base's weights are slices of the motivated's.
    """
    from seekdeploy.export.cascade_threshold import parse_cascade_target
    from seekdeploy.export.export_run import export_run
    from seekdeploy.export.options import parse_export_options

    target = parse_cascade_target(cascade_target) if cascade else None  # refuse a bad target before exporting
    options = parse_export_options(roles=roles, formats=formats, precision=precision,
                                   profile=profile, out_dir=out_dir, opset=opset,
                                   static_batch=static_batch, calibration_method=calibration_method,
                                   calibration_images=calibration_images,
                                   max_accuracy_drop_pp=max_accuracy_drop_pp)
    result = export_run(run, options)
    click.echo(f"export {result.export_dir}  (opset {result.opset}, profile {result.profile_name or '-'})")
    for entry in result.roles:
        _print_role(entry.manifest, entry.folder)
    pair = result.pair
    click.echo(f"pair.json: {pair['checked']} shared tensors compared, max |diff| {pair['max_abs_diff']:g}; "
               f"{pair['not_compared_count']} not compared (listed with reasons)")
    notices = list(result.notices)
    if target is not None:
        notices += _export_cascade(run, result.export_dir, target, cascade_confidence)
    for notice in notices:
        click.secho(f"NOTICE: {notice}", fg="yellow")
    names = ", ".join(entry.role.value for entry in result.roles) + (", cascade" if cascade else "")
    click.echo(f"PASSED: exported {names} to {result.export_dir} (all parity proofs hold)")


def _print_role(manifest: dict[str, Any], folder: Path) -> None:
    from seekdeploy.export.parity import parity_line

    click.echo(f"{manifest['role']}: {manifest['spec_text']}  params {manifest['params']:,}  "
               f"FLOPs {manifest['flops']:,}  -> {folder}")
    parity = manifest["parity"]
    click.echo(parity_line("static vs supernet", parity["static_vs_supernet"]))
    for name, proof in parity["files"].items():
        click.echo(parity_line(f"{name} vs static", proof["vs_static"])
                   + f"  test top-1 {proof['test_top1']:.2%} (n={proof['test_n']})")
    _print_int8_drop(manifest)
    optimization = manifest["optimization"]
    if not optimization["kept"]:
        click.echo(f"  model.opt.onnx not kept: {optimization['reason']}")
    _print_backend_sections(manifest)


def _print_backend_sections(manifest: dict[str, Any]) -> None:
    # Each runtime backend's export step prints its own manifest section (named after the backend).
    from seekdeploy.backends import export_backends

    for backend in export_backends():
        section = manifest.get(backend.name)
        if section:
            for line in backend.export_step.load().summary_lines(section):
                click.echo(line)


def _print_int8_drop(manifest: dict[str, Any]) -> None:
    # The INT8 accuracy-drop proof, when the export made one.
    for name, proof in manifest["parity"]["files"].items():
        drop = proof.get("accuracy_drop")
        if drop:
            click.echo(f"  {name}: test top-1 drop {drop['drop_pp']:.2f} pp (allowed {drop['allowed_drop_pp']:g} "
                       f"pp, {drop['allowed_from']}); calibrated on {manifest['int8']['calibration_images']} "
                       f"training images ({manifest['int8']['calibration_method']})")


def _export_cascade(run: str, export_dir: Path, target: Any, confidence: str) -> list[str]:
    # Build and prove cascade/cascade.onnx from the role exports just written; print its figures.
    from seekdeploy.export.cascade_export import export_cascade

    result = export_cascade(run, export_dir, target=target, confidence=confidence)
    for line in cascade_summary_lines(result.manifest, result.folder):
        click.echo(line)
    return result.notices


def cascade_summary_lines(manifest: dict[str, Any], folder: Path) -> list[str]:
    """What `seekdeploy export --cascade` prints of the cascade's manifest."""
    from seekdeploy.export.cascade_export import backend_summary_lines

    choice, test, size = manifest["threshold_choice"], manifest["test"], manifest["size"]
    parity = manifest["parity"]["stored_threshold"]
    return [
        f"cascade: {folder / CASCADE_ONNX}  threshold {manifest['threshold']:.4g} ({manifest['confidence']}; "
        f"chosen on {choice['n']} validation images for {choice['target']}: escalation "
        f"{choice['escalation_rate']:.1%}, top-1 {choice['top1']:.2%} vs motivated {choice['motivated_top1']:.2%}"
        + (f", expected {choice['expected_latency_ms']:.3g} ms" if choice["expected_latency_ms"] is not None else "")
        + ")",
        f"  test ({test['n']} images): top-1 {test['top1']:.2%} (base {test['base_top1']:.2%}, motivated "
        f"{test['motivated_top1']:.2%}), escalation {test['escalation_rate']:.1%}",
        f"  vs the two-file cascade: {parity['decisions_differing']} of {parity['n']} decisions differ, logits "
        f"max |diff| {parity['logits_max_abs']:.3g}; overrides (none, half, all escalate) proven",
        f"  size {size['cascade_bytes'] / 2**20:.3f} MiB = {size['ratio_to_motivated']:.2f}x the motivated model "
        f"({manifest['weight_sharing']['shared_count']} base tensors stored as slices of the motivated model's)",
        *backend_summary_lines(manifest),  # each runtime backend's own section
    ]
