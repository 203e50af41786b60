"""The layer vocabulary every family describes its static network in, and what follows from it.

A family declares once, in `describe_layers(spec, *, in_channels, image_size, num_classes)`, the
layers of a spec's static network in forward order (`LayerRecorder` does the shape arithmetic).
Every convolution, linear layer and attention matmul is one `Layer` with its MACs, weight
parameters and input/output elements at batch 1; the elementwise work ONNX Runtime / TensorRT
cannot fuse into a convolution (SiLU's multiply, residual adds, the SE gate, LayerNorm, softmax,
GELU, pooling) is an `ELEMENTWISE` layer with no MACs. BatchNorm and ReLU fold into the
convolution on export, so they add parameters to it but no layer.

Two things are derived from that one list: the analytic `Cost` (`cost_from_layers`, what
`seekdeploy.nn.estimate_cost` returns) and the planner's latency features (`seekdeploy.plan`
predictors sum over the same list). Torch-free: the planner and the CLI import it cheaply.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from seekdeploy.errors import SpecError, did_you_mean

_BYTES_PER_PARAM = {"fp32": 4, "fp16": 2, "int8": 1}


class LayerKind(str, enum.Enum):
    """Layer types with distinct speed on real kernels (one regression coefficient set each)."""

    CONV = "conv"  # dense k x k convolution (k > 1), incl. the ViT patch embedding
    POINTWISE = "pointwise"  # 1 x 1 convolution
    DEPTHWISE = "depthwise"  # grouped convolution with groups == channels
    LINEAR = "linear"  # fully connected layer applied to one or more tokens
    MATMUL = "matmul"  # weight-free attention matmul (Q.K^T, A.V)
    ELEMENTWISE = "elementwise"  # adds, gates, norms, softmax, activations that do not fuse


@dataclass(frozen=True)
class Layer:
    """One layer of a static network at batch 1; elements are tensor element counts."""

    kind: LayerKind
    macs: int
    params: int
    in_elements: int
    out_elements: int
    in_channels: int = 0  # convolutions and linear layers; 0 = not a channel-blocked layer
    out_channels: int = 0
    groups: int = 1

    def padded_macs(self, block: int) -> float:
        """MACs with input and output channels rounded up to `block` (a SIMD register's lanes).

        CPU convolution kernels (ONNX Runtime's NCHWc layout, oneDNN) compute whole blocks of
        channels, so a 40-channel conv costs as much as a 48-channel one on 16-lane AVX-512.
        Depthwise layers pad only their channels; layers without channels keep their MACs.
        """
        if self.out_channels <= 0 or block <= 1:
            return float(self.macs)
        per_group = self.in_channels // self.groups
        factor = _round_up(self.out_channels, block) / self.out_channels
        if self.groups == 1 and per_group > 0:
            factor *= _round_up(per_group, block) / per_group
        return self.macs * factor

    def moved_bytes(self, batch: int, bytes_per_element: int) -> int:
        """Bytes read and written: activations for `batch` images plus the weights once."""
        activations = batch * (self.in_elements + self.out_elements)
        return bytes_per_element * (activations + self.params)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


class LayerRecorder:
    """Appends layers in forward order; `conv` returns the output size so a family chains sizes."""

    def __init__(self) -> None:
        self.layers: list[Layer] = []

    def conv(self, in_ch: int, out_ch: int, kernel: int, size_in: int, stride: int = 1, groups: int = 1, *,
             norm: bool = False, bias: bool = False, extra_params: int = 0, same_padding: bool = True) -> int:
        """A square convolution (same-padded unless told); `norm` folds a BatchNorm's 2 x out_ch
        parameters into it. Returns the output spatial size."""
        padding = kernel // 2 if same_padding else 0
        size_out = (size_in + 2 * padding - kernel) // stride + 1
        weights = out_ch * (in_ch // groups) * kernel * kernel
        kind = (LayerKind.DEPTHWISE if groups > 1 else
                LayerKind.POINTWISE if kernel == 1 else LayerKind.CONV)
        params = weights + (out_ch if bias else 0) + (2 * out_ch if norm else 0) + extra_params
        self.layers.append(Layer(kind, weights * size_out * size_out, params, in_ch * size_in * size_in,
                                 out_ch * size_out * size_out, in_ch, out_ch, groups))
        return size_out

    def linear(self, in_features: int, out_features: int, tokens: int = 1) -> None:
        """A linear layer with bias applied to `tokens` vectors."""
        weights = in_features * out_features
        self.layers.append(Layer(LayerKind.LINEAR, weights * tokens, weights + out_features,
                                 in_features * tokens, out_features * tokens, in_features, out_features))

    def matmul(self, macs: int, in_elements: int, out_elements: int) -> None:
        """A weight-free matrix product (attention's Q.K^T and A.V)."""
        self.layers.append(Layer(LayerKind.MATMUL, macs, 0, in_elements, out_elements))

    def elementwise(self, elements: int, inputs: int = 1, params: int = 0) -> None:
        """Elementwise work producing `elements` from `inputs` x as many (a norm carries `params`)."""
        self.layers.append(Layer(LayerKind.ELEMENTWISE, 0, params, inputs * elements, elements))


@dataclass(frozen=True)
class Cost:
    """Analytic cost of one static network at batch 1.

    `params` is exact (equals `sum(p.numel())` of the static model). `macs` counts the
    multiply-accumulates of every convolution, linear layer and attention matmul (bias adds,
    BatchNorm, activations, pooling, residual adds and the SE gate multiply are not counted, as
    `FlopCounterMode` does not count them either); `flops = 2 * macs`. `activation_bytes` is the
    SUM of the fp32 outputs of every such layer (what a runtime without buffer reuse allocates);
    `peak_activation_bytes` is the largest input + output pair of a single such layer (a lower
    bound on any runtime's peak).
    """

    params: int
    macs: int
    activation_bytes: int
    peak_activation_bytes: int

    @property
    def flops(self) -> int:
        """Forward FLOPs: two per multiply-accumulate."""
        return 2 * self.macs

    def weight_bytes(self, precision: str = "fp32") -> int:
        """Bytes of the weights stored at `precision` (fp32 4, fp16 2, int8 1 byte per parameter;
        a `Precision`, a `str` enum, reads as its value)."""
        key = precision.lower()
        if key not in _BYTES_PER_PARAM:
            raise SpecError(
                f"unknown precision {precision!r}{did_you_mean(key, _BYTES_PER_PARAM)}; "
                f"use one of {', '.join(_BYTES_PER_PARAM)}"
            )
        return self.params * _BYTES_PER_PARAM[key]

    def to_json(self) -> dict[str, int]:
        """Plain dict for manifests and reports."""
        return {
            "params": self.params,
            "macs": self.macs,
            "flops": self.flops,
            "activation_bytes": self.activation_bytes,
            "peak_activation_bytes": self.peak_activation_bytes,
        }


def cost_from_layers(layers: Iterable[Layer]) -> Cost:
    """The analytic cost of a layer list: every layer's parameters and MACs; activation memory
    from the layers that compute (elementwise work is done in place or fused)."""
    params = macs = activation_elements = peak_elements = 0
    for layer in layers:
        params += layer.params
        macs += layer.macs
        if layer.kind is not LayerKind.ELEMENTWISE:
            activation_elements += layer.out_elements
            peak_elements = max(peak_elements, layer.in_elements + layer.out_elements)
    return Cost(params, macs, 4 * activation_elements, 4 * peak_elements)
