"""Speech ratio: seconds Silero VAD marks as speech, over the clip's duration.

Silero VAD's TorchScript model as the `silero-vad` wheel ships it (MIT; no download), through
its public `load_silero_vad` and `get_speech_timestamps` with their default thresholds (0.5,
250 ms minimum speech, 30 ms padding). Only the package itself is installed: its core needs
torch alone, and its audio I/O extra (torchaudio) is never used, since inputs arrive decoded.
It runs on CPU, where the model is meant to run (31 small steps per second of audio), at one
torch thread as silero intends (a CPU job scales it by actors).
A low ratio flags silence, music or noise where speech should be.
"""

from __future__ import annotations

import numpy as np

from pipeline.scoring.base import ScoreInput, Scorer, at_rate, import_for, package_version, torch_threads

RATE = 16000


class SpeechRatioScorer(Scorer):
    """`speech_ratio` in [0, 1]."""

    name = "vad"
    columns = ("speech_ratio",)
    modules = ("silero_vad",)

    def __init__(self, device: str | None = None) -> None:
        super().__init__("cpu" if device is None else device)
        self._model = None
        self._timestamps = None

    def version(self) -> str:
        return f"silero-vad {package_version('silero-vad')} (silero_vad.jit)"

    def _load(self) -> None:
        import torch

        threads = torch.get_num_threads()
        try:
            silero_vad = import_for(self.name, "silero_vad")  # sets torch to 1 thread on import
        finally:
            torch.set_num_threads(threads)
        self._model = silero_vad.load_silero_vad()
        self._timestamps = silero_vad.get_speech_timestamps

    def _score(self, batch: list[ScoreInput]) -> list[dict[str, float]]:
        import torch

        results = []
        with torch.inference_mode(), torch_threads(self.device):
            for sample in batch:
                wave = at_rate(sample.audio, sample.sample_rate, RATE)
                spans = self._timestamps(torch.from_numpy(np.ascontiguousarray(wave)), self._model, sampling_rate=RATE)
                speech = sum(span["end"] - span["start"] for span in spans)
                results.append({"speech_ratio": min(1.0, speech / wave.shape[0])})
        return results
