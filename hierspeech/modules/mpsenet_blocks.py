"""MP-SENet's convolutional parts: dense encoder, magnitude-mask decoder, phase decoder.

Tensors are laid out (B, C, T, F). Every function takes an optional frame mask (B, 1, T, 1) (1 on valid
frames, 0 on padding) so a batch of different lengths gives each item what it would get alone:
padded frames are zeroed before every convolution that looks along time, and instance norms take
their statistics over valid frames only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Instance norm and PReLU are per channel: applied this many channels at a time they give the same values,
# while the intermediates stay small (full-size fresh tensors cost page faults and cache misses on CPU).
CHANNELS_PER_STEP = 8


def run_conv(conv: nn.Module, x: Tensor) -> Tensor:
    """conv(x). On CPU a transposed convolution runs on a channels-last copy: oneDNN's kernel for that
    layout is ~3x faster than for (B, C, T, F) and gives the same values; the result is (B, C, T, F)."""
    if isinstance(conv, nn.ConvTranspose2d) and x.device.type == "cpu":
        return conv(x.contiguous(memory_format=torch.channels_last)).contiguous()
    return conv(x)


class MaskableInstanceNorm2d(nn.InstanceNorm2d):
    """`nn.InstanceNorm2d(affine=True)` whose statistics can be restricted to valid frames."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, affine=True)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B, C, T, F) -> (B, C, T, F); mask (B, 1, T, 1) or None (all frames valid)."""
        if mask is None:
            return super().forward(x)
        count = mask.sum(dim=(2, 3), keepdim=True) * x.shape[3]
        mean = (x * mask).sum(dim=(2, 3), keepdim=True) / count
        var = (((x - mean) * mask) ** 2).sum(dim=(2, 3), keepdim=True) / count
        x = (x - mean) * torch.rsqrt(var + self.eps)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class ConvNormAct(nn.Sequential):
    """Convolution (or transposed convolution) -> instance norm -> PReLU, as indices 0, 1, 2."""

    def __init__(self, conv: nn.Module, channels: int) -> None:
        super().__init__(conv, MaskableInstanceNorm2d(channels), nn.PReLU(channels))

    def forward(self, x: Tensor, mask: Tensor | None = None, out: Tensor | None = None) -> Tensor:
        """(B, C_in, T, F_in) -> (B, C, T, F_out), written into `out` when given (e.g. a slice of a buffer)."""
        conv, norm, act = self
        y = run_conv(conv, x)
        if mask is not None:
            y = act(norm(y, mask))
            return y if out is None else out.copy_(y)
        out = torch.empty_like(y) if out is None else out
        for first in range(0, y.shape[1], CHANNELS_PER_STEP):
            group = slice(first, first + CHANNELS_PER_STEP)
            normed = F.instance_norm(y[:, group], weight=norm.weight[group], bias=norm.bias[group], eps=norm.eps)
            out[:, group] = F.prelu(normed, act.weight[group])
        return out


class DenseBlock(nn.Module):
    """Densely connected 3x3 convolutions, dilated 1, 2, 4, 8 along time."""

    def __init__(self, channels: int, depth: int = 4, kernel_size: tuple[int, int] = (3, 3)) -> None:
        super().__init__()
        self.dense_block = nn.ModuleList()
        for i in range(depth):
            dilation = 2**i
            padding = (dilation * (kernel_size[0] - 1) // 2, (kernel_size[1] - 1) // 2)
            conv = nn.Conv2d(channels * (i + 1), channels, kernel_size, dilation=(dilation, 1), padding=padding)
            self.dense_block.append(ConvNormAct(conv, channels))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B, C, T, F) -> (B, C, T, F); the input must already be zero on padded frames.

        Layer i sees the concatenation [out_{i-1}, ..., out_0, x]. Rather than concatenating anew at
        each layer, outputs are written right-to-left into one preallocated buffer whose tail slices
        are exactly those concatenations (each layer writes straight into its slot), and the last output
        is never copied into it.
        """
        depth = len(self.dense_block)
        b, c, t, f = x.shape
        features = x.new_empty(b, depth * c, t, f)
        features[:, (depth - 1) * c :] = x
        for i, layer in enumerate(self.dense_block[:-1]):
            slot = layer(features[:, (depth - 1 - i) * c :], mask, out=features[:, (depth - 2 - i) * c : (depth - 1 - i) * c])
            if mask is not None:
                slot.mul_(mask)
        x = self.dense_block[-1](features, mask)
        return x if mask is None else x * mask


class DenseEncoder(nn.Module):
    """(B, 2, T, F) magnitude+phase -> (B, C, T, (F - 3) // 2 + 1) features."""

    def __init__(self, channels: int, in_channels: int = 2) -> None:
        super().__init__()
        self.dense_conv_1 = ConvNormAct(nn.Conv2d(in_channels, channels, (1, 1)), channels)
        self.dense_block = DenseBlock(channels)
        self.dense_conv_2 = ConvNormAct(nn.Conv2d(channels, channels, (1, 3), (1, 2)), channels)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B, 2, T, F) -> (B, C, T, F')."""
        x = self.dense_conv_1(x, mask)
        if mask is not None:
            x = x * mask
        return self.dense_conv_2(self.dense_block(x, mask), mask)


class LearnableSigmoid2d(nn.Module):
    """beta * sigmoid(slope_f * x) with one learnt slope per frequency bin."""

    def __init__(self, n_freq: int, beta: float) -> None:
        super().__init__()
        self.beta = beta
        self.slope = nn.Parameter(torch.ones(n_freq, 1))

    def forward(self, x: Tensor) -> Tensor:
        """(B, 1, T, F) -> (B, 1, T, F)."""
        return self.beta * torch.sigmoid(self.slope.view(1, 1, 1, -1) * x)


class MaskDecoder(nn.Module):
    """Features (B, C, T, F') -> magnitude mask (B, 1, T, n_freq) in (0, beta)."""

    def __init__(self, channels: int, n_freq: int, beta: float) -> None:
        super().__init__()
        self.dense_block = DenseBlock(channels)
        self.mask_conv = nn.Sequential(
            nn.ConvTranspose2d(channels, channels, (1, 3), (1, 2)),
            nn.Conv2d(channels, 1, (1, 1)),
            MaskableInstanceNorm2d(1),
            nn.PReLU(1),
            nn.Conv2d(1, 1, (1, 1)),
        )
        self.lsigmoid = LearnableSigmoid2d(n_freq, beta)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B, C, T, F') -> (B, 1, T, n_freq)."""
        upsample, project, norm, act, out = self.mask_conv
        x = self.dense_block(x if mask is None else x * mask, mask)
        return self.lsigmoid(out(act(norm(project(run_conv(upsample, x)), mask))))


class PhaseDecoder(nn.Module):
    """Features (B, C, T, F') -> wrapped phase (B, 1, T, n_freq) from a real/imaginary pair (atan2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.dense_block = DenseBlock(channels)
        self.phase_conv = ConvNormAct(nn.ConvTranspose2d(channels, channels, (1, 3), (1, 2)), channels)
        self.phase_conv_r = nn.Conv2d(channels, 1, (1, 1))
        self.phase_conv_i = nn.Conv2d(channels, 1, (1, 1))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B, C, T, F') -> (B, 1, T, n_freq)."""
        x = self.phase_conv(self.dense_block(x if mask is None else x * mask, mask), mask)
        return torch.atan2(self.phase_conv_i(x), self.phase_conv_r(x))


