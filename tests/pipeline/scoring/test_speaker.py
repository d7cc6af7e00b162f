"""Speaker similarity on real speech: two halves of one recording are closer than two speakers."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.scoring import ScoreInput, ScoringInputError
from pipeline.scoring.speaker import SpeakerSimilarityScorer, similarity


@pytest.fixture(scope="module")
def speaker() -> SpeakerSimilarityScorer:
    scorer = SpeakerSimilarityScorer(device="cpu")
    scorer.load()
    return scorer


def test_same_speaker_above_different_speakers(speaker: SpeakerSimilarityScorer, kit_speech) -> None:
    """For each of the four kit speakers, its second half against its first half scores above
    its second half against every other speaker's first half; `score` on a batch of pairs gives
    the same numbers as `embed` + `similarity`."""
    halves = {name: (w[: w.shape[0] // 2], w[w.shape[0] // 2 :]) for name, w in kit_speech.items()}
    first = {name: speaker.embed(h[0]) for name, h in halves.items()}
    second = {name: speaker.embed(h[1]) for name, h in halves.items()}
    for name in halves:
        same = similarity(second[name], first[name])
        others = [similarity(second[name], first[other]) for other in halves if other != name]
        assert same > max(others), (name, same, others)
        assert all(0.0 <= v <= 1.0 for v in (same, *others))
    a, b = list(halves)[:2]
    batch = speaker.score([ScoreInput(halves[a][1], reference=halves[a][0]), ScoreInput(halves[a][1], reference=halves[b][0])])
    assert [s["speaker_sim"] for s in batch] == pytest.approx([similarity(second[a], first[a]), similarity(second[a], first[b])], abs=1e-6)


def test_needs_a_reference_and_a_voice(speaker: SpeakerSimilarityScorer, kit_speech) -> None:
    wave = kit_speech["reference_1"]
    with pytest.raises(ScoringInputError, match="no reference audio"):
        speaker.score([ScoreInput(wave)])
    with pytest.raises(ScoringInputError, match="digital silence"):
        speaker.score([ScoreInput(np.zeros(16000, dtype=np.float32), reference=wave)])
    embedding = speaker.embed(wave)
    assert embedding.shape == (256,) and abs(float(np.linalg.norm(embedding)) - 1.0) < 1e-4
    assert "resemblyzer" in speaker.version()
