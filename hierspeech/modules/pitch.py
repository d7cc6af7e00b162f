"""F0 predictor of the TTV: a small HiFi-GAN-style upsampler from w2v features to log-F0.

The official predictor runs without any mask, so padded frames of a ragged batch leak into valid
ones through the 7-tap convolutions. Here every stage takes an optional frame mask (upsampled with
the signal); with a mask of ones, or none, the result is the official one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hierspeech.modules.common import WNConvTranspose1d, dilated_conv_pairs

LRELU_SLOPE = 0.1


def _apply_mask(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return x if mask is None else x * mask


class ResBlock1(nn.Module):
    """HiFi-GAN residual block: three (dilated conv, conv) pairs, each with a skip connection.

    Convolutions are weight-normed in the official layout (`weight_g` / `weight_v` keys).
    """

    def __init__(self, channels: int, kernel_size: int = 3, dilations: tuple[int, ...] = (1, 3, 5)) -> None:
        super().__init__()
        self.convs1, self.convs2 = dilated_conv_pairs(channels, kernel_size, dilations)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, T), optional mask (B, 1, T) -> (B, C, T)."""
        for dilated, plain in zip(self.convs1, self.convs2, strict=True):
            h = dilated(_apply_mask(F.leaky_relu(x, LRELU_SLOPE), x_mask))
            h = plain(_apply_mask(F.leaky_relu(h, LRELU_SLOPE), x_mask))
            x = x + h
        return _apply_mask(x, x_mask)


class PitchPredictor(nn.Module):
    """w2v features (B, 1024, T) + style (B, 256, 1) -> log-F0 (B, 1, 4T).

    Two transposed-conv upsamplings by 2, each followed by the mean of three `ResBlock1`
    (kernels 3/5/7, dilations 1/3/5). Sizes are those of the released TTV (fixed upstream).
    """

    def __init__(
        self,
        in_channels: int = 1024,
        gin_channels: int = 256,
        initial_channels: int = 256,
        upsample_rates: tuple[int, ...] = (2, 2),
        upsample_kernel_sizes: tuple[int, ...] = (4, 4),
        resblock_kernel_sizes: tuple[int, ...] = (3, 5, 7),
        resblock_dilations: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
    ) -> None:
        super().__init__()
        self.upsample_rates = tuple(upsample_rates)
        self.num_kernels = len(resblock_kernel_sizes)
        self.conv_pre = nn.Conv1d(in_channels, initial_channels, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        channels = initial_channels
        for rate, kernel in zip(upsample_rates, upsample_kernel_sizes, strict=True):
            self.ups.append(
                WNConvTranspose1d(channels, channels // 2, kernel, rate, padding=(kernel - rate) // 2)
            )
            channels //= 2
        for i in range(len(self.ups)):
            ch = initial_channels // 2 ** (i + 1)
            for kernel, dilations in zip(resblock_kernel_sizes, resblock_dilations, strict=True):
                self.resblocks.append(ResBlock1(ch, kernel, tuple(dilations)))
        self.conv_post = nn.Conv1d(channels, 1, 7, padding=3, bias=False)
        self.cond = nn.Conv1d(gin_channels, initial_channels, 1)

    @property
    def upsample_factor(self) -> int:
        """Output frames per input frame (4 for the released model)."""
        factor = 1
        for rate in self.upsample_rates:
            factor *= rate
        return factor

    def forward(self, x: torch.Tensor, g: torch.Tensor, x_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, 1024, T), g (B, 256, 1), optional x_mask (B, 1, T) -> log-F0 (B, 1, T * upsample_factor).

        With a mask, padded frames are zeroed before every convolution, so each item of a ragged
        batch gets the output it would get alone (positions past its length are zero).
        """
        x = _apply_mask(self.conv_pre(x) + self.cond(g), x_mask)
        mask = x_mask
        for i, (up, rate) in enumerate(zip(self.ups, self.upsample_rates, strict=True)):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            if mask is not None:
                mask = mask.repeat_interleave(rate, dim=2)
                x = x * mask
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            total = blocks[0](x, mask)
            for block in blocks[1:]:
                total = total + block(x, mask)
            x = total / self.num_kernels
        # the final activation uses torch's default slope (0.01), as the official model does
        x = self.conv_post(F.leaky_relu(x))
        return _apply_mask(x, mask)
