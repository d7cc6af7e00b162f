"""Compressed magnitude / phase STFT and its inverse, as MP-SENet consumes and produces them.

Besides the whole-signal transforms, the pieces a streamed (chunk-by-chunk) inverse needs: the samples of
the reflect-padded signal that a run of frames reads, the un-normalised overlap-add of a run of frames, and
the squared-window envelope that `torch.istft` divides by, each for any window of frames or samples.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


def mag_phase_stft(
    wav: Tensor, n_fft: int, hop_size: int, window: Tensor, compress_factor: float, *, center: bool = True
) -> tuple[Tensor, Tensor]:
    """(B, T) audio -> compressed magnitude and phase, each (B, n_fft // 2 + 1, N).

    `center=True`: centred STFT with reflect padding, N = 1 + T // hop_size (even n_fft). `center=False`:
    frame j reads wav[:, j * hop_size : j * hop_size + n_fft], N = 1 + (T - n_fft) // hop_size (for
    segments cut from the padded signal by :func:`reflect_padded_segment`). The magnitude is raised to
    `compress_factor`.
    """
    spec = torch.stft(
        wav, n_fft, hop_length=hop_size, win_length=window.numel(), window=window,
        center=center, pad_mode="reflect", normalized=False, return_complex=True,
    )
    return spec.abs().pow(compress_factor), spec.angle()


def compressed_to_complex(mag: Tensor, pha: Tensor, compress_factor: float) -> Tensor:
    """Compressed magnitude and phase (B, F, N) -> complex spectrum (B, F, N), decompressed."""
    mag = mag.pow(1.0 / compress_factor)
    return torch.complex(mag * torch.cos(pha), mag * torch.sin(pha))


def complex_istft(spec: Tensor, n_fft: int, hop_size: int, window: Tensor) -> Tensor:
    """Complex spectrum (B, F, N) -> (B, hop_size * (N - 1)) audio (centred inverse STFT)."""
    return torch.istft(spec, n_fft, hop_length=hop_size, win_length=window.numel(), window=window, center=True)


def num_stft_frames(num_samples: int, n_fft: int, hop_size: int) -> int:
    """Frames of the centred STFT of `num_samples` samples (reflect padding of n_fft // 2 on both sides)."""
    return 1 + (num_samples + 2 * (n_fft // 2) - n_fft) // hop_size


def reflect_padded_segment(wav: Tensor, start: int, length: int, pad: int) -> Tensor:
    """Samples [start, start + length) of `wav` (T,) reflect-padded by `pad` on both sides, as torch.stft
    pads it for a centred transform (the edge sample is not repeated), without padding the whole signal."""
    size = wav.shape[-1]
    if not 0 < pad < size:
        raise ValueError(f"reflect padding of {pad} needs a signal longer than it, got {size} samples")
    if start >= pad and start + length <= pad + size:
        return wav[start - pad : start - pad + length]
    index = torch.arange(start - pad, start - pad + length, device=wav.device)
    index = torch.where(index < 0, -index, index)
    index = torch.where(index >= size, 2 * (size - 1) - index, index)
    return wav[index]


def overlap_add_frames(spec: Tensor, n_fft: int, hop_size: int, window: Tensor) -> Tensor:
    """Complex frames (B, F, N) -> (B, n_fft + hop_size * (N - 1)): inverse FFT of each frame, windowed
    and overlap-added, not yet divided by the window envelope (see :func:`window_envelope`)."""
    frames = torch.fft.irfft(spec, n=n_fft, dim=1) * window[None, :, None]  # (B, n_fft, N)
    length = n_fft + hop_size * (spec.shape[-1] - 1)
    return F.fold(frames, (1, length), (1, n_fft), stride=(1, hop_size)).flatten(1)


def window_envelope(start: int, stop: int, n_frames: int, n_fft: int, hop_size: int, window: Tensor) -> Tensor:
    """Sum of the squared windows of all `n_frames` frames over padded samples [start, stop) (stop - start,).

    The normaliser of `torch.istft`, accumulated the same way (over the frames that touch the range,
    in frame order), so a streamed inverse divides by the same values.
    """
    first = max(0, -(-(start - n_fft + 1) // hop_size))
    last = min(n_frames - 1, (stop - 1) // hop_size)
    count = last - first + 1
    squares = (window * window)[None, :, None].expand(1, n_fft, count)
    folded = F.fold(squares, (1, n_fft + hop_size * (count - 1)), (1, n_fft), stride=(1, hop_size)).flatten()
    return folded[start - first * hop_size : stop - first * hop_size]
