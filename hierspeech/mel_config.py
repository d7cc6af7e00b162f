"""The mel front-end's parameters, apart from its torch code.

Kept in a module of its own that imports no torch: the pipeline's decode workers read the minimum
input length off `n_fft` (pipeline.stages.min_length), and importing torch for that constant cost
each worker about 1.2 s of CPU before its first row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from hierspeech.config import ConfigReader, ModelConfig


@dataclass(frozen=True)
class MelConfig(ModelConfig):
    """Mel parameters, from the ``data`` section of the synthesizer's official config.json; the
    defaults are those of the released synthesizer."""

    KIND: ClassVar[str] = "mel"
    SETTINGS: ClassVar[frozenset[str]] = frozenset({"train", "data", "model"})
    """The rest of the synthesizer's file belongs to the synthesizer and its training."""

    sample_rate: int = 16000
    n_fft: int = 1280
    win_length: int = 1280
    hop_length: int = 320
    f_min: float = 0.0
    f_max: float = 8000.0
    n_mels: int = 80
    log_offset: float = 1e-3

    @classmethod
    def _read(cls, reader: ConfigReader) -> dict[str, Any]:
        rate = int(reader.take("data", "sampling_rate"))
        f_max = reader.take("data", "mel_fmax", default=None)
        return {
            "sample_rate": rate,
            "n_fft": int(reader.take("data", "filter_length")),
            "win_length": int(reader.take("data", "win_length")),
            "hop_length": int(reader.take("data", "hop_length")),
            "f_min": float(reader.take("data", "mel_fmin")),
            "f_max": float(f_max) if f_max is not None else rate / 2,
            "n_mels": int(reader.take("data", "n_mel_channels")),
        }
