"""The layer list of a spec's static network: what the latency predictors sum over.

Each family's layout is walked in forward order (the same layouts `seekdeploy.nn` documents and
`estimate_cost` counts): every convolution, linear layer and attention matmul becomes one `Layer`
with its MACs, weight parameters and input/output elements at batch 1, and the elementwise work
ONNX Runtime / TensorRT cannot fuse into a convolution (SiLU's multiply, residual adds, the SE
gate, LayerNorm, softmax, GELU) becomes `ELEMENTWISE` layers with no MACs. BatchNorm and ReLU fold
into the convolution on export, so they add parameters to it but no layer. The MACs and parameters
summed over the list equal `estimate_cost` exactly (a test checks it), so predictor features and
the analytic cost never drift apart.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


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


class _Walker:
    """Appends layers in forward order; mirrors `CostCounter`'s conv/linear arithmetic."""

    def __init__(self) -> None:
        self.layers: list[Layer] = []

    def conv(self, in_ch: int, out_ch: int, kernel: int, size_in: int, stride: int = 1,
             groups: int = 1, extra_params: int = 0, bias: bool = False, same_padding: bool = True) -> int:
        padding = kernel // 2 if same_padding else 0
        size_out = (size_in + 2 * padding - kernel) // stride + 1
        weights = out_ch * (in_ch // groups) * kernel * kernel
        kind = (LayerKind.DEPTHWISE if groups > 1 else
                LayerKind.POINTWISE if kernel == 1 else LayerKind.CONV)
        self.layers.append(Layer(kind, weights * size_out * size_out,
                                 weights + (out_ch if bias else 0) + extra_params,
                                 in_ch * size_in * size_in, out_ch * size_out * size_out, in_ch, out_ch, groups))
        return size_out

    def linear(self, in_features: int, out_features: int, tokens: int = 1, extra_params: int = 0) -> None:
        weights = in_features * out_features
        self.layers.append(Layer(LayerKind.LINEAR, weights * tokens, weights + out_features + extra_params,
                                 in_features * tokens, out_features * tokens, in_features, out_features))

    def matmul(self, macs: int, in_elements: int, out_elements: int) -> None:
        self.layers.append(Layer(LayerKind.MATMUL, macs, 0, in_elements, out_elements))

    def elementwise(self, elements: int, inputs: int = 1, params: int = 0) -> None:
        self.layers.append(Layer(LayerKind.ELEMENTWISE, 0, params, inputs * elements, elements))


def list_layers(spec: Any, *, in_channels: int, image_size: int, num_classes: int) -> list[Layer]:
    """The layers of `spec`'s static network at batch 1, in forward order.

    Raises `SpecError` for a family without a layer walker (the planner then cannot predict it).
    """
    from seekdeploy.errors import SpecError

    walkers = {"resnet": _walk_resnet, "mbconv": _walk_mbconv, "vit": _walk_vit}
    walker = walkers.get(getattr(spec, "family", ""))
    if walker is None:
        raise SpecError(f"no latency model for family {getattr(spec, 'family', spec)!r}; "
                        f"the planner supports {', '.join(walkers)}")
    walk = _Walker()
    walker(walk, spec, in_channels, image_size, num_classes)
    return walk.layers


def _walk_resnet(walk: _Walker, spec: Any, in_channels: int, image_size: int, num_classes: int) -> None:
    size = walk.conv(in_channels, spec.width[0], 3, image_size, extra_params=2 * spec.width[0])
    channels = spec.width[0]
    for stage, (depth, width) in enumerate(zip(spec.depth, spec.width)):
        for block in range(depth):
            stride = 2 if stage > 0 and block == 0 else 1
            size_in = size
            size = walk.conv(channels, width, 3, size_in, stride, extra_params=2 * width)
            walk.conv(width, width, 3, size, extra_params=2 * width)
            if stride != 1:
                walk.conv(channels, width, 1, size_in, stride, extra_params=2 * width)
            walk.elementwise(width * size * size, inputs=2)  # residual add (+ ReLU, fused)
            channels = width
    walk.elementwise(channels, inputs=size * size)  # global average pooling: (C, H, W) -> (C,)
    walk.linear(channels, num_classes)


def _walk_mbconv(walk: _Walker, spec: Any, in_channels: int, image_size: int, num_classes: int) -> None:
    silu = spec.act.value == "silu"  # SiLU exports as Sigmoid + Mul, which do not fuse into Conv

    def act(elements: int) -> None:
        if silu:
            walk.elementwise(elements, inputs=2)

    size = walk.conv(in_channels, spec.stem, 3, image_size, extra_params=2 * spec.stem)
    act(spec.stem * size * size)
    channels = spec.stem
    for stage, (depth, width, expand) in enumerate(zip(spec.depth, spec.width, spec.expand)):
        for block in range(depth):
            hidden = channels * expand
            if expand != 1:
                walk.conv(channels, hidden, 1, size, extra_params=2 * hidden)
                act(hidden * size * size)
            stride = spec.stride[stage] if block == 0 else 1
            size_in = size
            size = walk.conv(hidden, hidden, spec.kernel[stage], size, stride, groups=hidden,
                             extra_params=2 * hidden)
            act(hidden * size * size)
            if spec.se > 0:
                reduced = max(1, int(channels * spec.se))
                walk.elementwise(hidden, inputs=size * size)  # squeeze: average pool
                walk.conv(hidden, reduced, 1, 1, bias=True)
                act(reduced)
                walk.conv(reduced, hidden, 1, 1, bias=True)
                walk.elementwise(hidden * size * size, inputs=2)  # sigmoid gate multiply
            walk.conv(hidden, width, 1, size, extra_params=2 * width)
            if stride == 1 and channels == width and size_in == size:
                walk.elementwise(width * size * size, inputs=2)  # residual add
            channels = width
    walk.conv(channels, spec.head, 1, size, extra_params=2 * spec.head)
    act(spec.head * size * size)
    walk.elementwise(spec.head, inputs=size * size)  # global average pooling
    walk.linear(spec.head, num_classes)


def _walk_vit(walk: _Walker, spec: Any, in_channels: int, image_size: int, num_classes: int) -> None:
    width, hidden, heads, patch = spec.embed_dim, spec.mlp_hidden, spec.heads, spec.patch_size
    patches = (image_size // patch) ** 2
    cls_token = spec.pooling.value == "cls"
    tokens = patches + (1 if cls_token else 0)
    # The patch conv carries its bias, the position embedding and the class token.
    walk.conv(in_channels, width, patch, image_size, stride=patch, same_padding=False,
              extra_params=width + tokens * width + (width if cls_token else 0))
    walk.elementwise(tokens * width, inputs=2)  # + position embedding
    for _ in range(spec.depth):
        walk.elementwise(tokens * width, params=2 * width)  # LayerNorm
        for _ in range(3):  # q, k, v
            walk.linear(width, width, tokens)
        # Q.K^T: (h, T, d) x (h, d, T) -> (h, T, T); softmax; A.V: (h, T, T) x (h, T, d) -> (h, T, d)
        walk.matmul(tokens * tokens * width, 2 * tokens * width, heads * tokens * tokens)
        walk.elementwise(heads * tokens * tokens)  # scale + softmax
        walk.matmul(tokens * tokens * width, heads * tokens * tokens + tokens * width, tokens * width)
        walk.linear(width, width, tokens)  # output projection
        walk.elementwise(tokens * width, inputs=2)  # residual add
        walk.elementwise(tokens * width, params=2 * width)  # LayerNorm
        walk.linear(width, hidden, tokens)
        walk.elementwise(tokens * hidden)  # GELU
        walk.linear(hidden, width, tokens)
        walk.elementwise(tokens * width, inputs=2)  # residual add
    walk.elementwise(tokens * width, params=2 * width)  # final LayerNorm
    walk.linear(width, num_classes)
