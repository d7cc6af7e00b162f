"""MP-SENet's convolutional parts: dense encoder, magnitude-mask decoder, phase decoder.

Tensors are (B, C, T, F). On CPU they are kept in channels-last memory (each position's channels
adjacent): oneDNN's convolutions are ~1.4x faster in that layout than in (B, C, T, F) order, and it is
the (B, T, F, C) order the conformers work in, so the hand-over between the two costs no copy. Every
function takes an optional frame mask (B, 1, T, 1) (1 on valid frames, 0 on padding) so a batch of
different lengths gives each item what it would get alone: padded frames are zeroed before every
convolution that looks along time, and instance norms take their statistics over valid frames only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hierspeech.modules.scratch import scratch_elements

# The variance of an instance norm is summed over this many frames at a time: the same sums, while the
# centred squares stay small (full-size fresh tensors cost page faults and cache misses on CPU).
FRAMES_PER_STEP = 16


def activation_format(device: torch.device) -> torch.memory_format:
    """Memory layout of the convolutional activations: channels-last on CPU (see the module docstring)."""
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def activation_scratch(name: str, shape: tuple[int, int, int, int], like: Tensor) -> Tensor:
    """A (B, C, T, F) tensor in `activation_format` on the `scratch_elements` storage `name`.

    Inside `reuse_scratch` the same storage serves every call (each window, each dense block), so its
    pages are not faulted in anew each time: the dense blocks' buffers are the largest tensors here.
    """
    b, c, t, f = shape
    flat = scratch_elements(name, b * c * t * f, like)
    if activation_format(like.device) != torch.channels_last:
        return flat.view(shape)
    return flat.view(b, t, f, c).permute(0, 3, 1, 2)


def run_conv(conv: nn.Module, x: Tensor) -> Tensor:
    """conv(x) with x in `activation_format` (a copy when it is not); the result comes out in it too."""
    return conv(x.contiguous(memory_format=activation_format(x.device)))


class FrequencyUpsampler(nn.ConvTranspose2d):
    """The decoders' upsampler: a (1, 3)-kernel, stride-(1, 2) transposed convolution, (B, C, T, F) -> (B, C', T, 2F + 1).

    Same parameters (names and shapes) as the official `nn.ConvTranspose2d`. On CPU it runs as one
    matmul: input bin m feeds output bins 2m, 2m + 1 and 2m + 2 through kernel taps 0, 1 and 2, so a
    matmul over the channels gives every tap's contribution and the output is their interleaved sum,
    ~3x faster than oneDNN's transposed convolution with the same values up to rounding. Elsewhere
    it is the torch layer.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, (1, 3), (1, 2))

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        """(B, C, T, F) -> (B, C', T, 2F + 1), channels-last on CPU."""
        if x.device.type != "cpu":
            return super().forward(x)
        b, _, t, f = x.shape
        taps = self.weight[:, :, 0, :].permute(0, 2, 1).flatten(1)  # (C, 3 * C'): tap k at columns k*C'..
        width = self.out_channels
        # (B, T, F, 3 * C'), in a scratch tensor: it is consumed here, and fresh it would be faulted in
        # anew on every call (it is the largest tensor of the decoders).
        contributions = scratch_elements("frequency_upsampler.contributions", b * t * f * 3 * width, x)
        contributions = torch.matmul(x.permute(0, 2, 3, 1), taps, out=contributions.view(b, t, f, -1))
        even, odd, late = contributions.split(width, dim=-1)
        out = torch.empty(b, t, 2 * f + 1, width, dtype=x.dtype, device=x.device)
        out[:, :, 0 : 2 * f : 2] = even
        out[:, :, 2 * f] = 0
        out[:, :, 2 : 2 * f + 1 : 2] += late
        out[:, :, 1 : 2 * f : 2] = odd
        out += self.bias
        return out.permute(0, 3, 1, 2)


def instance_norm_prelu(y: Tensor, norm: nn.InstanceNorm2d, act: nn.PReLU, out: Tensor | None = None) -> Tensor:
    """PReLU(InstanceNorm(y)) over all positions of each item and channel, y (B, C, T, F), into `out` if given.

    Without `out`, y itself is overwritten on CPU (pass a tensor the caller no longer needs, such as a
    convolution's output) and returned.

    On CPU, with y channels-last, in blocks of frames (small intermediates, no full-size temporary):
    the mean is one reduction, the variance is summed over blocks of (y - mean)^2 (two-pass, as
    accurate as `F.instance_norm`), and each block is normalised by `F.batch_norm` with those
    statistics (one pass in this layout), activated and written to its place in `out`.
    `F.instance_norm` itself would copy y to (B, C, T, F) order and back.
    """
    if y.device.type != "cpu":
        y = F.prelu(F.instance_norm(y, weight=norm.weight, bias=norm.bias, eps=norm.eps), act.weight)
        return y if out is None else out.copy_(y)
    positions = y.shape[2] * y.shape[3]
    blocks = [slice(first, first + FRAMES_PER_STEP) for first in range(0, y.shape[2], FRAMES_PER_STEP)]
    mean = y.sum(dim=(2, 3), keepdim=True).div_(positions)
    var = torch.zeros_like(mean)
    for frames in blocks:
        var += (y[:, :, frames] - mean).square_().sum(dim=(2, 3), keepdim=True)
    var /= positions
    if out is None:  # in place: each block is read before it is overwritten, and no fresh tensor is faulted in
        out = y if y.is_contiguous(memory_format=torch.channels_last) else torch.empty_like(y, memory_format=torch.channels_last)
    for i in range(y.shape[0]):
        stats = mean[i].flatten(), var[i].flatten()
        for frames in blocks:
            block = F.batch_norm(y[i : i + 1, :, frames], *stats, norm.weight, norm.bias, False, 0.0, norm.eps)
            out[i : i + 1, :, frames] = F.prelu(block, act.weight)
    return out


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
        if mask is None:
            return instance_norm_prelu(y, norm, act, out)
        y = act(norm(y, mask))
        return y if out is None else out.copy_(y)


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
        each layer, outputs are written right-to-left into one preallocated buffer (in
        `activation_format`) whose tail slices are exactly those concatenations (each layer writes
        straight into its slot); the first layer reads x itself and the last output is never copied in.
        A tail slice of a channels-last buffer is not channels-last contiguous, so the middle layers'
        inputs are copied into a second buffer first (the convolution would copy them anyway). Both
        buffers are `activation_scratch` storages, shared by every dense block and window inside
        `reuse_scratch`.
        """
        depth = len(self.dense_block)
        b, c, t, f = x.shape
        features = activation_scratch("dense_block.features", (b, depth * c, t, f), x)
        features[:, (depth - 1) * c :] = x
        for i, layer in enumerate(self.dense_block[:-1]):
            inputs = x if i == 0 else features[:, (depth - 1 - i) * c :]
            if i > 0 and not inputs.is_contiguous(memory_format=activation_format(x.device)):
                inputs = activation_scratch("dense_block.inputs", inputs.shape, x).copy_(inputs)
            slot = layer(inputs, mask, out=features[:, (depth - 2 - i) * c : (depth - 1 - i) * c])
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
            FrequencyUpsampler(channels, channels),
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
        self.phase_conv = ConvNormAct(FrequencyUpsampler(channels, channels), channels)
        self.phase_conv_r = nn.Conv2d(channels, 1, (1, 1))
        self.phase_conv_i = nn.Conv2d(channels, 1, (1, 1))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B, C, T, F') -> (B, 1, T, n_freq)."""
        x = self.phase_conv(self.dense_block(x if mask is None else x * mask, mask), mask)
        return torch.atan2(self.phase_conv_i(x), self.phase_conv_r(x))


