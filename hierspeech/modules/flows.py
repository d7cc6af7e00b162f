"""Normalising-flow layers: WaveNet and DiT (AdaLN-Zero transformer) affine couplings, and Flip.

`TransformerCouplingLayer` is the official `ResidualCouplingLayer_Transformer_simple`; its attention keeps
timm's parameter names (`qkv`, `proj`) but takes a key padding mask, and the conv feed-forward input is
masked, so padded frames of a batch never reach valid ones. Without padding the math is the official one.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from hierspeech.modules.wavenet import WN


class Flip(nn.Module):
    """Reverse the channel order (its own inverse). (B, C, T) -> (B, C, T)."""

    def forward(self, x: Tensor, *args: object, reverse: bool = False, **kwargs: object) -> Tensor:
        return torch.flip(x, [1])


class ResidualCouplingLayer(nn.Module):
    """Affine coupling whose shift (and log-scale) comes from a WaveNet on the first half. (B, C, T)."""

    def __init__(
        self,
        channels: int,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        p_dropout: float = 0.0,
        gin_channels: int = 0,
        mean_only: bool = False,
    ) -> None:
        super().__init__()
        if channels % 2:
            raise ValueError(f"channels must be even, got {channels}")
        self.half_channels = channels // 2
        self.mean_only = mean_only
        self.pre = nn.Conv1d(self.half_channels, hidden_channels, 1)
        self.enc = WN(hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels, p_dropout)
        self.post = nn.Conv1d(hidden_channels, self.half_channels * (2 - mean_only), 1)
        nn.init.zeros_(self.post.weight)
        nn.init.zeros_(self.post.bias)

    def forward(self, x: Tensor, x_mask: Tensor, g: Tensor | None = None, reverse: bool = False) -> Tensor:
        """x (B, C, T), x_mask (B, 1, T), g (B, gin, 1) -> (B, C, T). Log-determinants are not computed."""
        x0, x1 = x.split(self.half_channels, dim=1)
        h = self.enc(self.pre(x0) * x_mask, x_mask, g=g)
        stats = self.post(h) * x_mask
        return torch.cat([x0, _couple(x1, stats, x_mask, self.mean_only, self.half_channels, reverse)], dim=1)


def _couple(x1: Tensor, stats: Tensor, x_mask: Tensor, mean_only: bool, half: int, reverse: bool) -> Tensor:
    if mean_only:
        m, logs = stats, torch.zeros_like(stats)
    else:
        m, logs = stats.split(half, dim=1)
    if reverse:
        return (x1 - m) * torch.exp(-logs) * x_mask
    return m + x1 * torch.exp(logs) * x_mask


class Attention(nn.Module):
    """Multi-head self-attention on (B, T, C) with a key padding mask (timm `Attention` names)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """x (B, T, C), key_mask (B, T) bool, True = valid key -> (B, T, C)."""
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(b, t, c))


class ConvFeedForward(nn.Module):
    """Conv (kernel k) -> GELU(tanh) -> 1x1 conv on (B, T, C), masked before the 1x1 conv and after it."""

    def __init__(
        self, in_features: int, hidden_features: int, kernel: int = 5, p_dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.fc1 = nn.Conv1d(in_features, hidden_features, kernel, padding=(kernel - 1) // 2)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Conv1d(hidden_features, in_features, 1)
        self.drop = nn.Dropout(p_dropout)

    def forward(self, x: Tensor, x_mask: Tensor) -> Tensor:
        """x (B, T, C), x_mask (B, 1, T) -> (B, T, C)."""
        h = self.drop(self.act(self.fc1(x.transpose(1, 2))))
        h = self.drop(self.fc2(h * x_mask) * x_mask)
        return h.transpose(1, 2)


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class DiTConvBlock(nn.Module):
    """Transformer block with adaptive LayerNorm-Zero conditioning (DiT) and a conv feed-forward. (B, T, C)."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        kernel: int = 9,
        p_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden_size, num_heads, qkv_bias=True)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp = ConvFeedForward(hidden_size, int(hidden_size * mlp_ratio), kernel, p_dropout)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))

    def forward(self, x: Tensor, c: Tensor, x_mask: Tensor) -> Tensor:
        """x (B, T, C), condition c (B, C), x_mask (B, T, 1) -> (B, T, C)."""
        x = x * x_mask
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(
            6, dim=1
        )
        h = _modulate(self.norm1(x) * x_mask, shift_msa, scale_msa)
        x = x + gate_msa.unsqueeze(1) * self.attn(h, key_mask=x_mask[..., 0] > 0) * x_mask
        h = _modulate(self.norm2(x), shift_mlp, scale_mlp) * x_mask
        return x + gate_mlp.unsqueeze(1) * self.mlp(h, x_mask.transpose(1, 2))


class TransformerCouplingLayer(nn.Module):
    """Affine coupling whose shift comes from DiT blocks on the first half (official
    `ResidualCouplingLayer_Transformer_simple`). `kernel_size`/`dilation_rate` are kept for signature
    parity and unused; the feed-forward kernel is 5 as in the release. (B, C, T)."""

    def __init__(
        self,
        channels: int,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        p_dropout: float = 0.1,
        mean_only: bool = False,
        n_heads: int = 2,
    ) -> None:
        super().__init__()
        if channels % 2:
            raise ValueError(f"channels must be even, got {channels}")
        self.half_channels = channels // 2
        self.mean_only = mean_only
        self.pre = nn.Conv1d(self.half_channels, hidden_channels, 1)
        self.enc_block = nn.ModuleList(
            DiTConvBlock(hidden_channels, n_heads, mlp_ratio=4.0, kernel=5, p_dropout=p_dropout)
            for _ in range(n_layers)
        )
        self.post = nn.Conv1d(hidden_channels, self.half_channels * (2 - mean_only), 1)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for block in self.enc_block:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.post.weight)
        nn.init.zeros_(self.post.bias)

    def forward(self, x: Tensor, x_mask: Tensor, g: Tensor, reverse: bool = False) -> Tensor:
        """x (B, C, T), x_mask (B, 1, T), g (B, hidden) -> (B, C, T)."""
        x0, x1 = x.split(self.half_channels, dim=1)
        h = (self.pre(x0) * x_mask).transpose(1, 2)
        mask_t = x_mask.transpose(1, 2)
        for block in self.enc_block:
            h = block(h, g, mask_t)
        stats = self.post(h.transpose(1, 2)) * x_mask
        return torch.cat([x0, _couple(x1, stats, x_mask, self.mean_only, self.half_channels, reverse)], dim=1)


class TransformerCouplingBlock(nn.Module):
    """`n_flows` x (DiT coupling + Flip), conditioned on a global vector through `cond_block`
    (official `ResidualCouplingBlock_Transformer`). (B, C, T)."""

    def __init__(
        self,
        channels: int,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int = 3,
        n_flows: int = 4,
        gin_channels: int = 0,
        n_heads: int = 2,
    ) -> None:
        super().__init__()
        self.cond_block = nn.Sequential(
            nn.Linear(gin_channels, 4 * hidden_channels),
            nn.SiLU(),
            nn.Linear(4 * hidden_channels, hidden_channels),
        )
        self.flows = nn.ModuleList()
        for _ in range(n_flows):
            self.flows.append(
                TransformerCouplingLayer(
                    channels,
                    hidden_channels,
                    kernel_size,
                    dilation_rate,
                    n_layers,
                    mean_only=True,
                    n_heads=n_heads,
                )
            )
            self.flows.append(Flip())

    def forward(self, x: Tensor, x_mask: Tensor, g: Tensor, reverse: bool = False) -> Tensor:
        """x (B, C, T), x_mask (B, 1, T), g (B, gin, 1) -> (B, C, T)."""
        cond = self.cond_block(g.squeeze(2))
        flows = reversed(self.flows) if reverse else self.flows
        for flow in flows:
            x = flow(x, x_mask, g=cond, reverse=reverse)
        return x
