"""The synthesizer's latent encoders (official `PosteriorSFEncoder`, `PosteriorAudioEncoder`).

Both return the Gaussian statistics (m, logs) of the latent; sampling is left to the caller so that
every random draw is explicit (the official forward samples a z that inference discards).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hierspeech.modules.alias_free import Activation1d
from hierspeech.modules.amp_block import AMPBlock, multi_receptive_field
from hierspeech.modules.common import WNConv1d
from hierspeech.modules.snake import SnakeBeta
from hierspeech.modules.wavenet import WN


class PosteriorSFEncoder(nn.Module):
    """Source-filter encoder: w2v features (B, 1024, T) and log-F0 (B, 1, 4T) -> (m, logs), each (B, out, T)."""

    def __init__(
        self,
        src_channels: int,
        out_channels: int,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        gin_channels: int = 0,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.pre_source = nn.Conv1d(src_channels, hidden_channels, 1)
        self.pre_filter = nn.Conv1d(1, hidden_channels, kernel_size=9, stride=4, padding=4)
        half = n_layers // 2
        self.source_enc = WN(hidden_channels, kernel_size, dilation_rate, half, gin_channels=gin_channels)
        self.filter_enc = WN(hidden_channels, kernel_size, dilation_rate, half, gin_channels=gin_channels)
        self.enc = WN(hidden_channels, kernel_size, dilation_rate, half, gin_channels=gin_channels)
        self.proj = nn.Conv1d(hidden_channels, out_channels * 2, 1)

    def forward(
        self, x_src: Tensor, x_ftr: Tensor, x_mask: Tensor, g: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """x_src (B, src, T), x_ftr (B, 1, 4T), x_mask (B, 1, T), g (B, gin, 1) -> (m, logs) (B, out, T)."""
        x_src = self.source_enc(self.pre_source(x_src) * x_mask, x_mask, g=g)
        x_ftr = self.filter_enc(self.pre_filter(x_ftr) * x_mask, x_mask, g=g)
        stats = self.proj(self.enc(x_src + x_ftr, x_mask, g=g)) * x_mask
        m, logs = stats.split(self.out_channels, dim=1)
        return m, logs


class PosteriorAudioEncoder(nn.Module):
    """Training-time posterior: linear spectrogram (B, spec, T) + waveform (B, 1, 320T) -> (m, logs) (B, out, T).

    Not used by voice conversion; built so the official state dict loads strictly.
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
        self.n_kernels = 3
        channels = [16, 32, 64, 128, 192]
        self.pre = nn.Conv1d(in_channels, hidden_channels, 1)
        self.down_pre = nn.Conv1d(1, channels[0], 7, 1, padding=3)
        self.resblocks = nn.ModuleList(
            AMPBlock(channels[i + 1], k, d)
            for i in range(4)
            for k, d in zip([3, 7, 11], [[1, 3, 5]] * 3, strict=True)
        )
        self.downs = nn.ModuleList(
            WNConv1d(channels[i], channels[i + 1], k, rate, padding=(k - 1) // 2)
            for i, (rate, k) in enumerate(zip([8, 5, 4, 2], [17, 10, 8, 4], strict=True))
        )
        self.activation_post = Activation1d(activation=SnakeBeta(channels[-1], alpha_logscale=True))
        self.conv_post = nn.Conv1d(channels[-1], hidden_channels, 7, 1, padding=3)
        self.enc = WN(hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels=gin_channels)
        self.proj = nn.Conv1d(hidden_channels * 2, out_channels * 2, 1)

    def forward(
        self, x: Tensor, x_audio: Tensor, x_mask: Tensor, g: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """x (B, spec, T), x_audio (B, 1, 320T), x_mask (B, 1, T), g (B, gin, 1) -> (m, logs) (B, out, T)."""
        a = self.down_pre(x_audio)
        for i, down in enumerate(self.downs):
            a = multi_receptive_field(self.resblocks[i * self.n_kernels : (i + 1) * self.n_kernels], down(a))
        a = self.conv_post(self.activation_post(a)) * x_mask
        x = self.enc(self.pre(x) * x_mask, x_mask, g=g)
        stats = self.proj(torch.cat([x, a], dim=1)) * x_mask
        m, logs = stats.split(self.out_channels, dim=1)
        return m, logs
