"""Speaker similarity: cosine of GE2E speaker embeddings of a sample and its reference voice.

Resemblyzer's pretrained GE2E encoder (weights inside the wheel, Apache-2.0). Its own
preprocessing runs first: volume raised to -30 dBFS and long silences cut with webrtcvad.
Embeddings are non-negative and unit-length, so the cosine lies in [0, 1]; on the reference
kit two halves of one LibriTTS recording score 0.67-0.85 and different speakers 0.35-0.56.
For synthesis outputs the reference is the voice prompt; for VC also compare with the source
(`embed` once, `similarity` against each): a converted voice should be closer to its prompt.
On CPU the encoder runs at one torch thread (see `torch_threads`); CUDA when a GPU is visible.
"""

from __future__ import annotations

import numpy as np

from pipeline.scoring.base import (
    ScoreInput,
    Scorer,
    ScoringInputError,
    at_rate,
    import_for,
    package_version,
    torch_threads,
)

RATE = 16000
MIN_VOICED_SECONDS = 0.1  # less than this left after silence trimming: no voice to embed


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings (float64, so rounding does not leave [-1, 1])."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return float(np.clip(a64 @ b64 / (np.linalg.norm(a64) * np.linalg.norm(b64)), -1.0, 1.0))


class SpeakerSimilarityScorer(Scorer):
    """`speaker_sim` of each input's audio against its `reference`."""

    name = "speaker_sim"
    columns = ("speaker_sim",)
    needs = frozenset({"reference"})
    modules = ("resemblyzer", "webrtcvad", "librosa")
    gpu_helps = True

    def __init__(self, device: str | None = None) -> None:
        super().__init__(device)
        self._encoder = None
        self._preprocess = None

    def version(self) -> str:
        return f"resemblyzer {package_version('resemblyzer')} GE2E (pretrained.pt), webrtcvad-wheels {package_version('webrtcvad-wheels')}"

    def _load(self) -> None:
        for module in self.modules:
            import_for(self.name, module)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # resemblyzer imports scipy.ndimage.morphology
            from resemblyzer import VoiceEncoder, preprocess_wav
        # resemblyzer's torch.load takes torch's default, weights_only=True since torch 2.6
        self._encoder = VoiceEncoder(device=self.device, verbose=False)
        self._preprocess = preprocess_wav

    def embed(self, wave: np.ndarray, rate: int = RATE) -> np.ndarray:
        """(256,) float32 unit-length embedding of one utterance; raises when no voice is left."""
        self.load()
        wave = at_rate(wave, rate, RATE)
        if not np.any(wave):
            raise ScoringInputError("[speaker_sim] audio is digital silence: no voice to embed")
        voiced = self._preprocess(wave)
        if voiced.shape[0] < MIN_VOICED_SECONDS * RATE:
            raise ScoringInputError(f"[speaker_sim] under {MIN_VOICED_SECONDS} s of voice left after webrtcvad trimmed silences")
        with torch_threads(self.device):
            return self._encoder.embed_utterance(voiced.astype(np.float32))

    def _score(self, batch: list[ScoreInput]) -> list[dict[str, float]]:
        results = []
        for sample in batch:
            mine = self.embed(sample.audio, sample.sample_rate)
            theirs = self.embed(sample.reference, sample.reference_rate)
            results.append({"speaker_sim": similarity(mine, theirs)})
        return results
