"""Anti-aliased resampling and activation (the "alias-free" blocks of BigVGAN-style generators).

A pointwise nonlinearity creates harmonics above Nyquist. `Activation1d` therefore upsamples by
``r`` with a windowed-sinc low-pass, applies the nonlinearity, low-passes again and decimates by
``r``. Edges use replicate padding, as the official models do.

The official implementation zero-stuffs with ``conv_transpose1d`` and then filters the full-rate
signal with a strided convolution. The same numbers are computed here with polyphase filters: the
upsampler is one grouped convolution with ``r`` short filters per channel (no zero-stuffing), and
`Activation1d` keeps the upsampled signal split into its ``r`` phases, so the decimating filter reads
it without ever interleaving or re-padding the full-rate signal. For CPU inference in float32 with a
Snake/SnakeBeta activation the whole block runs in one compiled kernel per channel row
(`hierspeech.modules.alias_free_kernel`); everything else (autograd, GPU, other dtypes) runs the
phase filters as grouped convolutions. Buffers keep the official names and
shapes (``upsample.filter`` and ``downsample.lowpass.filter``, each ``[1, 1, kernel_size]``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from hierspeech.modules.scratch import scratch
from hierspeech.modules.snake import Snake, SnakeBeta


def _cached(owner: nn.Module, slot: str, key: tuple, build: Callable[[], torch.Tensor]) -> torch.Tensor:
    """`build()` once per `key` and keep it on `owner`: the per-channel filter weights the convolutions
    take are built from the (constant) filter buffers once, not at every call. Keys hold the buffer's
    version and storage, the dtype, device and channel count, so a load, a move or a cast rebuilds."""
    cached = getattr(owner, slot, None)
    if cached is not None and cached[0] == key:
        return cached[1]
    value = build()
    setattr(owner, slot, (key, value))
    return value


def _buffer_key(buffer: torch.Tensor) -> tuple:
    return (buffer._version, buffer.data_ptr(), buffer.dtype, buffer.device)


def kaiser_sinc_filter1d(cutoff: float, half_width: float, kernel_size: int) -> torch.Tensor:
    """Kaiser-windowed sinc low-pass, normalised to unit DC gain.

    `cutoff` and `half_width` are fractions of the sampling rate (Nyquist = 0.5). Returns
    ``[1, 1, kernel_size]``. Even sizes are centred between two taps.
    """
    half = kernel_size // 2
    # Kaiser's design rule: attenuation from the transition width, then the window's beta.
    attenuation = 2.285 * (half - 1) * math.pi * (4 * half_width) + 7.95
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(kernel_size, beta=beta, periodic=False)
    # Tap times in samples from the centre; an even-length filter is centred between two taps.
    time = torch.arange(-half, half) + 0.5 if kernel_size % 2 == 0 else torch.arange(kernel_size) - half
    if cutoff == 0:
        taps = torch.zeros_like(time)
    else:
        taps = 2 * cutoff * window * torch.sinc(2 * cutoff * time)
        taps /= taps.sum()
    return taps.view(1, 1, kernel_size)


class LowPassFilter1d(nn.Module):
    """Depthwise windowed-sinc low-pass, optionally strided (decimation). Buffer: ``filter`` [1, 1, K]."""

    def __init__(self, cutoff: float = 0.5, half_width: float = 0.6, stride: int = 1, padding: bool = True,
                 padding_mode: str = "replicate", kernel_size: int = 12) -> None:
        super().__init__()
        if not 0.0 <= cutoff <= 0.5:
            raise ValueError(f"cutoff must be in [0, 0.5] (fraction of the sampling rate), got {cutoff}")
        self.kernel_size = kernel_size
        self.pad_left = kernel_size // 2 - int(kernel_size % 2 == 0)
        self.pad_right = kernel_size // 2
        self.stride = stride
        self.padding = padding
        self.padding_mode = padding_mode
        self.register_buffer("filter", kaiser_sinc_filter1d(cutoff, half_width, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, C, ceil(T / stride)) with padding, else (B, C, (T - K) // stride + 1)."""
        channels = x.shape[1]
        if self.padding:
            x = F.pad(x, (self.pad_left, self.pad_right), mode=self.padding_mode)
        weight = _cached(self, "_weight_cache", (*_buffer_key(self.filter), channels),
                         lambda: self.filter.expand(channels, -1, -1).contiguous())
        return F.conv1d(x, weight, stride=self.stride, groups=channels)


class UpSample1d(nn.Module):
    """Upsample by an integer ratio with a windowed-sinc interpolation filter. Buffer: ``filter`` [1, 1, K]."""

    def __init__(self, ratio: int = 2, kernel_size: int | None = None) -> None:
        super().__init__()
        self.ratio = ratio
        self.kernel_size = int(6 * ratio // 2) * 2 if kernel_size is None else kernel_size
        # Replicate padding of the low-rate input, and where the official transposed convolution's
        # output is cropped: both define the exact output and are kept here.
        self.pad = self.kernel_size // ratio - 1
        self.crop_left = self.pad * ratio + (self.kernel_size - ratio) // 2
        self.register_buffer(
            "filter", kaiser_sinc_filter1d(0.5 / ratio, 0.6 / ratio, self.kernel_size)
        )

    @property
    def polyphase(self) -> bool:
        """Whether the filter splits into ``ratio`` equal-length phases (true for the official sizes)."""
        return self.kernel_size % self.ratio == 0

    def phase_filters(self, phase_order: list[int] | None = None) -> torch.Tensor:
        """The ``ratio`` sub-filters as cross-correlation kernels, gain ``ratio`` folded in.

        Returns ``[len(phase_order), 1, K // ratio]``; row ``i`` computes output phase ``phase_order[i]``.
        """
        r, taps = self.ratio, self.kernel_size // self.ratio
        order = range(r) if phase_order is None else phase_order
        filt = self.filter.view(-1) * r
        # Phase p of the zero-stuffed convolution uses taps p, p + r, ...; flipped for cross-correlation.
        return torch.stack([filt[p::r].flip(0) for p in order]).view(-1, 1, taps)

    def padded_phases(self, x: torch.Tensor, extra_left: int = 0, extra_right: int = 0,
                      phase_order: list[int] | None = None) -> torch.Tensor:
        """All output phases of the replicate-padded input, ``(B, C, n_phases, T + pad + extra)``.

        Entry ``[..., i, s]`` is phase ``p = phase_order[i]`` of the zero-stuffed filter at low-rate
        position ``s - extra_left``. Output sample ``n`` of `forward` is phase ``(n + o) % r`` at
        position ``(n + o) // r`` with ``o = (K - r) // 2``.
        """
        channels = x.shape[1]
        order = list(range(self.ratio)) if phase_order is None else phase_order
        xp = F.pad(x, (self.pad + extra_left, self.pad + extra_right), mode="replicate")
        weight = _cached(self, "_phase_weight_cache", (*_buffer_key(self.filter), x.dtype, channels, tuple(order)),
                         lambda: self.phase_filters(order).to(x.dtype).repeat(channels, 1, 1))
        out = F.conv1d(xp, weight, groups=channels)
        return out.view(x.shape[0], channels, len(order), -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, C, ratio * T)."""
        r, length = self.ratio, x.shape[-1]
        if not self.polyphase:
            channels = x.shape[1]
            xp = F.pad(x, (self.pad, self.pad), mode="replicate")
            weight = _cached(self, "_weight_cache", (*_buffer_key(self.filter), channels),
                             lambda: self.filter.expand(channels, -1, -1).contiguous())
            y = r * F.conv_transpose1d(xp, weight, stride=r, groups=channels)
            return y[..., self.crop_left : self.crop_left + r * length]
        phases = self.padded_phases(x)  # (B, C, r, T + pad)
        interleaved = phases.transpose(2, 3).reshape(x.shape[0], x.shape[1], -1)
        # Phase sample s of the stuffed convolution sits at r * s + p, shifted by K - r against the
        # transposed convolution's output, which the official code crops by `crop_left`.
        start = self.crop_left - (self.kernel_size - r)
        return interleaved[..., start : start + r * length]


class DownSample1d(nn.Module):
    """Low-pass then decimate by an integer ratio. Buffer: ``lowpass.filter`` [1, 1, K]."""

    def __init__(self, ratio: int = 2, kernel_size: int | None = None) -> None:
        super().__init__()
        self.ratio = ratio
        self.kernel_size = int(6 * ratio // 2) * 2 if kernel_size is None else kernel_size
        self.lowpass = LowPassFilter1d(
            cutoff=0.5 / ratio, half_width=0.6 / ratio, stride=ratio, kernel_size=self.kernel_size
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, C, ceil(T / ratio))."""
        return self.lowpass(x)


class Activation1d(nn.Module):
    """Anti-aliased pointwise activation: upsample, activation, low-pass and decimate.

    `activation` must act elementwise with channels on dim 1 (any trailing layout), as `SnakeBeta`.
    """

    def __init__(self, activation: nn.Module, up_ratio: int = 2, down_ratio: int = 2,
                 up_kernel_size: int = 12, down_kernel_size: int = 12) -> None:
        super().__init__()
        self.up_ratio = up_ratio
        self.down_ratio = down_ratio
        self.act = activation
        self.upsample = UpSample1d(up_ratio, up_kernel_size)
        self.downsample = DownSample1d(down_ratio, down_kernel_size)

    @property
    def fused(self) -> bool:
        """Whether the phase-domain path applies (equal ratios, polyphase upsampler, replicate padding)."""
        low = self.downsample.lowpass
        return (
            self.up_ratio == self.down_ratio
            and self.upsample.polyphase
            and low.padding
            and low.padding_mode == "replicate"
            and low.stride == self.down_ratio
        )

    def forward(self, x: torch.Tensor, scratch_output: bool = False) -> torch.Tensor:
        """(B, C, T) -> (B, C, T) when both ratios are equal.

        With `scratch_output` (inference inside `reuse_scratch`), the result lives in a scratch tensor
        that the next such call in this thread overwrites: only for a result consumed at once.
        """
        if not self.fused:
            return self.downsample(self.act(self.upsample(x)))
        return self._forward_phases(x, scratch_output)

    def _phase_plan(self, dtype: torch.dtype, device: torch.device) -> _PhasePlan:
        """Tap layout of the phase-domain path, cached until the filter buffers change."""
        up, low = self.upsample, self.downsample.lowpass
        key = (up.filter._version, low.filter._version, up.filter.data_ptr(), low.filter.data_ptr(), dtype, device)
        cached = getattr(self, "_plan_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        plan = _PhasePlan.build(up, low, dtype, device)
        self._plan_cache = (key, plan)
        return plan

    def _forward_phases(self, x: torch.Tensor, scratch_output: bool = False) -> torch.Tensor:
        """Same result as the composed path, computed on the ``r`` phases of the upsampled signal.

        The decimating filter computes ``y[k] = sum_t h[t] v[clamp(r k + t - pad_left)]`` over the
        activated full-rate signal ``v``. Grouping taps by ``b = (t - pad_left) mod r`` turns it into
        ``r`` stride-1 filters, each reading one phase row ``R_b[j] = v[r (j + a_b) + b]``. Each row is
        one output phase of the upsampler (shifted), so no interleaving is needed. Row positions that
        fall outside ``[0, r T)`` are the decimator's replicate padding: they are set to ``v[0]`` or
        ``v[r T - 1]``.
        """
        plan = self._phase_plan(x.dtype, x.device)
        r, batch, channels, length = self.up_ratio, x.shape[0], x.shape[1], x.shape[-1]
        row_len = length + plan.n_taps - 1
        if (x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_grad_enabled()
                and isinstance(self.act, SnakeBeta | Snake)):
            return self._forward_compiled(x, plan, scratch_output)
        phases = self.upsample.padded_phases(x, plan.extra_left, plan.extra_right, plan.src_phase)
        rows = torch.stack([phases[:, :, b, plan.starts[b] : plan.starts[b] + row_len] for b in range(r)], dim=2)
        rows = self.act(rows)
        # Replicate padding of the decimator: v[0] is row 0 at j = -first[0], v[rT-1] is row r-1 at
        # j = T - 1 - first[r-1].
        head = rows[:, :, 0, plan.head_at].unsqueeze(-1)
        tail = rows[:, :, r - 1, length - 1 + plan.tail_at].unsqueeze(-1)
        for b in range(r):
            if plan.n_head[b]:
                rows[:, :, b, : plan.n_head[b]] = head
        for b in range(r):
            tail_from = length - plan.first[b]
            if tail_from < row_len:
                rows[:, :, b, tail_from:] = tail
        weight = _cached(self, "_down_weight_cache", (*self._plan_cache[0], channels),
                         lambda: plan.down_weight.unsqueeze(0).expand(channels, -1, -1).contiguous())
        return F.conv1d(rows.reshape(batch, channels * r, row_len), weight, groups=channels)

    def _forward_compiled(self, x: torch.Tensor, plan: _PhasePlan, scratch_output: bool) -> torch.Tensor:
        """CPU float32 inference with Snake/SnakeBeta: the whole activation in one compiled kernel."""
        # Imported here: numba (and its first compile, ~4 s, then cached on disk) only where it is used.
        from hierspeech.modules.alias_free_kernel import snake_activation_rows

        x = x.contiguous()
        out = scratch("alias_free.out", x.shape, x) if scratch_output else torch.empty_like(x)
        alpha, inv_beta = (f.detach().to(torch.float32).contiguous().numpy() for f in self.act.factors())
        k = plan.kernel
        snake_activation_rows(
            x.numpy(), out.numpy(), alpha, inv_beta, plan.pad_left, plan.pad_right,
            k.up_taps, k.up_offsets, k.n_head, plan.head_at, k.first, plan.tail_at,
            k.down_taps, k.down_phase, k.down_index, plan.n_taps,
        )
        return out


@dataclass(frozen=True)
class _KernelTaps:
    """The phase plan as arrays for `snake_activation_rows` (see there for the meaning)."""

    up_taps: np.ndarray  # (r, n_up) float32
    up_offsets: np.ndarray  # (r, n_up) int64, into the replicate-padded input
    n_head: np.ndarray  # (r,)
    first: np.ndarray  # (r,)
    down_taps: np.ndarray  # nonzero decimator taps, float32
    down_phase: np.ndarray  # the row each tap reads
    down_index: np.ndarray  # its offset within the row


@dataclass(frozen=True)
class _PhasePlan:
    """Where each decimator phase row comes from, and the taps of both filters per row."""

    first: list[int]  # first tap group a_b of decimator phase b
    n_head: list[int]  # row positions before v[0] (replicate padding)
    head_at: int  # row-0 position of v[0]
    tail_at: int  # row-(r-1) position of v[rT-1], minus (T - 1)
    n_taps: int
    src_phase: list[int]  # upsampler phase feeding row b
    starts: list[int]  # offset of row b in the upsampler's phase output
    extra_left: int
    extra_right: int
    pad_left: int
    pad_right: int
    down_weight: torch.Tensor  # (r, n_taps)
    kernel: _KernelTaps  # the same plan as arrays for the compiled CPU kernel

    @classmethod
    def build(cls, up: UpSample1d, low: LowPassFilter1d, dtype: torch.dtype, device: torch.device) -> _PhasePlan:
        r, k_down, pad_left = up.ratio, low.kernel_size, low.pad_left
        first = [-((b + pad_left) // r) for b in range(r)]
        count = [(k_down - 1 - b - pad_left) // r - first[b] + 1 for b in range(r)]
        n_taps = max(count)
        # Upsampler output sample m lives in phase (m + off) % r at position (m + off) // r.
        off = (up.kernel_size - r) // 2
        src_phase = [(b + off) % r for b in range(r)]
        shift = [first[b] + (b + off) // r for b in range(r)]
        extra_left = max(0, -min(shift))
        extra_right = max(0, max(shift) + n_taps - 1 - up.pad)
        up_taps = up.phase_filters(src_phase).to(device=device, dtype=dtype)[:, 0]
        taps = low.filter.view(-1).to(device=device, dtype=dtype)
        down_weight = torch.zeros(r, n_taps, dtype=dtype, device=device)
        for b in range(r):
            down_weight[b, : count[b]] = taps[r * first[b] + b + pad_left :: r][: count[b]]
        starts = [shift[b] + extra_left for b in range(r)]
        up_offsets = [[start + i for i in range(up_taps.shape[1])] for start in starts]
        n_head = [max(0, (-(r * first[b] + b) + r - 1) // r) for b in range(r)]
        nonzero = [(b, i) for b in range(r) for i in range(n_taps) if down_weight[b, i].item() != 0.0]
        kernel = _KernelTaps(
            up_taps=up_taps.to(torch.float32).cpu().numpy().copy(),
            up_offsets=np.asarray(up_offsets, dtype=np.int64),
            n_head=np.asarray(n_head, dtype=np.int64),
            first=np.asarray(first, dtype=np.int64),
            down_taps=np.asarray([down_weight[b, i].item() for b, i in nonzero], dtype=np.float32),
            down_phase=np.asarray([b for b, _ in nonzero], dtype=np.int64),
            down_index=np.asarray([i for _, i in nonzero], dtype=np.int64),
        )
        return cls(
            first=first,
            n_head=n_head,
            head_at=-first[0],
            tail_at=-first[r - 1],
            n_taps=n_taps,
            src_phase=src_phase,
            starts=starts,
            extra_left=extra_left,
            extra_right=extra_right,
            pad_left=up.pad + extra_left,
            pad_right=up.pad + extra_right,
            down_weight=down_weight,
            kernel=kernel,
        )

