"""Prosody decoder: latent -> the first `mel_size` mel bins (official `MelDecoder`, a training target)."""

from __future__ import annotations

from torch import Tensor, nn

from hierspeech.modules.attention import Encoder


class MelDecoder(nn.Module):
    """(B, hidden, T) + style (B, gin, 1) -> (B, mel_size, T). Not used by voice conversion."""

    def __init__(
        self,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int,
        p_dropout: float,
        mel_size: int = 20,
        gin_channels: int = 0,
    ) -> None:
        super().__init__()
        self.conv_pre = nn.Conv1d(hidden_channels, hidden_channels, 3, 1, padding=1)
        self.encoder = Encoder(hidden_channels, filter_channels, n_heads, n_layers, kernel_size, p_dropout)
        self.proj = nn.Conv1d(hidden_channels, mel_size, 1, bias=False)
        if gin_channels:
            self.cond = nn.Conv1d(gin_channels, hidden_channels, 1)

    def forward(self, x: Tensor, x_mask: Tensor, g: Tensor | None = None) -> Tensor:
        """x (B, hidden, T), x_mask (B, 1, T), g (B, gin, 1) or None -> (B, mel_size, T)."""
        x = self.conv_pre(x * x_mask)
        if g is not None:
            x = x + self.cond(g)
        return self.proj(self.encoder(x * x_mask, x_mask)) * x_mask
