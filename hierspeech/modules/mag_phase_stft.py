"""Compressed magnitude / phase STFT and its inverse, as MP-SENet consumes and produces them."""

from __future__ import annotations

import torch
from torch import Tensor


def mag_phase_stft(
    wav: Tensor, n_fft: int, hop_size: int, window: Tensor, compress_factor: float
) -> tuple[Tensor, Tensor]:
    """(B, T) audio -> compressed magnitude and phase, each (B, n_fft // 2 + 1, 1 + T // hop_size).

    Centred STFT with reflect padding; the magnitude is raised to `compress_factor`.
    """
    spec = torch.stft(
        wav, n_fft, hop_length=hop_size, win_length=window.numel(), window=window,
        center=True, pad_mode="reflect", normalized=False, return_complex=True,
    )
    return spec.abs().pow(compress_factor), spec.angle()


def compressed_to_complex(mag: Tensor, pha: Tensor, compress_factor: float) -> Tensor:
    """Compressed magnitude and phase (B, F, N) -> complex spectrum (B, F, N), decompressed."""
    mag = mag.pow(1.0 / compress_factor)
    return torch.complex(mag * torch.cos(pha), mag * torch.sin(pha))


def complex_istft(spec: Tensor, n_fft: int, hop_size: int, window: Tensor) -> Tensor:
    """Complex spectrum (B, F, N) -> (B, hop_size * (N - 1)) audio (centred inverse STFT)."""
    return torch.istft(spec, n_fft, hop_length=hop_size, win_length=window.numel(), window=window, center=True)
