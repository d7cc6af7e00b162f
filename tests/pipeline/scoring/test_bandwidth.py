"""Bandwidth: the -50 dB-of-peak definition on tones, low-passed speech, and real SpeechSR output."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.scoring import ScoreInput
from pipeline.scoring.bandwidth import BandwidthScorer, estimate_bandwidth


def tones(rate: int, parts: list[tuple[float, float]], seconds: float = 1.0) -> np.ndarray:
    """Sines at (Hz, dB) with 20 ms raised-cosine fades: an abrupt start would splash every band."""
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(10 ** (db / 20) * np.sin(2 * np.pi * f * t) for f, db in parts)
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.02)
    return (wave * (0.5 - 0.5 * np.cos(np.pi * fade))).astype(np.float32)


def low_passed(wave: np.ndarray, rate: int, cutoff: float) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    return sosfiltfilt(butter(10, cutoff, fs=rate, output="sos"), wave).astype(np.float32)


def test_threshold_is_50_db_below_the_peak() -> None:
    """A 6 kHz tone 40 dB under a 1 kHz tone counts; 60 dB under does not. Resolution: bins of
    rate / 512, and a tone spreads over the Blackman-Harris main lobe (4 bins each side)."""
    rate = 48000
    lobe = 4 * rate / 512
    assert abs(estimate_bandwidth(tones(rate, [(1000, 0), (6000, -40)]), rate) - 6000) <= lobe
    assert abs(estimate_bandwidth(tones(rate, [(1000, 0), (6000, -60)]), rate) - 1000) <= lobe
    assert estimate_bandwidth(np.zeros(4800, dtype=np.float32), rate) == 0.0
    # long input is transformed in chunks: same answer as the short one
    long = tones(rate, [(1000, 0), (6000, -40)], seconds=60.0)
    assert estimate_bandwidth(long, rate) == estimate_bandwidth(long[: rate * 5], rate)


def test_low_passed_speech_and_speechsr_output(reference_dir: Path, kit_speech) -> None:
    """Real speech: a 4 kHz low-passed clip < 5 kHz, the 16 kHz clip = its 8 kHz Nyquist, and the
    official SpeechSR-48k's output of the 16 kHz clip > 12 kHz. SpeechSR extends what the input
    has: from the 4 kHz clip it makes no more than ~4 kHz, the metric shows that too."""
    import torch

    from hierspeech.speechsr import SpeechSR

    scorer = BandwidthScorer()
    wave = kit_speech["reference_1"][:32000]
    narrow = low_passed(wave, 16000, 4000)
    model = SpeechSR.from_pretrained(reference_dir / "weights" / "speechsr48k" / "G_100000.pth")
    with torch.inference_mode():
        upsampled = model(torch.from_numpy(np.stack([wave, narrow]))[:, None]).numpy()[:, 0]
    got = [s["bandwidth_hz"] for s in scorer.score([ScoreInput(narrow), ScoreInput(wave), ScoreInput(upsampled[0], 48000), ScoreInput(upsampled[1], 48000)])]
    narrow_bw, wide_bw, sr_bw, sr_narrow_bw = got
    assert narrow_bw < 5000 < wide_bw
    assert sr_bw > 12000, got
    assert sr_narrow_bw < sr_bw
    assert all(estimate_bandwidth(kit_speech[n], 16000) > 7000 for n in kit_speech)


def test_scorer_is_model_free_and_named() -> None:
    scorer = BandwidthScorer()
    assert scorer.device == "cpu" and scorer.columns == ("bandwidth_hz",)
    assert "-50 dB" in scorer.version()
