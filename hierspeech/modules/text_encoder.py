"""Phoneme encoder of the TTV: token ids -> prior mean / log-std per token, conditioned on style."""

from __future__ import annotations

import math

import torch
from torch import nn

from hierspeech.modules.attention import Encoder
from hierspeech.modules.masking import frame_mask


class TextEncoder(nn.Module):
    """Embedding, transformer, + style projection, second transformer, projection to (m, logs).

    Official layout of the TTV's `enc_p`: two relative-position transformer encoders with the style
    vector added in between.
    """

    def __init__(
        self,
        n_vocab: int,
        out_channels: int,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int,
        p_dropout: float,
        gin_channels: int = 256,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.hidden_channels = hidden_channels
        self.emb = nn.Embedding(n_vocab, hidden_channels)
        nn.init.normal_(self.emb.weight, 0.0, hidden_channels**-0.5)
        self.cond = nn.Conv1d(gin_channels, hidden_channels, 1)
        self.encoder = Encoder(hidden_channels, filter_channels, n_heads, n_layers, kernel_size, p_dropout)
        self.encoder2 = Encoder(hidden_channels, filter_channels, n_heads, n_layers, kernel_size, p_dropout)
        self.proj = nn.Conv1d(hidden_channels, out_channels * 2, 1)

    def forward(
        self, tokens: torch.Tensor, lengths: torch.Tensor, g: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """tokens (B, T) int64, lengths (B,), g (B, gin, 1).

        Returns x (B, hidden, T), m (B, out, T), logs (B, out, T), mask (B, 1, T); all zero on padding.
        """
        x = self.emb(tokens) * math.sqrt(self.hidden_channels)
        x = x.transpose(1, 2)
        x_mask = frame_mask(lengths, x.size(2), dtype=x.dtype)
        x = self.encoder(x * x_mask, x_mask)
        x = x + self.cond(g)
        x = self.encoder2(x * x_mask, x_mask)
        stats = self.proj(x) * x_mask
        m, logs = torch.split(stats, self.out_channels, dim=1)
        return x, m, logs, x_mask
