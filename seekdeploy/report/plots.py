"""The report's figures as PNG bytes (matplotlib's Agg canvas; no GUI, no global backend change).

Every figure has a title, axis labels with units and a legend; budget lines are labelled with
their value. Base is blue, motivated orange, the cascade green, in every figure.
"""

from __future__ import annotations

import io
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np

from seekdeploy.roles import ROLE_NAMES, Role

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

COLORS = {Role.BASE: "#1f77b4", Role.MOTIVATED: "#ff7f0e", "cascade": "#2ca02c"}
_DPI = 110


def _figure(width_in: float, height_in: float, rows: int = 1, cols: int = 1, **kwargs: Any):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(rows, cols, squeeze=False, **kwargs)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # No "Software" text chunk: the embedded image then carries no URL of any kind.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def plot_training_curves(metrics: list[dict[str, Any]], motivation: list[dict[str, Any]]) -> bytes:
    """Loss and validation top-1 per epoch for both roles, and where the motivated steps fell."""
    figure, axes = _figure(9.0, 7.0, 3, 1, sharex=True, height_ratios=[3, 3, 1.3])
    loss_ax, top1_ax, steps_ax = axes[:, 0]
    for role in ROLE_NAMES:
        rows = [m for m in metrics if m.get("role") == role]
        epochs = np.array([m["epoch"] + 1 for m in rows], dtype=float)
        train = [m.get("train_loss") for m in rows]
        mask = np.array([t is not None for t in train])
        if mask.any():
            loss_ax.plot(epochs[mask], [t for t in train if t is not None], "-o", color=COLORS[role],
                         label=f"{role} train loss")
        loss_ax.plot(epochs, [m.get("val_loss") for m in rows], "--s", color=COLORS[role],
                     alpha=0.8, label=f"{role} val loss")
        top1_ax.plot(epochs, [100 * m["val_top1"] for m in rows], "-o", color=COLORS[role],
                     label=f"{role} val top-1")
    losses = [v for m in metrics for v in (m.get("train_loss"), m.get("val_loss")) if v]
    if losses and max(losses) > 20 * min(losses):  # one diverging curve must not flatten the rest
        loss_ax.set_yscale("log")
    loss_ax.set(title="Training curves (x = end of epoch)",
                ylabel="cross-entropy loss" + (" (log)" if loss_ax.get_yscale() == "log" else ""))
    loss_ax.legend(loc="best", ncol=2, fontsize="small")
    top1_ax.set(ylabel="validation top-1 (%)")
    top1_ax.legend(loc="best", fontsize="small")
    _plot_motivated_steps(steps_ax, motivation)
    for ax in axes[:, 0]:
        ax.grid(alpha=0.3)
    return _png(figure)


def _plot_motivated_steps(ax: Axes, motivation: list[dict[str, Any]]) -> None:
    # Each step sits at epoch + (position in epoch) / (steps in epoch): a rug of motivated steps
    # over the same epoch axis as the curves, with the motivated fraction of every epoch as bars.
    per_epoch: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in motivation:
        per_epoch[int(record["epoch"])].append(record)
    positions, fractions = [], []
    for epoch, records in sorted(per_epoch.items()):
        records.sort(key=lambda r: r["step"])
        motivated = [i for i, r in enumerate(records) if r["role"] == Role.MOTIVATED]
        positions.extend(epoch + i / len(records) for i in motivated)
        fractions.append((epoch, len(motivated) / len(records)))
    if fractions:
        ax.bar([e + 0.5 for e, _ in fractions], [100 * f for _, f in fractions], width=1.0,
               color=COLORS[Role.MOTIVATED], alpha=0.25, edgecolor="none",
               label="motivated steps per epoch (%)")
    top = max([100 * f for _, f in fractions], default=1.0) * 1.1 or 1.0
    if positions:
        ax.vlines(positions, 0, top * 0.35, color=COLORS[Role.MOTIVATED], linewidth=0.6,
                  label="one motivated step")
    ax.set(ylim=(0, top), xlabel="epoch", ylabel="motivated (%)")
    ax.legend(loc="upper right", fontsize="small", ncol=2)


def plot_latency_distribution(samples_ms: dict[str, list[float]],
                              budgets: dict[str, dict[str, Any] | None]) -> bytes:
    """A histogram of the raw latency samples of each role with its budget line and percentile."""
    roles = [role for role in ROLE_NAMES if samples_ms.get(role)]
    figure, axes = _figure(9.0, 2.8 * max(1, len(roles)), max(1, len(roles)), 1)
    for ax, role in zip(axes[:, 0], roles):
        _latency_histogram(ax, role, np.asarray(samples_ms[role], dtype=float), budgets.get(role))
    if not roles:
        axes[0, 0].text(0.5, 0.5, "no latency measured", ha="center", va="center")
    return _png(figure)


def _latency_histogram(ax: Axes, role: str, samples: np.ndarray, budget: dict[str, Any] | None) -> None:
    percentile = budget["latency_percentile"] if budget else 95.0
    measured = float(np.percentile(samples, percentile))
    limit = budget.get("latency_ms") if budget else None
    # Up to p99 (or the budget): a handful of scheduler stalls must not stretch the axis.
    high = max(float(np.percentile(samples, 99)), limit or 0.0, measured)
    # A budget far above the measurements (or far outliers) would squeeze the histogram into one
    # bar on a linear axis; a log axis shows the distribution and the budget together.
    log_scale = high > 10 * measured
    low = max(float(samples.min()), 1e-6)
    bins = (np.geomspace(low, max(high, low * 1.01) * 1.05, 80) if log_scale
            else np.linspace(0, high * 1.05, 60))
    shown = samples[samples <= bins[-1]]
    hidden = samples.size - shown.size
    ax.hist(shown, bins=bins, color=COLORS[role], alpha=0.75,
            label=f"{role}: {samples.size} timed runs" + (f" ({hidden} slower not shown)" if hidden else ""))
    ax.axvline(measured, color="black", linestyle=":", label=f"measured p{percentile:g} = {measured:.3g} ms")
    if limit is not None:
        ax.axvline(limit, color="red", linewidth=2, label=f"budget p{percentile:g} ≤ {limit:.3g} ms")
    if log_scale:
        ax.set_xscale("log")
    ax.set(title=f"{role} latency per inference", ylabel="runs",
           xlabel="latency (ms, log scale)" if log_scale else "latency (ms)")
    ax.legend(loc="upper right", fontsize="small")
    ax.grid(alpha=0.3)


def plot_accuracy_latency(roles: list[dict[str, Any]], cascade: dict[str, Any] | None,
                          statistic: str) -> bytes:
    """Accuracy vs latency of base, motivated and the cascade against each role's budget box."""
    figure, axes = _figure(9.0, 5.5)
    ax = axes[0, 0]
    xs, ys = [], []
    for role in roles:
        value, accuracy = _role_latency(role, cascade, statistic), role["accuracy"]["test_top1"]
        if value is not None and accuracy is not None:
            ax.plot(value, 100 * accuracy, "o", markersize=10, color=COLORS[role["role"]],
                    markeredgecolor="black", label=f"{role['role']} alone", zorder=4)
            xs.append(value)
            ys.append(100 * accuracy)
    if cascade:
        points = cascade["points"]
        xs += [p["expected_latency_ms"] for p in points]
        ys += [100 * p["accuracy"] for p in points]
        ax.plot(xs[-len(points):], ys[-len(points):], "-", color=COLORS["cascade"], linewidth=2,
                label="cascade (threshold 0 → 1)", zorder=3)
        chosen = cascade.get("chosen")
        if chosen:
            # Hollow, so a chosen end point (t = 0: the base alone) does not hide that model's dot.
            ax.plot(chosen["expected_latency_ms"], 100 * chosen["accuracy"], "*", markersize=22,
                    markerfacecolor="none", markeredgecolor=COLORS["cascade"], markeredgewidth=2, zorder=5,
                    label=f"chosen threshold {chosen['threshold']:.2f}")
    limits = [r["budget"]["latency_ms"] for r in roles if r["budget"] and r["budget"].get("latency_ms")]
    log_scale = bool(xs) and max(limits + xs) > 10 * min(xs)
    for role in roles:
        budget = role["budget"]
        if budget and budget.get("latency_ms") is not None:
            floor = 100 * (budget.get("min_accuracy") or 0.0)
            ax.add_patch(_box(min(xs + [budget["latency_ms"]]) / 10 if log_scale else 0.0,
                              budget["latency_ms"], floor, COLORS[role["role"]],
                              f"{role['role']} budget: p{budget['latency_percentile']:g} ≤ {budget['latency_ms']:.3g} ms"
                              + (f", ≥ {floor:.0f}%" if floor else "")))
            ax.axvline(budget["latency_ms"], color=COLORS[role["role"]], linestyle="--", linewidth=1.5)
    _frame_accuracy_axes(ax, xs + limits, ys, log_scale, statistic)
    return _png(figure)


def _frame_accuracy_axes(ax: Axes, xs: list[float], ys: list[float], log_scale: bool, statistic: str) -> None:
    # Zoom on the measured points; the budget boxes extend past the view where they are larger.
    if log_scale:
        ax.set_xscale("log")
        ax.set_xlim(min(xs) / 1.5, max(xs) * 1.5)
    elif xs:
        ax.set_xlim(0, max(xs) * 1.1)
    if ys:
        ax.set_ylim(max(0.0, min(ys) - 5), min(100.5, max(ys) + 5))
    ax.set(title="Accuracy vs latency (shaded: the region that meets each role's budget)",
           xlabel=f"latency per image, {_stat_label(statistic)} (ms{', log scale' if log_scale else ''})",
           ylabel="test top-1 (%)")
    ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3, which="both")


def _box(left_ms: float, latency_ms: float, floor_pct: float, color: str, label: str) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((left_ms, floor_pct), latency_ms - left_ms, 100 - floor_pct, facecolor=color, alpha=0.10,
                     edgecolor=color, linewidth=1.5, linestyle="--", label=label)


def _role_latency(role: dict[str, Any], cascade: dict[str, Any] | None, statistic: str) -> float | None:
    if cascade:
        return cascade[f"{role['role']}_latency_ms"]
    latency = role.get("latency")
    if not latency:
        return None
    return latency["mean_ms"] if statistic == "mean" else latency.get(f"{statistic}_ms")


def _stat_label(statistic: str) -> str:
    return "mean" if statistic == "mean" else f"{statistic} per model"


COST_PART_STYLE = {  # part of the honest cost -> (legend label, colour)
    "base_steps": ("base steps", COLORS[Role.BASE]),
    "motivated_steps": ("motivated steps", COLORS[Role.MOTIVATED]),
    "joint_base_passes": ("base pass of joint batches", "#8fb8de"),
    "bn_recalibration": ("BN recalibration", "#d9a441"),
}


def _cost_parts(costs: dict[str, Any], steps: int | None,
                motivated_batches: int | None) -> dict[str, float]:
    parts = costs.get("cost_flops_by_part")
    if parts:
        return {part: float(parts.get(part) or 0.0) for part in COST_PART_STYLE}
    # Runs from before the breakdown was recorded: split the total by (steps x forward FLOPs).
    total = float(costs.get("train_flops") or 0.0)
    forward = costs.get("forward_flops_per_sample") or {}
    motivated_part = 0.0
    if steps and motivated_batches is not None and forward.get(Role.BASE) and forward.get(Role.MOTIVATED):
        weight_m = motivated_batches * forward[Role.MOTIVATED]
        weight_b = (steps - motivated_batches) * forward[Role.BASE]
        motivated_part = total * weight_m / max(weight_m + weight_b, 1e-12)
    return {"base_steps": total - motivated_part, "motivated_steps": motivated_part}


def plot_training_cost(costs: dict[str, Any], steps: int | None, motivated_batches: int | None) -> bytes:
    """Training FLOPs of the paired run, split into every pass it paid (base steps, motivated
    steps, the base's pass on joint batches, BN recalibration), beside what training the
    motivated model alone for the same steps would cost."""
    figure, axes = _figure(9.0, 3.6)
    ax = axes[0, 0]
    total = float(costs.get("train_flops") or 0.0)
    standalone = float(costs.get("standalone_motivated_train_flops") or 0.0)
    scale, unit = _flop_unit(max(total, standalone))
    left = 0.0
    for part, flops in _cost_parts(costs, steps, motivated_batches).items():
        if flops <= 0:
            continue
        label, color = COST_PART_STYLE[part]
        ax.barh(["paired run"], [flops / scale], left=[left / scale], color=color, label=label)
        left += flops
    ax.barh(["motivated alone"], [standalone / scale], color="#999999", label="standalone motivated baseline")
    ratio = total / standalone if standalone else float("nan")
    ax.text(total / scale, 0, f"  {ratio:.2f}× the baseline", va="center")
    ax.set(title="Training cost (every pass counted: forward × 3 per training pass, × 1 for "
                 "recalibration)", xlabel=f"training compute ({unit})")
    ax.set_xlim(0, max(total, standalone) / scale * 1.25 or 1)
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(alpha=0.3, axis="x")
    return _png(figure)


def _flop_unit(value: float) -> tuple[float, str]:
    for scale, unit in ((1e15, "PFLOP"), (1e12, "TFLOP"), (1e9, "GFLOP"), (1e6, "MFLOP")):
        if value >= scale:
            return scale, unit
    return 1.0, "FLOP"
