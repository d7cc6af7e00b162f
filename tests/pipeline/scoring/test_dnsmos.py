"""DNSMOS on real speech: clean speech scores above the same speech in white noise at 0 dB SNR."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.scoring import ScoreInput
from pipeline.scoring.dnsmos import DnsmosScorer


@pytest.fixture(scope="module")
def dnsmos() -> DnsmosScorer:
    scorer = DnsmosScorer()
    scorer.load()
    return scorer


def with_white_noise(wave: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    power = float(np.mean(wave.astype(np.float64) ** 2))
    noise = rng.standard_normal(wave.shape[0]) * np.sqrt(power / 10 ** (snr_db / 10))
    return np.clip(wave + noise, -1.0, 1.0).astype(np.float32)


def test_clean_speech_scores_above_noisy_speech(dnsmos: DnsmosScorer, kit_speech, example_speech) -> None:
    """A kit clip and a bundled example: OVRL and BAK of clean > of 0 dB noisy. In the same batch:
    a 48 kHz copy scores like the 16 kHz clip (resampled inside), and a clip driven past full
    scale is clipped, not refused. Clips are repeated to one 9.01 s DNSMOS window (speechmos
    would tile a 3 s clip to 12 s, three windows: three times the test's CPU)."""
    from pipeline.io.audio import resample
    from pipeline.scoring.dnsmos import WINDOW_SAMPLES

    def one_window(wave: np.ndarray) -> np.ndarray:
        return np.tile(wave, -(-WINDOW_SAMPLES // wave.shape[0]))[:WINDOW_SAMPLES]

    kit, example = one_window(kit_speech["reference_2"]), one_window(next(iter(example_speech.values())))
    batch = [ScoreInput(kit), ScoreInput(example), ScoreInput(with_white_noise(kit, 0.0)), ScoreInput(with_white_noise(example, 0.0))]
    batch += [ScoreInput(resample(kit, 16000, 48000), 48000), ScoreInput(kit * 4.0)]
    scores = dnsmos.score(batch)
    assert len(scores) == len(batch) and all(set(s) == {"dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"} for s in scores)
    for clean, noisy in ((scores[0], scores[2]), (scores[1], scores[3])):
        assert clean["dnsmos_ovrl"] > noisy["dnsmos_ovrl"] and clean["dnsmos_bak"] > noisy["dnsmos_bak"], (clean, noisy)
    assert all(1.0 <= v <= 5.0 for s in scores for v in s.values())
    assert abs(scores[4]["dnsmos_ovrl"] - scores[0]["dnsmos_ovrl"]) < 0.15  # resampled twice
    assert "speechmos" in dnsmos.version() and "onnxruntime" in dnsmos.version()
