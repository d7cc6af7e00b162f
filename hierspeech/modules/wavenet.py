"""WaveNet-style stack of gated dilated convolutions (VITS `WN`), used by posterior encoders and flows."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hierspeech.modules.common import WNConv1d, get_padding


def gated_tanh_sigmoid(x: Tensor, n_channels: int) -> Tensor:
    """tanh(first half) * sigmoid(second half) along channels: (B, 2C, T) -> (B, C, T)."""
    return torch.tanh(x[:, :n_channels]) * torch.sigmoid(x[:, n_channels:])


class WN(nn.Module):
    """Non-causal WaveNet body with optional global conditioning. (B, C, T) -> (B, C, T)."""

    def __init__(
        self,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        gin_channels: int = 0,
        p_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.hidden_channels = hidden_channels
        self.n_layers = n_layers
        self.gin_channels = gin_channels
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        self.drop = nn.Dropout(p_dropout)
        for i in range(n_layers):
            dilation = dilation_rate**i
            self.in_layers.append(
                WNConv1d(
                    hidden_channels,
                    2 * hidden_channels,
                    kernel_size,
                    dilation=dilation,
                    padding=get_padding(kernel_size, dilation),
                )
            )
            # The last layer only feeds the skip path.
            out = 2 * hidden_channels if i < n_layers - 1 else hidden_channels
            self.res_skip_layers.append(WNConv1d(hidden_channels, out, 1))
        if gin_channels:
            self.cond_layer = WNConv1d(gin_channels, 2 * hidden_channels * n_layers, 1)

    def forward(self, x: Tensor, x_mask: Tensor, g: Tensor | None = None) -> Tensor:
        """x (B, C, T), x_mask (B, 1, T), g (B, gin, 1) or None -> (B, C, T), zero on padding."""
        c = self.hidden_channels
        cond = self.cond_layer(g) if g is not None else None
        output = torch.zeros_like(x)
        for i, (in_layer, res_skip) in enumerate(zip(self.in_layers, self.res_skip_layers, strict=True)):
            h = in_layer(x)
            if cond is not None:
                h = h + cond[:, 2 * c * i : 2 * c * (i + 1)]
            acts = self.drop(gated_tanh_sigmoid(h, c))
            res_skip_acts = res_skip(acts)
            if i < self.n_layers - 1:
                x = (x + res_skip_acts[:, :c]) * x_mask
                output = output + res_skip_acts[:, c:]
            else:
                output = output + res_skip_acts
        return output * x_mask
