"""Metric names -> scorers: the one list `--metrics` parses, and the config a scoring job carries.

`ScoringConfig` is the one source of defaults (the CLI reads them from it). The default metrics
are all that need no model from the user: DNSMOS, speaker similarity, VAD speech ratio and
bandwidth; `wer` (WER and CER) needs `asr_model`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.scoring.asr import WerScorer
from pipeline.scoring.bandwidth import BandwidthScorer
from pipeline.scoring.base import Scorer, ScoringError
from pipeline.scoring.dnsmos import DnsmosScorer
from pipeline.scoring.speaker import SpeakerSimilarityScorer
from pipeline.scoring.vad import SpeechRatioScorer

SCORERS: dict[str, type[Scorer]] = {
    cls.name: cls for cls in (DnsmosScorer, SpeakerSimilarityScorer, SpeechRatioScorer, BandwidthScorer, WerScorer)
}
DEFAULT_METRICS: tuple[str, ...] = ("dnsmos", "speaker_sim", "vad", "bandwidth")


@dataclass(frozen=True)
class ScoringConfig:
    """What to score and with what; recorded in the job's options."""

    metrics: tuple[str, ...] = DEFAULT_METRICS
    device: str | None = None  # None: CUDA for the scorers a GPU helps (speaker_sim, wer) when visible
    asr_model: str | None = None  # hub id or local folder (transformers CTC or Whisper), for `wer`
    asr_language: str | None = None  # Whisper only; None: the model detects it


def parse_metrics(text: str | None) -> tuple[str, ...]:
    """'dnsmos,vad' -> ('dnsmos', 'vad'); None or '' -> the defaults; unknown names are an error."""
    if not text:
        return DEFAULT_METRICS
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [n for n in names if n not in SCORERS]
    if unknown:
        raise ScoringError(f"unknown metric(s) {', '.join(map(repr, unknown))}; known: {', '.join(SCORERS)}")
    if not names:
        raise ScoringError(f"no metric in {text!r}; known: {', '.join(SCORERS)}")
    return names


def index_columns(metrics: tuple[str, ...]) -> list[str]:
    """The index columns the metrics fill, in metric order."""
    return [column for name in metrics for column in SCORERS[name].columns]


def build_scorers(config: ScoringConfig) -> list[Scorer]:
    """One unloaded scorer per metric; fails now (not on a worker) on a missing package or model option."""
    unknown = [n for n in config.metrics if n not in SCORERS]
    if unknown:
        raise ScoringError(f"unknown metric(s) {', '.join(map(repr, unknown))}; known: {', '.join(SCORERS)}")
    if config.asr_model and "wer" not in config.metrics:
        raise ScoringError("an ASR model was given but metric 'wer' is not selected; add it to the metrics")
    scorers: list[Scorer] = []
    for name in config.metrics:
        if name == "wer":
            scorers.append(WerScorer(config.asr_model or "", config.device, language=config.asr_language))
        else:
            scorers.append(SCORERS[name](config.device))
    return scorers
