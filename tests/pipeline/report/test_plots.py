"""Report spectrograms on one fixed dBFS scale: levels compare across images, a silent file looks silent."""

from __future__ import annotations

import io

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest

from pipeline.report.plots import SPECTROGRAM_DBFS, spectrogram_dbfs, spectrograms

RATE = 16000


def _tone(amplitude: float, rate: int = RATE, freq: float = 1000.0) -> np.ndarray:
    t = np.arange(rate) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("rate", [16000, 48000])
def test_levels_are_relative_to_full_scale(rate: int) -> None:
    floor, top = SPECTROGRAM_DBFS
    loud, _ = spectrogram_dbfs(_tone(1.0, rate), rate)
    quiet, _ = spectrogram_dbfs(_tone(0.01, rate), rate)
    assert abs(loud.max() - 0.0) < 1.0  # a full-scale sine's bin: 0 dBFS at any rate
    assert abs(quiet.max() - -40.0) < 1.0  # 40 dB quieter stays 40 dB quieter: no per-image normalisation
    silent, _ = spectrogram_dbfs(np.zeros(rate, dtype=np.float32), rate)
    assert np.all(silent == floor) and loud.max() <= top


def _pixels(png: bytes) -> np.ndarray:
    return matplotlib.image.imread(io.BytesIO(png), format="png")[..., :3]


def _share_of_colour(image: np.ndarray, rgb: tuple[float, float, float]) -> float:
    return float(np.mean(np.all(np.abs(image - np.asarray(rgb)) < 0.02, axis=-1)))


def _share_loud(image: np.ndarray) -> float:
    """Share of pixels in the top 15 % of the colour map (within 15 dB of full scale)."""
    palette = plt.get_cmap("magma")(np.linspace(0.85, 1.0, 32))[:, :3]
    distance = np.abs(image[:, :, None, :] - palette[None, None]).max(axis=-1).min(axis=-1)
    return float(np.mean(distance < 0.03))


def test_a_silent_file_is_drawn_dark_and_a_quiet_one_darker_than_a_loud_one() -> None:
    cmap = plt.get_cmap("magma")
    silent = _pixels(spectrograms([("silence", np.zeros(RATE, dtype=np.float32), RATE)]))
    assert _share_of_colour(silent, cmap(0.0)[:3]) > 0.4  # the whole plot area in the colour of silence
    assert _share_loud(silent) == 0.0  # per-image scaling drew it all full-scale
    loud = _pixels(spectrograms([("loud", _tone(0.9), RATE)]))
    quiet = _pixels(spectrograms([("quiet", _tone(0.001), RATE)]))  # -60 dBFS
    assert _share_loud(loud) > 0.001 and _share_loud(quiet) == 0.0
