"""Stochastic duration predictor (VITS-style) of the TTV, with its flow pieces.

Inference runs the normalising flow backwards from Gaussian noise to log-durations conditioned on
the text encoding. The noise is the only random draw: pass it in (`noise`) or a `generator`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hierspeech.modules.flows import Flip
from hierspeech.modules.noise import standard_normal
from hierspeech.modules.normalization import ChannelLayerNorm
from hierspeech.modules.spline import piecewise_rational_quadratic


class DDSConv(nn.Module):
    """Stack of dilated depth-separable convolutions (dilation kernel_size**i), residual, masked."""

    def __init__(self, channels: int, kernel_size: int, n_layers: int, p_dropout: float = 0.0) -> None:
        super().__init__()
        self.n_layers = n_layers
        self.drop = nn.Dropout(p_dropout)
        self.convs_sep = nn.ModuleList()
        self.convs_1x1 = nn.ModuleList()
        self.norms_1 = nn.ModuleList()
        self.norms_2 = nn.ModuleList()
        for i in range(n_layers):
            dilation = kernel_size**i
            padding = (kernel_size * dilation - dilation) // 2
            self.convs_sep.append(
                nn.Conv1d(
                    channels, channels, kernel_size, groups=channels, dilation=dilation, padding=padding
                )
            )
            self.convs_1x1.append(nn.Conv1d(channels, channels, 1))
            self.norms_1.append(ChannelLayerNorm(channels))
            self.norms_2.append(ChannelLayerNorm(channels))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, T), x_mask (B, 1, T), optional g (B, C, T) added first -> (B, C, T)."""
        if g is not None:
            x = x + g
        for i in range(self.n_layers):
            y = F.gelu(self.norms_1[i](self.convs_sep[i](x * x_mask)))
            y = F.gelu(self.norms_2[i](self.convs_1x1[i](y)))
            x = x + self.drop(y)
        return x * x_mask


class ElementwiseAffine(nn.Module):
    """Per-channel affine flow y = m + exp(logs) * x (parameters `m`, `logs` of shape (C, 1))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.m = nn.Parameter(torch.zeros(channels, 1))
        self.logs = nn.Parameter(torch.zeros(channels, 1))

    def forward(
        self, x: torch.Tensor, x_mask: torch.Tensor, reverse: bool = False, **_: object
    ) -> torch.Tensor:
        """(B, C, T) -> (B, C, T); only the inverse is needed at inference, the forward is given for symmetry."""
        if reverse:
            return (x - self.m) * torch.exp(-self.logs) * x_mask
        return (self.m + torch.exp(self.logs) * x) * x_mask


class ConvFlow(nn.Module):
    """Coupling flow whose second half goes through a rational-quadratic spline.

    The spline parameters (num_bins widths, num_bins heights, num_bins-1 derivatives per channel and
    frame) are predicted from the first half by a DDSConv conditioned on g.
    """

    def __init__(
        self,
        in_channels: int,
        filter_channels: int,
        kernel_size: int,
        n_layers: int,
        num_bins: int = 10,
        tail_bound: float = 5.0,
    ) -> None:
        super().__init__()
        self.filter_channels = filter_channels
        self.num_bins = num_bins
        self.tail_bound = tail_bound
        self.half_channels = in_channels // 2
        self.pre = nn.Conv1d(self.half_channels, filter_channels, 1)
        self.convs = DDSConv(filter_channels, kernel_size, n_layers, p_dropout=0.0)
        self.proj = nn.Conv1d(filter_channels, self.half_channels * (num_bins * 3 - 1), 1)
        nn.init.zeros_(self.proj.weight)  # starts as the identity spline, as upstream initialises it
        nn.init.zeros_(self.proj.bias)

    def forward(
        self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None, reverse: bool = False
    ) -> torch.Tensor:
        """x (B, in_channels, T), x_mask (B, 1, T), g (B, filter_channels, T) -> (B, in_channels, T)."""
        x0, x1 = torch.split(x, [self.half_channels, self.half_channels], dim=1)
        h = self.convs(self.pre(x0), x_mask, g=g)
        h = self.proj(h) * x_mask
        b, c, t = x0.shape
        h = h.reshape(b, c, -1, t).permute(0, 1, 3, 2)  # (B, half, T, 3 * bins - 1)
        scale = math.sqrt(self.filter_channels)
        widths = h[..., : self.num_bins] / scale
        heights = h[..., self.num_bins : 2 * self.num_bins] / scale
        derivatives = h[..., 2 * self.num_bins :]
        x1, _ = piecewise_rational_quadratic(
            x1, widths, heights, derivatives, inverse=reverse, tails="linear", tail_bound=self.tail_bound
        )
        return torch.cat([x0, x1], dim=1) * x_mask


class StochasticDurationPredictor(nn.Module):
    """Log-durations (B, 1, T_text) from the text encoding (B, C, T_text) and style g (B, gin, 1).

    Holds the posterior branch (`post_*`) of training only so the official state dict loads; it is
    not used at inference. As upstream, `filter_channels` is forced to `in_channels`.
    """

    def __init__(
        self,
        in_channels: int,
        filter_channels: int,
        kernel_size: int,
        p_dropout: float,
        n_flows: int = 4,
        gin_channels: int = 0,
    ) -> None:
        super().__init__()
        del filter_channels  # the official model ignores it and uses in_channels
        channels = in_channels
        self.flows = nn.ModuleList([ElementwiseAffine(2)])
        for _ in range(n_flows):
            self.flows.append(ConvFlow(2, channels, kernel_size, n_layers=3))
            self.flows.append(Flip())
        self.post_pre = nn.Conv1d(1, channels, 1)
        self.post_proj = nn.Conv1d(channels, channels, 1)
        self.post_convs = DDSConv(channels, kernel_size, n_layers=3, p_dropout=p_dropout)
        self.post_flows = nn.ModuleList([ElementwiseAffine(2)])
        for _ in range(4):
            self.post_flows.append(ConvFlow(2, channels, kernel_size, n_layers=3))
            self.post_flows.append(Flip())
        self.pre = nn.Conv1d(in_channels, channels, 1)
        self.proj = nn.Conv1d(channels, channels, 1)
        self.convs = DDSConv(channels, kernel_size, n_layers=3, p_dropout=p_dropout)
        if gin_channels:
            self.cond = nn.Conv1d(gin_channels, channels, 1)

    def inference_flows(self) -> list[nn.Module]:
        """Flows in the order inference runs them: all reversed, minus the first ConvFlow (as upstream)."""
        reversed_flows = list(reversed(self.flows))
        return [*reversed_flows[:-2], reversed_flows[-1]]

    def forward(
        self,
        x: torch.Tensor,
        x_mask: torch.Tensor,
        g: torch.Tensor | None = None,
        noise_scale: float = 1.0,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Sample log-durations (B, 1, T_text).

        x (B, C, T_text), x_mask (B, 1, T_text), g (B, gin, 1). `noise` (B, 2, T_text) replaces the
        standard-normal draw (it is still multiplied by `noise_scale`); otherwise it is drawn with
        `generator` (on its own device, see `hierspeech.modules.noise`; torch's global RNG when None), like
        the official `torch.randn(B, 2, T)`.
        """
        h = self.pre(x)
        if g is not None:
            h = h + self.cond(g)
        h = self.convs(h, x_mask)
        h = self.proj(h) * x_mask
        if noise is None:
            noise = standard_normal((x.size(0), 2, x.size(2)), generator, x.device, x.dtype)
        z = noise.to(device=x.device, dtype=x.dtype) * noise_scale
        for flow in self.inference_flows():
            z = flow(z, x_mask, g=h, reverse=True)
        return z[:, :1]
