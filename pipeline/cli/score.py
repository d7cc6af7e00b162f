"""`hsp score`, and the score options `hsp synthesize` and `hsp augment` share (--score, the gates).

Defaults come from `pipeline.score.ScoreConfig` and `pipeline.scoring.ScoreGates`, never
written out here.
"""

from __future__ import annotations

from dataclasses import fields

import click

from pipeline.cli import run_options  # defined before pipeline/cli/__init__.py imports this module
from pipeline.score import ScoreConfig
from pipeline.scoring import SCORERS, ScoreGates, ScoringConfig, parse_metrics

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


def pop_gates(kw: dict) -> ScoreGates:
    """The `ScoreGates` of a command's keyword arguments (removed from `kw`)."""
    return ScoreGates(**{gate.name: kw.pop(gate.name) for gate in fields(ScoreGates)})


def pop_scoring(kw: dict, metrics: tuple[str, ...] | None) -> ScoringConfig | None:
    """The synthesis commands' `--score` as a `ScoringConfig` (None: not scoring)."""
    asr_model, asr_language = kw.pop("asr_model"), kw.pop("asr_language")
    if metrics is None:
        if asr_model:
            raise click.UsageError("--asr-model needs --score with metric wer")
        return None
    return ScoringConfig(metrics=metrics, asr_model=asr_model, asr_language=asr_language)


def synthesis_score_options(function):
    """`--score METRICS` + ASR + gates, for `hsp synthesize` and `hsp augment`."""
    function = score_gate_options(function)
    function = asr_options(function)
    return click.option(
        "--score", "score_metrics", default=None, callback=_metrics, metavar="METRICS",
        help=f"Score every output in the same job: {METRICS_HELP} speaker_sim compares with the prompt (and for VC with the source: speaker_sim_source). Default: no scoring.",
    )(function)


@click.command("score")
@click.argument("input_spec", metavar="INPUT")
@click.option("-o", "--output", required=True, help="Output folder (local path or URI).")
@click.option("--metrics", default=",".join(DEFAULTS.metrics), show_default=True, callback=_metrics, help=METRICS_HELP)
@click.option("--reference-column", default=DEFAULTS.reference_column, show_default=True, help="Manifest column (or sample-json key) with the reference voice for speaker_sim; synthesis outputs: their prompt.")
@asr_options
@score_gate_options
@click.option("--drop-failed-gates", is_flag=True, default=DEFAULTS.drop_failed_gates, help="Rows failing a gate go to the errors table instead of the shards.")
@click.option("--max-seconds", type=click.FloatRange(min=0.1), default=DEFAULTS.max_seconds, show_default=True, help="Reject inputs longer than this.")
@click.option("--actors", type=click.IntRange(min=1), default=DEFAULTS.actors, show_default=True, help="Scorer actors (each loads every model once).")
@click.option("--gpus-per-actor", type=click.FloatRange(min=0.0), default=DEFAULTS.gpus_per_actor, help="Default: 1 when speaker_sim or wer is scored (they run faster on GPU), else 0.")
@click.option("--cpus-per-actor", type=click.FloatRange(min=0.0, min_open=True), default=DEFAULTS.cpus_per_actor, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULTS.batch_size, show_default=True, help="Rows per scorer call.")
@run_options
def score(input_spec: str, output: str, metrics: tuple[str, ...], reference_column: str, asr_model: str | None,
          asr_language: str | None, drop_failed_gates: bool, max_seconds: float, actors: int, gpus_per_actor: float | None,
          cpus_per_actor: float, batch_size: int, **kwargs) -> None:
    """Quality scores (DNSMOS, speaker similarity, VAD speech ratio, bandwidth, WER/CER) of every sample, as gates.

    INPUT is a Parquet manifest (id, audio [, reference_audio, text]) or any job's WebDataset shards
    (a directory, a glob or a brace pattern; quote it); every member passes through unchanged and
    the scores go to the index (one column per value) and to each sample's json.
    """
    from pipeline.cli import _run, make_run_options
    from pipeline.score import score_job
    from pipeline.upsample import input_manifest

    config = ScoreConfig(
        metrics=metrics, reference_column=reference_column, asr_model=asr_model, asr_language=asr_language,
        gates=pop_gates(kwargs), drop_failed_gates=drop_failed_gates, max_seconds=max_seconds, actors=actors,
        gpus_per_actor=gpus_per_actor, cpus_per_actor=cpus_per_actor, batch_size=batch_size,
    )
    job = score_job(config)
    _run(job, input_manifest(input_spec, output), output, make_run_options(**kwargs))
