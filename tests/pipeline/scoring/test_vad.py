"""VAD speech ratio on real speech and on silence."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.scoring import ScoreInput
from pipeline.scoring.vad import SpeechRatioScorer


@pytest.fixture(scope="module")
def vad() -> SpeechRatioScorer:
    scorer = SpeechRatioScorer()
    scorer.load()
    return scorer


def test_silence_scores_below_speech(vad: SpeechRatioScorer, kit_speech, example_speech) -> None:
    """Digital silence and -60 dBFS room tone: speech_ratio < 0.1; every speech clip > 0.5 (one batch)."""
    rng = np.random.default_rng(0)
    silence = [np.zeros(48000, dtype=np.float32), (rng.standard_normal(48000) * 10 ** (-60 / 20)).astype(np.float32)]
    speech = [*kit_speech.values(), *example_speech.values()]
    scores = [s["speech_ratio"] for s in vad.score([ScoreInput(w) for w in silence + speech])]
    assert all(r < 0.1 for r in scores[: len(silence)]), scores
    assert all(0.5 < r <= 1.0 for r in scores[len(silence) :]), scores
    # silence in the middle of speech lowers the ratio
    padded = np.concatenate([speech[0], np.zeros(48000, dtype=np.float32)])
    assert vad.score([ScoreInput(padded)])[0]["speech_ratio"] < scores[len(silence)]


def test_torch_threads_survive_the_import() -> None:
    """silero_vad sets torch to one thread on import; loading the scorer leaves it as it was."""
    import torch

    before = torch.get_num_threads()
    SpeechRatioScorer().load()
    assert torch.get_num_threads() == before
