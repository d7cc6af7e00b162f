"""WER/CER: jiwer numbers on known transcripts, and tiny random CTC and Whisper models loaded
from disk like a user's model (no network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.scoring import ScoreInput, ScoringError, ScoringInputError
from pipeline.scoring.asr import WerScorer, error_rates, normalize_transcript
from pipeline.scoring.testing import save_tiny_ctc, save_tiny_whisper


class FixedTranscripts(WerScorer):
    """The scorer with its model replaced by known transcripts (the scoring plumbing alone)."""

    def __init__(self, transcripts: dict[int, str]) -> None:
        super().__init__("fake/asr", device="cpu")
        self.transcripts = transcripts

    def _load(self) -> None:
        pass

    def transcribe(self, waves):
        return [self.transcripts[w.shape[0]] for w in waves]  # keyed by clip length


def clip(samples: int) -> np.ndarray:
    return np.full(samples, 0.01, dtype=np.float32)


def test_error_rates_of_known_transcripts() -> None:
    """Counted by hand: one word of four substituted, one character of 19 (spaces count)."""
    assert error_rates("The quick brown fox", "the quick brown box") == pytest.approx({"wer": 0.25, "cer": 1 / 19})
    # case, punctuation and spacing are normalised away on both sides
    assert error_rates("Hello, world!", "  HELLO   WORLD ") == {"wer": 0.0, "cer": 0.0}
    # nothing heard: every word deleted
    assert error_rates("two words", "") == {"wer": 1.0, "cer": 1.0}
    # insertions can push WER past 1
    assert error_rates("yes", "yes yes yes") == {"wer": 2.0, "cer": 8 / 3}
    assert normalize_transcript("Don't  STOP—now.") == "don t stop now"


def test_scores_follow_input_order_through_the_batch() -> None:
    scorer = FixedTranscripts({1600: "a cat sat", 800: "the dog ran", 2400: "x"})
    batch = [ScoreInput(clip(1600), text="A cat sat."), ScoreInput(clip(800), text="the dog ran far"), ScoreInput(clip(2400), text="y")]
    assert scorer.score(batch) == [{"wer": 0.0, "cer": 0.0}, {"wer": 0.25, "cer": 4 / 15}, {"wer": 1.0, "cer": 1.0}]
    with pytest.raises(ScoringInputError, match="no text"):
        scorer.score([ScoreInput(clip(800), text="  ")])
    with pytest.raises(ScoringInputError, match="empty after normalisation"):
        scorer.score([ScoreInput(clip(800), text="?!")])


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("asr")
    return {"ctc": save_tiny_ctc(root / "ctc"), "whisper": save_tiny_whisper(root / "whisper")}


@pytest.mark.parametrize("kind", ["ctc", "whisper"])
def test_tiny_models_load_from_a_folder_and_score(kind: str, tiny_models, kit_speech, monkeypatch) -> None:
    """With HF_HUB_OFFLINE=1 a local folder loads; a batch of two clips (one > 30 s for Whisper's
    pieces) gives finite WER/CER equal to jiwer on the model's own transcripts."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    scorer = WerScorer(str(tiny_models[kind]), device="cpu")
    waves = [kit_speech["reference_1"], np.tile(kit_speech["reference_2"], 11)]  # 3 s and 33 s
    texts = ["and lay me down in my cold bed", "yea his honourable worship is within"]
    scores = scorer.score([ScoreInput(w, text=t) for w, t in zip(waves, texts, strict=True)])
    hypotheses = scorer.transcribe(waves)
    assert scores == [error_rates(t, h) for t, h in zip(texts, hypotheses, strict=True)]
    assert all(s["wer"] >= 0 and s["cer"] >= 0 for s in scores)
    kind_name = "whisper" if kind == "whisper" else "wav2vec2"
    assert "transformers" in scorer.version() and kind_name in scorer.version() and "@local" in scorer.version()
    assert scorer.transcribe(waves[:1]) == hypotheses[:1]  # alone as in the batch


def test_model_errors_are_usage_errors(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ScoringError, match="HF_HUB_OFFLINE is set"):
        WerScorer("nobody/not-a-cached-model").load()
    with pytest.raises(ScoringError, match="needs an ASR model"):
        WerScorer("")
    from transformers import Wav2Vec2Model

    from hierspeech.testing.w2v import tiny_wav2vec2_config

    Wav2Vec2Model(tiny_wav2vec2_config(num_hidden_layers=1)).save_pretrained(tmp_path / "encoder")
    with pytest.raises(ScoringError, match="CTC model"):
        WerScorer(str(tmp_path / "encoder")).load()
