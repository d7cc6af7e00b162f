"""Log-mel front-end of the synthesizer (style prompt), in plain torch.

Power spectrogram (centred, reflect-padded STFT with a periodic Hann window), HTK mel filterbank
without area normalisation, natural ``log(mel + 1e-3)``, and the last frame dropped so that T
samples give ``T // hop`` frames.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hierspeech.mel_config import MelConfig

__all__ = ["MelConfig", "MelSpectrogram", "mel_filterbank"]


def _hz_to_mel(hz: float) -> float:
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(
    n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int
) -> torch.Tensor:
    """Triangular HTK-scale mel filters, unnormalised, in float32.

    Returns:
        (n_freqs, n_mels): ``mel = spec.transpose(-1, -2) @ fb``.
    """
    bin_freqs = torch.linspace(0, sample_rate // 2, n_freqs)
    mel_points = torch.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2)
    hz_points = _mel_to_hz(mel_points)
    widths = hz_points[1:] - hz_points[:-1]  # (n_mels + 1,)
    offsets = hz_points.unsqueeze(0) - bin_freqs.unsqueeze(1)  # (n_freqs, n_mels + 2)
    rising = -offsets[:, :-2] / widths[:-1]
    falling = offsets[:, 2:] / widths[1:]
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


class MelSpectrogram(nn.Module):
    """Batched log-mel spectrogram.

    Window and filterbank are non-persistent buffers: they follow ``.to(device)`` and stay out
    of state dicts.
    """

    window: torch.Tensor
    filterbank: torch.Tensor

    def __init__(self, config: MelConfig | None = None) -> None:
        super().__init__()
        self.config = config or MelConfig()
        c = self.config
        self.register_buffer("window", torch.hann_window(c.win_length), persistent=False)
        self.register_buffer(
            "filterbank",
            mel_filterbank(c.n_fft // 2 + 1, c.f_min, c.f_max, c.n_mels, c.sample_rate),
            persistent=False,
        )

    @classmethod
    def from_config(cls, config: MelConfig) -> MelSpectrogram:
        return cls(config)

    def num_frames(self, n_samples: int) -> int:
        """Frames for `n_samples` of audio: ``n_samples // hop_length``."""
        return n_samples // self.config.hop_length

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, T) or (T,) float audio -> (B, n_mels, T // hop) or (n_mels, T // hop) log-mel."""
        c = self.config
        spec = torch.stft(
            audio,
            n_fft=c.n_fft,
            hop_length=c.hop_length,
            win_length=c.win_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        power = spec.abs().pow(2.0)  # (B, n_freqs, frames + 1)
        mel = torch.matmul(power.transpose(-1, -2), self.filterbank).transpose(-1, -2)
        return torch.log(mel + c.log_offset)[..., :-1]
