"""BigVGAN's AMP residual block (dilated conv pairs around anti-aliased SnakeBeta) and the mean of
parallel blocks; shared by SpeechSR (official ``AMPBlock0``) and the synthesizer (``AMPBlock1``), whose
official classes compute the same function with the same parameter names."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from hierspeech.modules.alias_free import Activation1d
from hierspeech.modules.common import dilated_conv_pairs
from hierspeech.modules.receptive_field import activation_radius, conv_radius
from hierspeech.modules.snake import SnakeBeta


class AMPBlock(nn.Module):
    """``x <- x + conv2(act(conv1_d(act(x))))`` for each dilation ``d``, weight-normed convs, anti-aliased
    SnakeBeta activations. (B, C, T) -> (B, C, T). State dict: ``convs1``, ``convs2``, ``activations``."""

    def __init__(self, channels: int, kernel_size: int = 3, dilations: Sequence[int] = (1, 3, 5)) -> None:
        super().__init__()
        self.convs1, self.convs2 = dilated_conv_pairs(channels, kernel_size, dilations)
        self.activations = nn.ModuleList(
            Activation1d(SnakeBeta(channels, alpha_logscale=True)) for _ in range(2 * len(dilations))
        )

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, T) -> (B, C, T)."""
        # Without autograd each activation's output may live in a reused scratch tensor (see
        # hierspeech.modules.scratch): it is consumed at once by the next convolution, and the sums are
        # done in place on the fresh convolution output (same values as out of place).
        inplace = not torch.is_grad_enabled()
        for i, (conv1, conv2) in enumerate(zip(self.convs1, self.convs2, strict=True)):
            y = conv1(self.activations[2 * i](x, scratch_output=inplace))
            y = conv2(self.activations[2 * i + 1](y, scratch_output=inplace))
            x = y.add_(x) if inplace else y + x
        return x

    def radius(self) -> int:
        """Samples of context each output needs on either side (same on both sides)."""
        total = 0
        for i, (conv1, conv2) in enumerate(zip(self.convs1, self.convs2, strict=True)):
            total += activation_radius(self.activations[2 * i]) + conv_radius(conv1)
            total += activation_radius(self.activations[2 * i + 1]) + conv_radius(conv2)
        return total


def multi_receptive_field(blocks: Sequence[nn.Module], x: Tensor) -> Tensor:
    """Mean of parallel residual blocks on the same input (HiFi-GAN's multi-receptive-field fusion).

    Summed in block order, in place without autograd (same values either way).
    """
    inplace = not torch.is_grad_enabled()
    total = blocks[0](x)
    for block in blocks[1:]:
        total = total.add_(block(x)) if inplace else total + block(x)
    return total.div_(len(blocks)) if inplace else total / len(blocks)


def multi_receptive_field_radius(blocks: Sequence[AMPBlock]) -> int:
    """Context (samples, each side) of `multi_receptive_field` over `blocks`."""
    return max(block.radius() for block in blocks)
