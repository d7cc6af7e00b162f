"""TTV modules between the latent z and wav2vec-style (MMS layer 7) features."""

from __future__ import annotations

import torch
from torch import nn

from hierspeech.modules.noise import standard_normal
from hierspeech.modules.wavenet import WN


class W2VDecoder(nn.Module):
    """Latent z (B, in, T) -> w2v features (B, out, T) through a conditioned WaveNet."""

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        output_size: int = 1024,
        gin_channels: int = 0,
        p_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.pre = nn.Conv1d(in_channels, hidden_channels, 1)
        self.enc = WN(
            hidden_channels,
            kernel_size,
            dilation_rate,
            n_layers,
            gin_channels=gin_channels,
            p_dropout=p_dropout,
        )
        self.proj = nn.Conv1d(hidden_channels, output_size, 1)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, in, T), x_mask (B, 1, T), g (B, gin, 1) -> (B, output_size, T), zero on padding."""
        x = self.pre(x * x_mask) * x_mask
        x = self.enc(x, x_mask, g=g)
        return self.proj(x) * x_mask


class W2VPosteriorEncoder(nn.Module):
    """Training-time posterior q(z | w2v) (official `enc_q`); kept so the official state dict loads.

    Not used by TTV inference.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        gin_channels: int = 0,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.pre = nn.Conv1d(in_channels, hidden_channels, 1)
        self.enc = WN(hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels=gin_channels)
        self.proj = nn.Conv1d(hidden_channels, out_channels * 2, 1)

    def forward(
        self,
        x: torch.Tensor,
        x_mask: torch.Tensor,
        g: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, in, T), x_mask (B, 1, T), g (B, gin, 1) -> z, m, logs, each (B, out, T)."""
        x = self.enc(self.pre(x) * x_mask, x_mask, g=g)
        m, logs = torch.split(self.proj(x) * x_mask, self.out_channels, dim=1)
        eps = standard_normal(m.shape, generator, m.device, m.dtype)
        z = (m + eps * torch.exp(logs)) * x_mask
        return z, m, logs
