"""Analytic cost of a ViT subnet: exact parameters, MACs and batch-1 activation memory.

MACs count every multiply-accumulate of the patch convolution (P x E x C x p x p for P patches),
of every Linear (per block q, k, v and the output projection, 4 x T x E x E for T tokens; the
MLP, 2 x T x E x H; the head, E x K) and of the two attention matmuls Q.K^T and A.V
(2 x T x T x E over all heads). LayerNorm, softmax, GELU, bias and residual adds, the attention
scale and the mean pooling are not counted, which is exactly what
`torch.utils.flop_counter.FlopCounterMode` does, so FLOPs = 2 x MACs equals its total.
Activation figures follow `seekdeploy.nn.base.Cost`, with the attention matmuls counted as layers
(their outputs are the h x T x T score map and the T x E mixed values).
"""

from __future__ import annotations

from seekdeploy.nn._vit_spec import Pooling, ViTSpec
from seekdeploy.nn._vit_static import check_geometry
from seekdeploy.nn.base import Cost, CostCounter


def count_tokens(spec: ViTSpec, image_size: int) -> int:
    """Sequence length T: one token per patch, plus the class token when pooling is 'cls'."""
    return (image_size // spec.patch_size) ** 2 + (1 if spec.pooling is Pooling.CLS else 0)


def _count_matmul(counter: CostCounter, macs: int, in_elements: int, out_elements: int) -> None:
    # CostCounter has no entry for weight-free layers (patch conv geometry, attention matmuls).
    counter.macs += macs
    counter.activation_elements += out_elements
    counter.peak_elements = max(counter.peak_elements, in_elements + out_elements)


def estimate_cost(spec: ViTSpec, *, in_channels: int, image_size: int, num_classes: int) -> Cost:
    """Params (exact), MACs, FLOPs and activation bytes of `spec`'s static ViT at batch 1."""
    check_geometry(spec, num_classes=num_classes, in_channels=in_channels, image_size=image_size)
    width, hidden, heads = spec.embed_dim, spec.mlp_hidden, spec.heads
    patches, tokens = (image_size // spec.patch_size) ** 2, count_tokens(spec, image_size)
    counter = CostCounter()
    patch_weights = width * in_channels * spec.patch_size**2
    counter.params += patch_weights + width + tokens * width  # conv, its bias, position embedding
    counter.params += width if spec.pooling is Pooling.CLS else 0  # class token
    _count_matmul(counter, patches * patch_weights, in_channels * image_size**2, patches * width)
    for _ in range(spec.depth):
        counter.norm(width)
        for _ in range(3):  # q, k, v
            counter.linear(width, width, tokens)
        # Q.K^T: (h, T, d) x (h, d, T) -> (h, T, T); A.V: (h, T, T) x (h, T, d) -> (h, T, d)
        _count_matmul(counter, tokens * tokens * width, 2 * tokens * width, heads * tokens**2)
        _count_matmul(counter, tokens * tokens * width, heads * tokens**2 + tokens * width,
                      tokens * width)
        counter.linear(width, width, tokens)  # output projection
        counter.norm(width)
        counter.linear(width, hidden, tokens)
        counter.linear(hidden, width, tokens)
    counter.norm(width)
    counter.linear(width, num_classes)
    return counter.result()
