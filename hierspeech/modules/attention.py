"""VITS-style self-attention encoder with windowed relative positions (official `attentions.py` layout).

Masked keys get a score of -1e4 before the softmax, as in the official code, so valid query frames never
see padding and a padded batch equals single runs on the valid frames.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from hierspeech.modules.normalization import ChannelLayerNorm

MASKED_SCORE = -1e4


def _band_indices(length: int, window: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """For every (query i, key j) pair: relative slot j - i + window and whether |j - i| <= window. (T, T)."""
    pos = torch.arange(length, device=device)
    offset = pos.unsqueeze(0) - pos.unsqueeze(1)
    return (offset + window).clamp(0, 2 * window), offset.abs() <= window


class MultiHeadAttention(nn.Module):
    """Multi-head attention on (B, C, T) tensors with 1x1-conv projections.

    With `window_size`, learned relative-position embeddings (`emb_rel_k`, `emb_rel_v`, shared by the heads)
    are added for offsets within +-window_size (Shaw et al. 2018), as in VITS.
    """

    def __init__(
        self,
        channels: int,
        out_channels: int,
        n_heads: int,
        p_dropout: float = 0.0,
        window_size: int | None = None,
        proximal_init: bool = False,
    ) -> None:
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"channels ({channels}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.k_channels = channels // n_heads
        self.window_size = window_size
        if window_size is not None:
            std = self.k_channels**-0.5
            self.emb_rel_k = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * std)
            self.emb_rel_v = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * std)
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, out_channels, 1)
        self.drop = nn.Dropout(p_dropout)
        for conv in (self.conv_q, self.conv_k, self.conv_v):
            nn.init.xavier_uniform_(conv.weight)
        if proximal_init:
            with torch.no_grad():
                self.conv_k.weight.copy_(self.conv_q.weight)
                self.conv_k.bias.copy_(self.conv_q.bias)

    def _heads(self, x: Tensor) -> Tensor:
        b, _, t = x.shape
        return x.view(b, self.n_heads, self.k_channels, t).transpose(2, 3)

    def forward(self, x: Tensor, c: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """Queries from x (B, C, T_q), keys/values from c (B, C, T_k); attn_mask (B, 1, T_q, T_k), 0 = blocked.

        Returns (B, out_channels, T_q).
        """
        q = self._heads(self.conv_q(x)) / math.sqrt(self.k_channels)
        k = self._heads(self.conv_k(c))
        v = self._heads(self.conv_v(c))
        scores = q @ k.transpose(-2, -1)
        band = None
        if self.window_size is not None:
            if q.size(2) != k.size(2):
                raise ValueError("relative positions need self-attention (equal query and key lengths)")
            band = _band_indices(q.size(2), self.window_size, q.device)
            rel_logits = q @ self.emb_rel_k.unsqueeze(0).transpose(-2, -1)  # (B, H, T, 2w+1)
            slot, inside = band
            local = torch.gather(rel_logits, 3, slot.expand(*rel_logits.shape[:2], -1, -1))
            scores = scores + local.masked_fill(~inside, 0.0)
        if attn_mask is not None:
            scores = scores.masked_fill(attn_mask == 0, MASKED_SCORE)
        weights = self.drop(F.softmax(scores, dim=-1))
        out = weights @ v
        if band is not None:
            out = out + self._relative_values(weights, band)
        b, h, t, d = out.shape
        return self.conv_o(out.transpose(2, 3).reshape(b, h * d, t))

    def _relative_values(self, weights: Tensor, band: tuple[Tensor, Tensor]) -> Tensor:
        """Sum of attention weights times the value embedding of each relative offset. (B, H, T, D)."""
        slot, inside = band
        w = self.window_size
        per_offset = weights.new_zeros(*weights.shape[:3], 2 * w + 1)
        per_offset.scatter_add_(3, slot.expand_as(weights), weights.masked_fill(~inside, 0.0))
        return per_offset @ self.emb_rel_v.unsqueeze(0)


class FFN(nn.Module):
    """Two same-padded convolutions with ReLU between, masked before each convolution. (B, C, T)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        filter_channels: int,
        kernel_size: int,
        p_dropout: float = 0.0,
        causal: bool = False,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.causal = causal
        self.conv_1 = nn.Conv1d(in_channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, out_channels, kernel_size)
        self.drop = nn.Dropout(p_dropout)

    def _pad(self, x: Tensor) -> Tensor:
        k = self.kernel_size
        if k == 1:
            return x
        left, right = (k - 1, 0) if self.causal else ((k - 1) // 2, k // 2)
        return F.pad(x, (left, right))

    def forward(self, x: Tensor, x_mask: Tensor) -> Tensor:
        """x (B, C_in, T), x_mask (B, 1, T) -> (B, C_out, T)."""
        x = torch.relu(self.conv_1(self._pad(x * x_mask)))
        x = self.conv_2(self._pad(self.drop(x) * x_mask))
        return x * x_mask


class Encoder(nn.Module):
    """Post-norm transformer encoder: relative self-attention + conv FFN per layer. (B, C, T)."""

    def __init__(
        self,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int = 1,
        p_dropout: float = 0.0,
        window_size: int = 4,
    ) -> None:
        super().__init__()
        self.n_layers = n_layers
        self.drop = nn.Dropout(p_dropout)
        self.attn_layers = nn.ModuleList()
        self.norm_layers_1 = nn.ModuleList()
        self.ffn_layers = nn.ModuleList()
        self.norm_layers_2 = nn.ModuleList()
        for _ in range(n_layers):
            self.attn_layers.append(
                MultiHeadAttention(
                    hidden_channels, hidden_channels, n_heads, p_dropout, window_size=window_size
                )
            )
            self.norm_layers_1.append(ChannelLayerNorm(hidden_channels))
            self.ffn_layers.append(
                FFN(hidden_channels, hidden_channels, filter_channels, kernel_size, p_dropout)
            )
            self.norm_layers_2.append(ChannelLayerNorm(hidden_channels))

    def forward(self, x: Tensor, x_mask: Tensor) -> Tensor:
        """x (B, C, T), x_mask (B, 1, T) -> (B, C, T), zero on padding."""
        attn_mask = x_mask.unsqueeze(2) * x_mask.unsqueeze(-1)
        x = x * x_mask
        for attn, norm1, ffn, norm2 in zip(
            self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2, strict=True
        ):
            x = norm1(x + self.drop(attn(x, x, attn_mask)))
            x = norm2(x + self.drop(ffn(x, x_mask)))
        return x * x_mask
