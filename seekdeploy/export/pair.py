"""`pair.json`: proof that the exported base's weights are prefix slices of the motivated model's.

Each static tensor is traced to the supernet tensor it was cut from (`static_source_name`) and to
the region of it the spec uses (`slice_map`). Where a base tensor and a motivated tensor come from
the same supernet tensor, the base tensor must equal the motivated tensor's prefix exactly (max
|diff| 0). Tensors that come from different supernet tensors (per-role BatchNorm statistics under
`--bn private`) legitimately differ: they are listed as not compared, with their difference, never
hidden.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from seekdeploy.errors import ExportError
from seekdeploy.export.static_models import SlicedModel
from seekdeploy.roles import Role

if TYPE_CHECKING:
    import torch

    from seekdeploy.nn.base import Supernet

PAIR_SCHEMA_VERSION = 1
_BN_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


def _sources(supernet: Supernet, sliced: SlicedModel) -> dict[str, tuple[str, tuple[slice, ...]]]:
    # static name -> (supernet tensor name, region of it the spec uses)
    regions = supernet.slice_map(sliced.spec, bn_role=sliced.bn_role)
    out = {}
    for name in sliced.module.state_dict():
        source = supernet.static_source_name(name, sliced.bn_role)
        region = regions.get(source)
        if region is None:
            raise ExportError(f"static tensor {name!r} of the {sliced.role.value} model maps to "
                              f"supernet tensor {source!r}, which slice_map says the spec does not use")
        out[name] = (source, region)
    return out


def _diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def _fits(inner: tuple[slice, ...], outer: tuple[slice, ...]) -> bool:
    return len(inner) == len(outer) and all(i.stop <= o.stop for i, o in zip(inner, outer))


def check_pair(supernet: Supernet, base: SlicedModel, motivated: SlicedModel) -> dict[str, Any]:
    """Compare every base static tensor with the motivated static tensor's prefix (see module doc).

    Returns the `pair.json` document; raises `ExportError` when a tensor that must be shared is not
    bit-identical (the pair would not be nested).
    """
    base_state, motivated_state = base.module.state_dict(), motivated.module.state_dict()
    base_sources, motivated_sources = _sources(supernet, base), _sources(supernet, motivated)
    by_source = {source: name for name, (source, _) in motivated_sources.items()}
    compared, not_compared = [], []
    for name, (source, region) in base_sources.items():
        tensor = base_state[name]
        partner = by_source.get(source)
        if partner is not None and _fits(region, motivated_sources[partner][1]):
            prefix = motivated_state[partner][region]
            compared.append({Role.BASE.value: name, Role.MOTIVATED.value: partner, "supernet": source,
                             "shape": list(tensor.shape), "max_abs_diff": _diff(tensor, prefix)})
            continue
        entry = {Role.BASE.value: name, "supernet_base": source, "shape": list(tensor.shape)}
        twin = motivated_sources.get(name)
        if twin is not None and twin[0] != source:
            entry.update(motivated=name, supernet_motivated=twin[0],
                         reason=_private_reason(name, base.bn_role, motivated.bn_role),
                         max_abs_diff=_diff(tensor, motivated_state[name][region]))
        else:
            entry["reason"] = "no tensor of the motivated model derives from the same supernet tensor"
        not_compared.append(entry)
    worst = max((entry["max_abs_diff"] for entry in compared), default=0.0)
    document = {
        "schema_version": PAIR_SCHEMA_VERSION, "family": supernet.family,
        "method": ("every static-model tensor (before ONNX's Conv+BN folding) is traced to the "
                   "supernet tensor and prefix region it was cut from (slice_map); base and "
                   "motivated tensors cut from the same supernet tensor must be bit-identical"),
        "base_spec": base.spec.to_json(), "motivated_spec": motivated.spec.to_json(),
        "bn_roles": {Role.BASE.value: base.bn_role, Role.MOTIVATED.value: motivated.bn_role},
        "nested": bool(motivated.spec.contains(base.spec)),
        "checked": len(compared), "max_abs_diff": worst, "identical": worst == 0.0,
        "not_compared_count": len(not_compared), "not_compared": not_compared, "tensors": compared,
    }
    if worst != 0.0 or not document["nested"]:
        bad = [e[Role.BASE] for e in compared if e["max_abs_diff"] != 0.0][:5]
        raise ExportError(
            f"the base model is not a slice of the motivated model: {len(bad)} shared tensor(s) "
            f"differ (max |diff| {worst:.3g}, e.g. {bad}); the checkpoint's weight sharing is broken"
        )
    return document


def _private_reason(name: str, base_role: str, motivated_role: str) -> str:
    leaf = name.rpartition(".")[2]
    if leaf in ("weight", "bias"):
        return (f"role-private offset ({leaf}): the motivated model adds its own offset to the "
                f"shared {leaf} (--private-affine), so they legitimately differ")
    if leaf not in _BN_STATISTICS:
        return (f"derives from a different supernet tensor for each role ('{base_role}' vs "
                f"'{motivated_role}')")
    return (f"role-private BatchNorm statistic ({leaf}): the base reads "
            f"'{base_role}' statistics and the motivated model '{motivated_role}' ones (--bn private), "
            "so they legitimately differ")
