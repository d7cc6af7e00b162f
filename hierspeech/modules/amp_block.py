"""BigVGAN AMP residual block with three dilated conv pairs and anti-aliased SnakeBeta activations."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from hierspeech.modules.alias_free import Activation1d
from hierspeech.modules.common import WNConv1d, get_padding
from hierspeech.modules.snake import SnakeBeta


def _snake_beta_act(channels: int) -> Activation1d:
    return Activation1d(activation=SnakeBeta(channels, alpha_logscale=True))


class AMPBlock1(nn.Module):
    """x + conv2(act(conv1(act(x)))) for each dilation, with weight-normed convs. (B, C, T) -> (B, C, T)."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: Sequence[int] = (1, 3, 5)) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            WNConv1d(channels, channels, kernel_size, dilation=d, padding=get_padding(kernel_size, d))
            for d in dilation
        )
        self.convs2 = nn.ModuleList(
            WNConv1d(channels, channels, kernel_size, padding=get_padding(kernel_size)) for _ in dilation
        )
        self.activations = nn.ModuleList(_snake_beta_act(channels) for _ in range(2 * len(dilation)))

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, T) -> (B, C, T)."""
        acts = self.activations
        # Without autograd each activation's output may live in a reused scratch tensor (see
        # hierspeech.modules.scratch): it is consumed at once by the next convolution.
        reuse = not torch.is_grad_enabled()
        for i, (conv1, conv2) in enumerate(zip(self.convs1, self.convs2, strict=True)):
            h = conv1(acts[2 * i](x, scratch_output=reuse))
            x = x + conv2(acts[2 * i + 1](h, scratch_output=reuse))
        return x


def multi_receptive_field(blocks: Sequence[nn.Module], x: Tensor) -> Tensor:
    """Mean of parallel residual blocks on the same input (HiFi-GAN's multi-receptive-field fusion)."""
    total = blocks[0](x)
    for block in blocks[1:]:
        total = total + block(x)
    return total / len(blocks)
