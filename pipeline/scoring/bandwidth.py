"""Bandwidth estimate: the highest frequency whose average power is within 50 dB of the spectral peak.

The measure NeMo SDP's BandwidthEstimationProcessor defines (HiFiTTS-2 used it): a 512-point
STFT with a Blackman-Harris window (low side lobes, so leakage from loud low bands does not fake
energy up high) and a 10 ms hop, power averaged over all frames, then the highest bin within
`threshold_db` of the loudest bin, as ``bin * rate / n_fft`` Hz. It needs no model and runs at
the audio's own rate: it is the check that SpeechSR really filled 8-24 kHz, and that a corpus
claimed "48 kHz" is not upsampled 16 kHz audio. Silence has no bandwidth (0 Hz).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.scoring.base import ScoreInput, Scorer

FRAMES_PER_CHUNK = 2048  # frames transformed at once: bounds memory on long audio


@dataclass(frozen=True)
class BandwidthOptions:
    n_fft: int = 512
    hop_seconds: float = 0.01
    threshold_db: float = -50.0
    floor_power: float = 1e-10  # below this the clip counts as silent


def mean_power_spectrum(wave: np.ndarray, rate: int, options: BandwidthOptions = BandwidthOptions()) -> np.ndarray:
    """Power per rFFT bin averaged over centred, zero-padded frames: (n_fft // 2 + 1,) float64."""
    from scipy.signal import get_window

    n_fft = options.n_fft
    hop = max(1, int(rate * options.hop_seconds))
    window = get_window("blackmanharris", n_fft, fftbins=True)
    padded = np.pad(wave.astype(np.float64), (n_fft // 2, n_fft // 2))
    frames = 1 + max(0, padded.shape[0] - n_fft) // hop
    total = np.zeros(n_fft // 2 + 1)
    for start in range(0, frames, FRAMES_PER_CHUNK):
        count = min(FRAMES_PER_CHUNK, frames - start)
        offsets = (start + np.arange(count))[:, None] * hop + np.arange(n_fft)[None, :]
        spectrum = np.fft.rfft(padded[offsets] * window, axis=1)
        total += np.sum(spectrum.real**2 + spectrum.imag**2, axis=0)
    return total / frames


def estimate_bandwidth(wave: np.ndarray, rate: int, options: BandwidthOptions = BandwidthOptions()) -> float:
    """Highest frequency (Hz) whose mean power is within `threshold_db` of the peak; 0 for silence."""
    power = mean_power_spectrum(wave, rate, options)
    peak = float(power.max())
    if peak < options.floor_power:
        return 0.0
    level_db = 10.0 * np.log10(np.maximum(power, options.floor_power) / peak)
    above = np.flatnonzero(level_db > options.threshold_db)
    return float(above[-1] * rate / options.n_fft)


class BandwidthScorer(Scorer):
    """`bandwidth_hz` at the input's own sample rate (no resampling: that would cap it)."""

    name = "bandwidth"
    columns = ("bandwidth_hz",)

    def __init__(self, device: str | None = None, options: BandwidthOptions = BandwidthOptions()) -> None:
        super().__init__("cpu" if device is None else device)
        self.options = options

    def version(self) -> str:
        from pipeline import __version__

        o = self.options
        return f"hierspeech-pipeline {__version__} bandwidth (n_fft {o.n_fft}, hop {o.hop_seconds * 1000:g} ms, blackmanharris, {o.threshold_db:g} dB of peak)"

    def _score(self, batch: list[ScoreInput]) -> list[dict[str, float]]:
        return [{"bandwidth_hz": estimate_bandwidth(s.audio, s.sample_rate, self.options)} for s in batch]
