"""Score options shared by `hsp score`, `hsp synthesize` and `hsp augment`: metrics, ASR model, gates.

Defaults come from `pipeline.score.ScoreConfig` and `pipeline.scoring.ScoreGates`, never
written out here.
"""

from __future__ import annotations

from dataclasses import fields

import click

from pipeline.score import ScoreConfig
from pipeline.scoring import SCORERS, ScoreGates, parse_metrics

DEFAULTS = ScoreConfig()
METRICS_HELP = f"Comma-separated subset of {', '.join(SCORERS)} (wer also fills cer and needs --asr-model)."
GATE_HELP = {
    "min_dnsmos_ovrl": "Gate: lowest DNSMOS overall (1-5).",
    "min_speaker_sim": "Gate: lowest speaker similarity to the reference voice (0-1).",
    "max_wer": "Gate: highest word error rate (needs metric wer).",
    "min_speech_ratio": "Gate: lowest VAD speech seconds / duration (0-1).",
    "min_bandwidth_hz": "Gate: lowest bandwidth in Hz (e.g. 12000 for a real 48 kHz upsampling).",
}


def _metrics(ctx, param, value):
    from pipeline.scoring import ScoringError

    if value is None:
        return None
    try:
        return parse_metrics(value)
    except ScoringError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


def score_gate_options(function):
    """--min-dnsmos-ovrl ... --min-bandwidth-hz, one per `ScoreGates` field (all off by default)."""
    for gate in reversed(fields(ScoreGates)):
        flag = "--" + gate.name.replace("_", "-")
        function = click.option(flag, gate.name, type=float, default=gate.default, help=GATE_HELP[gate.name])(function)
    return function


def asr_options(function):
    function = click.option("--asr-language", default=DEFAULTS.asr_language, help="Whisper only: the language to transcribe (default: detected).")(function)
    return click.option("--asr-model", default=DEFAULTS.asr_model, help="ASR model for wer/cer: transformers CTC (Wav2Vec2ForCTC) or Whisper, hub id or local folder (HF_HUB_OFFLINE=1 honoured).")(function)


def synthesis_score_options(function):
    """`--score METRICS` + ASR + gates, for `hsp synthesize` and `hsp augment`."""
    function = score_gate_options(function)
    function = asr_options(function)
    return click.option(
        "--score", "score_metrics", default=None, callback=_metrics, metavar="METRICS",
        help=f"Score every output in the same job: {METRICS_HELP} speaker_sim compares with the prompt (and for VC with the source: speaker_sim_source). Default: no scoring.",
    )(function)
