"""The static ViT: what `to_static` returns and what an equally sized hand-written ViT looks like.

Only stock layers hold weights (Conv2d, LayerNorm, Linear, GELU) plus the class token and the
position embedding as plain parameters; attention is written out as matmul -> softmax -> matmul so
that the ONNX graph is plain MatMul/Softmax and `torch.utils.flop_counter` sees both matmuls.
Parameter names match the supernet's, which is what lets `to_static` copy sliced weights with a
strict `load_state_dict`.
"""

from __future__ import annotations

import torch
from torch import nn

from seekdeploy.nn.families.vit import Pooling, ViTSpec, check_geometry


class StaticAttention(nn.Module):
    """Multi-head self-attention with separate q/k/v projections and an output projection."""

    def __init__(self, embed_dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = embed_dim // heads
        self.q = nn.Linear(embed_dim, embed_dim)
        self.k = nn.Linear(embed_dim, embed_dim)
        self.v = nn.Linear(embed_dim, embed_dim)
        self.proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape  # (B, N, E)
        shape = (batch, tokens, self.heads, self.head_dim)
        q = self.q(x).view(shape).transpose(1, 2)  # (B, h, N, d)
        k = self.k(x).view(shape).transpose(1, 2)
        v = self.v(x).view(shape).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-2, -1)) * self.head_dim**-0.5  # (B, h, N, N)
        mixed = torch.matmul(scores.softmax(dim=-1), v)  # (B, h, N, d)
        return self.proj(mixed.transpose(1, 2).reshape(batch, tokens, -1))  # (B, N, E)


class StaticBlock(nn.Module):
    """Pre-LN transformer block: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, embed_dim: int, heads: int, mlp_hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dim)
        self.attn = StaticAttention(embed_dim, heads)
        self.norm2 = nn.LayerNorm(embed_dim)
        self.fc1 = nn.Linear(embed_dim, mlp_hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(mlp_hidden, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))  # (B, N, E)
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class StaticViT(nn.Module):
    """A plain ViT classifier: patch conv, [class token], position embedding, blocks, LN, head."""

    def __init__(
        self, *, embed_dim: int, heads: int, depth: int, mlp_hidden: int, patch_size: int,
        pooling: Pooling, in_channels: int, image_size: int, num_classes: int,
    ) -> None:
        super().__init__()
        self.pooling = Pooling(pooling)
        grid = image_size // patch_size
        tokens = grid * grid + (1 if self.pooling is Pooling.CLS else 0)
        self.patch_embed = nn.Conv2d(in_channels, embed_dim, patch_size, stride=patch_size)
        if self.pooling is Pooling.CLS:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, embed_dim))
        self.blocks = nn.ModuleList(StaticBlock(embed_dim, heads, mlp_hidden) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, N, E)
        if self.pooling is Pooling.CLS:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1+N, E)
        x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        pooled = x[:, 0] if self.pooling is Pooling.CLS else x.mean(dim=1)  # (B, E)
        return self.head(pooled)  # (B, classes)


def build_static(spec: ViTSpec, *, num_classes: int, in_channels: int, image_size: int) -> StaticViT:
    """A freshly initialised static ViT of `spec`: the hand-built twin of `to_static`'s output."""
    check_geometry(spec, num_classes=num_classes, in_channels=in_channels, image_size=image_size)
    return StaticViT(
        embed_dim=spec.embed_dim, heads=spec.heads, depth=spec.depth, mlp_hidden=spec.mlp_hidden,
        patch_size=spec.patch_size, pooling=spec.pooling, in_channels=in_channels,
        image_size=image_size, num_classes=num_classes,
    )
