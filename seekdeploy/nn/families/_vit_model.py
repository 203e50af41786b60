"""ViT models (torch): a pre-LN vision transformer whose sub-networks are weight prefixes.

The family itself (spec, layers, default pair, grid: `FAMILY`) is declared in `vit.py`, which
names this module as its `models`.

Prefix weights map (what a `ViTSpec` with embed E = h x d, h heads of the fixed width d, depth D
and MLP hidden width H = mlp_ratio x E uses of a supernet built with E*, H*; the rest is unused):

==========================  ======================  ============================================
parameter                   supernet shape          used region
==========================  ======================  ============================================
patch_embed.weight / bias   (E*, C, p, p) / (E*,)   [:E] (first E output channels)
cls_token (pooling=cls)     (1, 1, E*)              [:, :, :E]
pos_embed                   (1, T, E*)              [:, :, :E] (all T tokens)
blocks.i.* for i >= D       --                      unused (None)
blocks.i.norm1/norm2        (E*,)                   [:E] (statistics over the first E features)
blocks.i.attn.q/k/v.weight  (E*, E*)                [:E, :E]: first h heads x d rows, first E cols
blocks.i.attn.q/k/v.bias    (E*,)                   [:E]
blocks.i.attn.proj.weight   (E*, E*)                [:E, :E]: first E rows, first h heads' columns
blocks.i.fc1.weight / bias  (H*, E*) / (H*,)        [:H, :E] / [:H]
blocks.i.fc2.weight / bias  (E*, H*) / (E*,)        [:E, :H] / [:E]
norm.weight / bias          (E*,)                   [:E]
head.weight / bias          (K, E*) / (K,)          [:, :E] / all
==========================  ======================  ============================================

q, k and v are separate Linear layers (not one fused qkv) so that "the first h heads" is one prefix
of each weight, in the supernet and in every static model. The attention scale 1/sqrt(d) is the
same for every subnet because d is fixed. The static model (`build_static`, in `_vit_static`)
mirrors these names, so the shared `slice_map` / `to_static` machinery of `seekdeploy.nn.base`
applies unchanged. A ViT has no BatchNorm: `bn_roles` only satisfies the common contract and the
BN role never changes the output. Importing this module imports torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seekdeploy.errors import SpecError
from seekdeploy.nn.base import DEFAULT_BN_ROLES, Supernet
from seekdeploy.nn.families._vit_static import StaticViT, build_static
from seekdeploy.nn.families.vit import FAMILY_NAME, Pooling, ViTConfig, ViTSpec, check_geometry, count_tokens
from seekdeploy.nn.dynamic import DynamicLayerNorm, DynamicLinear

__all__ = ["StaticViT", "ViTSupernet", "build_static", "build_supernet", "reorganize"]


class DynamicPatchEmbed(nn.Module):
    """Patch embedding (Conv2d, kernel = stride = patch) using the first `E` output channels."""

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        # Borrow nn.Conv2d's initialization so the supernet starts like a stock ViT.
        stock = nn.Conv2d(in_channels, embed_dim, patch_size, stride=patch_size)
        self.weight = nn.Parameter(stock.weight.detach().clone())
        self.bias = nn.Parameter(stock.bias.detach().clone())

    def forward(self, x: torch.Tensor, embed_dim: int) -> torch.Tensor:
        """(B, C, H, W) -> (B, E, H/p, W/p)."""
        return F.conv2d(x, self.weight[:embed_dim], self.bias[:embed_dim], self.patch_size)


class DynamicAttention(nn.Module):
    """Self-attention over the first `heads` heads of the fixed width `head_dim`."""

    def __init__(self, embed_dim: int, head_dim: int) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.q = DynamicLinear(embed_dim, embed_dim)
        self.k = DynamicLinear(embed_dim, embed_dim)
        self.v = DynamicLinear(embed_dim, embed_dim)
        self.proj = DynamicLinear(embed_dim, embed_dim)

    def forward(self, x: torch.Tensor, heads: int) -> torch.Tensor:
        """(B, N, E) -> (B, N, E) using heads x head_dim rows of q, k, v."""
        batch, tokens, width = x.shape
        inner = heads * self.head_dim
        shape = (batch, tokens, heads, self.head_dim)
        q = self.q(x, inner).view(shape).transpose(1, 2)  # (B, h, N, d)
        k = self.k(x, inner).view(shape).transpose(1, 2)
        v = self.v(x, inner).view(shape).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-2, -1)) * self.head_dim**-0.5  # (B, h, N, N)
        mixed = torch.matmul(scores.softmax(dim=-1), v)  # (B, h, N, d)
        return self.proj(mixed.transpose(1, 2).reshape(batch, tokens, inner), width)


class DynamicBlock(nn.Module):
    """Pre-LN transformer block with elastic width, heads and MLP hidden units."""

    def __init__(self, embed_dim: int, head_dim: int, mlp_hidden: int) -> None:
        super().__init__()
        self.norm1 = DynamicLayerNorm(embed_dim)
        self.attn = DynamicAttention(embed_dim, head_dim)
        self.norm2 = DynamicLayerNorm(embed_dim)
        self.fc1 = DynamicLinear(embed_dim, mlp_hidden)
        self.act = nn.GELU()
        self.fc2 = DynamicLinear(mlp_hidden, embed_dim)

    def forward(self, x: torch.Tensor, spec: ViTSpec) -> torch.Tensor:
        """(B, N, E) -> (B, N, E)."""
        x = x + self.attn(self.norm1(x), spec.heads)
        hidden = self.act(self.fc1(self.norm2(x), spec.mlp_hidden))  # (B, N, H)
        return x + self.fc2(hidden, spec.embed_dim)


class ViTSupernet(Supernet):
    """The motivated ViT; `forward(x, spec)` runs any nested subnet on shared prefix weights."""

    def __init__(self, config: ViTConfig, *, num_classes: int, in_channels: int, image_size: int,
                 bn_roles: tuple[str, ...] = DEFAULT_BN_ROLES) -> None:
        super().__init__(FAMILY_NAME, config, num_classes=num_classes, in_channels=in_channels,
                         image_size=image_size, bn_roles=bn_roles)
        spec = self.max_spec
        check_geometry(spec, num_classes=num_classes, in_channels=in_channels, image_size=image_size)
        width = spec.embed_dim
        self.patch_embed = DynamicPatchEmbed(in_channels, width, spec.patch_size)
        if spec.pooling is Pooling.CLS:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, count_tokens(spec, image_size), width))
        self.blocks = nn.ModuleList(
            DynamicBlock(width, spec.head_dim, spec.mlp_hidden) for _ in range(spec.depth)
        )
        self.norm = DynamicLayerNorm(width)
        self.head = DynamicLinear(width, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # The usual ViT recipe: truncated-normal embeddings and Linear weights, zero Linear biases.
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.max_spec.pooling is Pooling.CLS:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        for module in self.modules():
            if isinstance(module, DynamicLinear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    classifier_name = "head"

    def branch_end_parameters(self, spec: ViTSpec) -> list[str]:
        """The attention output projection and fc2 (weights and biases) of every block beyond
        `spec`'s depth: zero, such a block adds nothing to its residual stream."""
        return [name for name, _ in self.named_parameters()
                if name.startswith("blocks.") and int(name.split(".")[1]) >= spec.depth
                and (".attn.proj." in name or ".fc2." in name)]

    def check_spec(self, spec: ViTSpec | None) -> ViTSpec:
        """Like `Supernet.check_spec`, with a message that names a head-dim or constant mismatch."""
        supernet = self.max_spec
        if isinstance(spec, ViTSpec) and (spec.head_dim, spec.patch_size, spec.pooling) != (
            supernet.head_dim, supernet.patch_size, supernet.pooling
        ):
            raise SpecError(
                f"spec {spec} does not fit this supernet ({supernet}): its heads are "
                f"{spec.head_dim} wide (supernet {supernet.head_dim}; use embed = heads x "
                f"{supernet.head_dim}), patch {spec.patch_size} (supernet {supernet.patch_size}), "
                f"pooling {spec.pooling.value} (supernet {supernet.pooling.value})"
            )
        return super().check_spec(spec)

    def forward_spec(self, x: torch.Tensor, spec: ViTSpec, bn_role: str) -> torch.Tensor:
        """(B, C, H, W) -> (B, K) logits of the subnet `spec`; `bn_role` has no effect."""
        width = spec.embed_dim
        x = self.patch_embed(x, width).flatten(2).transpose(1, 2)  # (B, P, E)
        if spec.pooling is Pooling.CLS:
            cls = self.cls_token[:, :, :width].expand(x.shape[0], -1, -1)  # (B, 1, E)
            x = torch.cat([cls, x], dim=1)  # (B, T, E)
        x = x + self.pos_embed[:, :, :width]
        for block in self.blocks[: spec.depth]:
            x = block(x, spec)
        x = self.norm(x)
        pooled = x[:, 0] if spec.pooling is Pooling.CLS else x.mean(dim=1)  # (B, E)
        return self.head(pooled, role=bn_role)


def reorganize(supernet: ViTSupernet) -> None:
    """Reorder each block's heads and MLP hidden units by importance, keeping the function.

    Importance is the L1 norm of the weights that read a unit (the head's columns of the output
    projection; the unit's column of fc2), so the most important heads and units land in the
    prefix every smaller subnet uses. The supernet computes the same function afterwards (up to
    float summation order). Embedding channels are not reordered. Optimizer state is not
    permuted: call it before creating an optimizer.
    """
    head_dim = supernet.max_spec.head_dim
    with torch.no_grad():
        for block in supernet.blocks:
            attn = block.attn
            head_score = attn.proj.weight.abs().sum(0).view(-1, head_dim).sum(1)  # (heads,)
            order = torch.argsort(head_score, descending=True, stable=True)
            offsets = torch.arange(head_dim, device=order.device)
            rows = (order[:, None] * head_dim + offsets).reshape(-1)  # (E,)
            for linear in (attn.q, attn.k, attn.v):
                linear.weight.copy_(linear.weight[rows])
                linear.bias.copy_(linear.bias[rows])
            attn.proj.weight.copy_(attn.proj.weight[:, rows])
            units = torch.argsort(block.fc2.weight.abs().sum(0), descending=True, stable=True)
            block.fc1.weight.copy_(block.fc1.weight[units])
            block.fc1.bias.copy_(block.fc1.bias[units])
            block.fc2.weight.copy_(block.fc2.weight[:, units])


build_supernet = ViTSupernet  # the names the family's `models` module provides
