"""The synthesizer's waveform generators: the source network (F0 -> excitation) and the BigVGAN-style
decoder (latent + excitation -> 16 kHz audio), official `SourceNetwork` / `Generator` / `DBlock` layouts."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn
from torch.nn import functional as F

from hierspeech.modules.alias_free import Activation1d
from hierspeech.modules.amp_block import AMPBlock, multi_receptive_field, multi_receptive_field_radius
from hierspeech.modules.common import WNConv1d, WNConvTranspose1d
from hierspeech.modules.receptive_field import activation_radius, conv_radius, transposed_conv_radius
from hierspeech.modules.snake import SnakeBeta

LRELU_SLOPE = 0.1


def _upsampling_stack(
    in_channels: int,
    rates: Sequence[int],
    kernel_sizes: Sequence[int],
    resblock_kernel_sizes: Sequence[int],
    resblock_dilation_sizes: Sequence[Sequence[int]],
) -> tuple[nn.ModuleList, nn.ModuleList, int]:
    """Transposed convs halving the channels at each rate, and AMP blocks after each. Returns (ups, blocks, C_out)."""
    ups = nn.ModuleList()
    blocks = nn.ModuleList()
    channels = in_channels
    for i, (rate, kernel) in enumerate(zip(rates, kernel_sizes, strict=True)):
        channels = in_channels // 2 ** (i + 1)
        ups.append(
            WNConvTranspose1d(in_channels // 2**i, channels, kernel, rate, padding=(kernel - rate) // 2)
        )
    for i in range(len(ups)):
        ch = in_channels // 2 ** (i + 1)
        for k, d in zip(resblock_kernel_sizes, resblock_dilation_sizes, strict=True):
            blocks.append(AMPBlock(ch, k, d))
    return ups, blocks, channels


def _stack_radius(ups: nn.ModuleList, blocks: nn.ModuleList, n_kernels: int) -> tuple[float, int]:
    """Context of the upsampling stack in input frames, and its total upsampling rate.

    Each layer's radius (in samples at its own rate) is divided by that rate: the sum bounds how many
    input frames on either side one output sample depends on.
    """
    frames, rate = 0.0, 1
    for i, up in enumerate(ups):
        frames += transposed_conv_radius(up) / rate
        rate *= up.stride[0]
        frames += multi_receptive_field_radius(blocks[i * n_kernels : (i + 1) * n_kernels]) / rate
    return frames, rate


class SourceNetwork(nn.Module):
    """Latent z (B, 192, T) + style g (B, 256, 1) -> excitation features (B, C/4, 4T) and a 1-channel F0
    proxy (B, 1, 4T), with C = `upsample_initial_channel`."""

    def __init__(
        self, upsample_initial_channel: int = 256, in_channels: int = 192, gin_channels: int = 256
    ) -> None:
        super().__init__()
        self.n_kernels = 3
        self.conv_pre = WNConv1d(in_channels, upsample_initial_channel, 7, 1, padding=3)
        self.ups, self.resblocks, channels = _upsampling_stack(
            upsample_initial_channel, [2, 2], [4, 4], [3, 5, 7], [[1, 3, 5]] * 3
        )
        self.activation_post = Activation1d(activation=SnakeBeta(channels, alpha_logscale=True))
        self.conv_post = nn.Conv1d(channels, 1, 7, 1, padding=3, bias=False)
        self.cond = nn.Conv1d(gin_channels, upsample_initial_channel, 1)

    def receptive_radius(self) -> float:
        """Latent frames on either side that one output (features) sample depends on, an upper bound."""
        frames, rate = _stack_radius(self.ups, self.resblocks, self.n_kernels)
        return conv_radius(self.conv_pre) + frames + activation_radius(self.activation_post) / rate

    def forward(self, x: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, in, T), g (B, gin, 1) -> (features (B, C/4, 4T), f0 proxy (B, 1, 4T))."""
        x = self.conv_pre(x) + self.cond(g)
        for i, up in enumerate(self.ups):
            x = multi_receptive_field(self.resblocks[i * self.n_kernels : (i + 1) * self.n_kernels], up(x))
        x = self.activation_post(x)
        return x, self.conv_post(x)


class DBlock(nn.Module):
    """Downsampling block: nearest-interpolate by 1/factor, three dilated convs, plus a 1x1 residual path."""

    def __init__(self, input_size: int, hidden_size: int, factor: int) -> None:
        super().__init__()
        self.factor = factor
        self.residual_dense = WNConv1d(input_size, hidden_size, 1)
        self.conv = nn.ModuleList(
            [
                WNConv1d(input_size, hidden_size, 3, dilation=1, padding=1),
                WNConv1d(hidden_size, hidden_size, 3, dilation=2, padding=2),
                WNConv1d(hidden_size, hidden_size, 3, dilation=4, padding=4),
            ]
        )

    def receptive_radius(self) -> float:
        """Output frames on either side that one output depends on (nearest decimation, then the convs)."""
        return 1 + sum(conv_radius(conv) for conv in self.conv)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, T) -> (B, hidden, T // factor)."""
        size = x.shape[-1] // self.factor
        residual = F.interpolate(self.residual_dense(x), size=size)
        x = F.interpolate(x, size=size)
        for conv in self.conv:
            x = conv(F.leaky_relu(x, LRELU_SLOPE))
        return x + residual


class Generator(nn.Module):
    """BigVGAN-style decoder: latent (B, C_in, T) + source features (B, C/8, 4T) + style (B, gin, 1)
    -> waveform (B, 1, T * prod(upsample_rates)) in [-1, 1]."""

    def __init__(
        self,
        initial_channel: int,
        resblock_kernel_sizes: Sequence[int],
        resblock_dilation_sizes: Sequence[Sequence[int]],
        upsample_rates: Sequence[int],
        upsample_initial_channel: int,
        upsample_kernel_sizes: Sequence[int],
        gin_channels: int = 256,
    ) -> None:
        super().__init__()
        self.n_kernels = len(resblock_kernel_sizes)
        self.conv_pre = WNConv1d(initial_channel, upsample_initial_channel, 7, 1, padding=3)
        self.ups, self.resblocks, channels = _upsampling_stack(
            upsample_initial_channel,
            upsample_rates,
            upsample_kernel_sizes,
            resblock_kernel_sizes,
            resblock_dilation_sizes,
        )
        self.activation_post = Activation1d(activation=SnakeBeta(channels, alpha_logscale=True))
        self.conv_post = nn.Conv1d(channels, 1, 7, 1, padding=3, bias=False)
        if gin_channels:
            self.cond = nn.Conv1d(gin_channels, upsample_initial_channel, 1)
        source_channels = upsample_initial_channel // 8
        self.downs = DBlock(source_channels, upsample_initial_channel, 4)
        self.proj = nn.Conv1d(source_channels, upsample_initial_channel // 2, 7, 1, padding=3)

    def receptive_radius(self) -> float:
        """Frames on either side (of x, and of the source features' frame grid) that one output sample
        depends on, an upper bound: the stack plus the larger of its inputs' contexts."""
        frames, rate = _stack_radius(self.ups, self.resblocks, self.n_kernels)
        inputs = max(conv_radius(self.conv_pre), self.downs.receptive_radius(), conv_radius(self.proj) / self.ups[0].stride[0])
        return inputs + frames + (activation_radius(self.activation_post) + conv_radius(self.conv_post)) / rate

    def forward(self, x: Tensor, pitch: Tensor, g: Tensor) -> Tensor:
        """x (B, C_in, T), pitch (B, C/8, 4T) source features, g (B, gin, 1) -> (B, 1, T * prod(rates))."""
        x = self.conv_pre(x) + self.downs(pitch) + self.cond(g)
        for i, up in enumerate(self.ups):
            x = up(x)
            if i == 0:
                x = x + self.proj(pitch)
            x = multi_receptive_field(self.resblocks[i * self.n_kernels : (i + 1) * self.n_kernels], x)
        x = self.conv_post(self.activation_post(x))
        return x.tanh()
