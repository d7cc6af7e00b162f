"""Small helpers shared by convolutional generators: 'same' padding and weight-normed convolutions.

The official checkpoints store weight norm in the legacy ``torch.nn.utils.weight_norm`` layout:
``<conv>.weight_g`` (the norm, shape ``[dim0, 1, 1]``) and ``<conv>.weight_v`` (the direction), and no
``<conv>.weight``. `WNConv1d` / `WNConvTranspose1d` keep exactly that layout without relying on the
deprecated hook API, and can cache the combined weight for inference (`fuse_weight_norm`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    """Symmetric padding that keeps the length of a stride-1 convolution ("same" output)."""
    return (kernel_size * dilation - dilation) // 2


def dilated_conv_pairs(
    channels: int, kernel_size: int, dilations: Sequence[int]
) -> tuple[nn.ModuleList, nn.ModuleList]:
    """The two conv lists of a HiFi-GAN/BigVGAN residual block: ``convs1[i]`` dilated by ``dilations[i]``,
    ``convs2[i]`` undilated, all weight-normed, 'same' padded, `channels` -> `channels`."""
    convs1 = nn.ModuleList(
        WNConv1d(channels, channels, kernel_size, dilation=d, padding=get_padding(kernel_size, d)) for d in dilations
    )
    convs2 = nn.ModuleList(WNConv1d(channels, channels, kernel_size, padding=get_padding(kernel_size)) for _ in dilations)
    return convs1, convs2


def _norm_except_dim0(v: torch.Tensor) -> torch.Tensor:
    """L2 norm of `v` over every dimension but the first, shaped ``[v.shape[0], 1, ..., 1]``."""
    return v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))


class _WeightNormMixin:
    """Replaces a conv's ``weight`` parameter by ``weight_g * weight_v / ||weight_v||`` (norm over dims >= 1)."""

    weight_g: nn.Parameter
    weight_v: nn.Parameter
    _fused_weight: torch.Tensor | None

    def _init_weight_norm(self) -> None:
        weight = self.weight.detach()
        del self.weight  # the parameter; `weight` becomes a computed attribute
        self.weight_g = nn.Parameter(_norm_except_dim0(weight).clone())
        self.weight_v = nn.Parameter(weight.clone())
        # A non-persistent buffer: it follows .to(device) and stays out of the state dict.
        self.register_buffer("_fused_weight", None, persistent=False)
        self._register_load_state_dict_pre_hook(self._drop_fused_on_load)

    def _drop_fused_on_load(self, *args, **kwargs) -> None:
        self._fused_weight = None

    def compute_weight(self) -> torch.Tensor:
        """The effective convolution weight ``g * v / ||v||`` (same shape as ``weight_v``)."""
        if self._fused_weight is not None:
            return self._fused_weight
        return self.weight_v * (self.weight_g / _norm_except_dim0(self.weight_v))

    def fuse_weight_norm(self) -> None:
        """Inference only: compute the weight once and reuse it (gradients no longer reach g and v).

        The state dict keeps ``weight_g``/``weight_v``; loading a new state dict clears the cache, and the
        cache moves with the module (``.to(device)``) as a non-persistent buffer.
        """
        with torch.no_grad():
            self._fused_weight = None
            self._fused_weight = self.compute_weight().detach().clone()


class WNConv1d(_WeightNormMixin, nn.Conv1d):
    """`nn.Conv1d` with legacy-layout weight norm (state dict: ``weight_g``, ``weight_v``, ``bias``)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_weight_norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, T) -> (B, C_out, T_out)."""
        return self._conv_forward(x, self.compute_weight(), self.bias)


class WNConvTranspose1d(_WeightNormMixin, nn.ConvTranspose1d):
    """`nn.ConvTranspose1d` with legacy-layout weight norm (norm over dim 0, i.e. per input channel)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_weight_norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, T) -> (B, C_out, T_out)."""
        return F.conv_transpose1d(
            x,
            self.compute_weight(),
            self.bias,
            self.stride,
            self.padding,
            self.output_padding,
            self.groups,
            self.dilation,
        )
