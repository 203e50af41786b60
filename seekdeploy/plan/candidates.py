"""One candidate spec on a profile: its cost and predicted latency, memory and file size
(`evaluate_spec` -> `Candidate`), the budgets it breaks (`violations`), and `PlanError`.

The planner and its helpers (`_pair_rules`, `grid_costs`) all read these; keeping them here keeps
the helpers from importing the planner back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from seekdeploy.errors import SpecError
from seekdeploy.plan.predictor import (LatencyPredictor, bytes_per_element, input_geometry, profile_precision,
                                       spec_layers)
from seekdeploy.profiles.schema import Budget, HardwareProfile
from seekdeploy.roles import Role

if TYPE_CHECKING:
    from seekdeploy.nn.spec import SubnetSpec

MIB = 1024.0 * 1024.0
# An exported ONNX file holds more than its weights: the graph, names and shapes. Measured on the
# opset-18 exports of this version (ResNets of 14-50 layers, the default MBConv and ViT, fp32):
# 9-20 KB beyond the weights, within 4 KB of this fixed part plus this much per layer.
ONNX_FILE_FIXED_BYTES = 6 * 1024
ONNX_FILE_BYTES_PER_LAYER = 300
# ...so a plan keeps this much of a file-size budget free: a pick predicted at 98 % of a 0.06 MiB
# budget measured 1.9 KB over its prediction and failed it.
ONNX_FILE_MARGIN_BYTES = 4 * 1024


class PlanError(SpecError):
    """No nested pair of the family meets the profile's budgets and the pair rule."""


@dataclass(frozen=True)
class Candidate:
    """One spec with its cost and predictions; latency is at each role's budget percentile."""

    spec: SubnetSpec
    params: int
    flops: int
    typical_latency_ms: float
    latency_ms: dict[Role, float]
    memory_mib: float
    file_size_mib: float


def evaluate_spec(spec: SubnetSpec, profile: HardwareProfile, predictor: LatencyPredictor) -> Candidate:
    """Cost and predictions of one spec on `profile`."""
    from seekdeploy.nn import estimate_cost

    cost = estimate_cost(spec, **input_geometry(profile))
    typical = predictor.predict_latency_ms(spec)
    latency = {role: typical * predictor.tail_factor(budget.latency_percentile, typical)
               for role, budget in profile.budgets.items()}
    element_bytes = bytes_per_element(profile)
    weights = cost.weight_bytes(profile_precision(profile))
    activations = cost.activation_bytes // 4 * element_bytes * profile.input.batch
    layers = len(spec_layers(spec, input_geometry(profile)))
    file_bytes = weights + ONNX_FILE_FIXED_BYTES + ONNX_FILE_BYTES_PER_LAYER * layers
    return Candidate(spec, cost.params, cost.flops, typical, latency, (weights + activations) / MIB, file_bytes / MIB)


def planned_latency_limit(budget: Budget, latency_headroom: float) -> float:
    """The latency a plan may predict for `budget`: the budget less `latency_headroom` of it
    (`LatencyPredictor.plan_headroom`)."""
    return budget.latency_ms * (1.0 - latency_headroom)


def planned_file_limit(budget: Budget) -> float | None:
    """The file size (MiB) a plan may predict for `budget`: the budget less the prediction's
    error bound (`ONNX_FILE_MARGIN_BYTES`); None when the role has no file-size budget."""
    if budget.file_size_mib is None:
        return None
    return budget.file_size_mib - ONNX_FILE_MARGIN_BYTES / MIB


def violations(candidate: Candidate, role: Role, budget: Budget, latency_headroom: float = 0.0) -> dict[str, float]:
    """Budget name -> predicted / limit for every budget `candidate` exceeds in `role` (the latency
    limit is `planned_latency_limit`, the file-size limit `planned_file_limit`)."""
    checks = {f"latency p{budget.latency_percentile:g}": (candidate.latency_ms[role],
                                                          planned_latency_limit(budget, latency_headroom)),
              "peak memory": (candidate.memory_mib, budget.peak_memory_mib),
              "file size": (candidate.file_size_mib, planned_file_limit(budget))}
    return {name: value / limit for name, (value, limit) in checks.items()
            if limit is not None and value > limit}
