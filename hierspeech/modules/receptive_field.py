"""How far an output of the convolutional generators' layers sees: per-layer context radii.

Used to cut long or ragged signals into windows whose kept outputs are exactly those of a whole-signal
run (`hierspeech.speechsr_batching`, the synthesizer's vocoder batching): an output depends only on
inputs within the radius, so a window edge farther than that from a kept output changes nothing.
"""

from __future__ import annotations

from torch import nn

from hierspeech.modules.alias_free import Activation1d


def conv_radius(conv: nn.Conv1d) -> int:
    """Context of a stride-1 convolution on each side (the larger side for asymmetric padding)."""
    reach = conv.dilation[0] * (conv.kernel_size[0] - 1)
    pad = conv.padding[0]
    return max(pad, reach - pad)


def activation_radius(act: Activation1d) -> int:
    """Input samples on either side that one output of an `Activation1d` depends on (max of both sides).

    Upsampled sample ``n`` reads padded inputs ``s - pad .. s`` with ``s = (n + o) // r``,
    ``o = (K_up - r) // 2``; output ``k`` reads upsampled ``r k - pad_left .. r k + K_down - 1 - pad_left``.
    """
    up, low = act.upsample, act.downsample.lowpass
    r, off = up.ratio, (up.kernel_size - up.ratio) // 2
    k = 10 * r * (up.kernel_size + low.kernel_size)  # any output far from both ends
    first = (r * k - low.pad_left + off) // r - up.pad
    last = (r * k + low.kernel_size - 1 - low.pad_left + off) // r
    return max(k - first, last - k)


def transposed_conv_radius(conv: nn.ConvTranspose1d) -> float:
    """Input samples (fractional) between an output of a transposed conv and the inputs it reads.

    Output ``n`` sits at input position ``n / stride`` and reads inputs ``m`` with
    ``0 <= n + padding - m * stride < kernel`` (dilation 1): from ``(kernel - 1 - padding) / stride``
    before that position to ``padding / stride`` after it.
    """
    stride, kernel, pad = conv.stride[0], conv.kernel_size[0], conv.padding[0]
    return max(kernel - 1 - pad, pad) / stride
