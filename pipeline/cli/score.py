"""`hsp score INPUT -o OUT`: a thin command over `pipeline.score.score_job` (defaults from `ScoreConfig`)."""

from __future__ import annotations

import click

from pipeline.cli import run_options  # defined before pipeline/cli/__init__.py imports this module
from pipeline.cli.score_options import (
    DEFAULTS,
    METRICS_HELP,
    _metrics,
    asr_options,
    pop_gates,
    score_gate_options,
)
from pipeline.score import ScoreConfig


@click.command("score")
@click.argument("input_spec", metavar="INPUT")
@click.option("-o", "--output", required=True, help="Output folder (local path or URI).")
@click.option("--metrics", default=None, callback=_metrics, help=METRICS_HELP + f" Default: {','.join(DEFAULTS.metrics)} (speaker_sim only where the manifest has the reference column).")
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
def score(input_spec: str, output: str, metrics: tuple[str, ...] | None, reference_column: str, asr_model: str | None,
          asr_language: str | None, drop_failed_gates: bool, max_seconds: float, actors: int, gpus_per_actor: float | None,
          cpus_per_actor: float, batch_size: int, **kwargs) -> None:
    """Quality scores (DNSMOS, speaker similarity, VAD speech ratio, bandwidth, WER/CER) of every sample, as gates.

    INPUT is a Parquet manifest (id, audio [, reference_audio, text]) or any job's WebDataset shards
    (a directory, a glob or a brace pattern; quote it); every member passes through unchanged and
    the scores go to the index (one column per value) and to each sample's json.
    """
    from pipeline.cli import _run, make_run_options
    from pipeline.io.tar_source import is_tar_input
    from pipeline.score import fit_to_manifest, manifest_column_names, score_job
    from pipeline.upsample import input_manifest

    config = ScoreConfig(
        metrics=metrics or DEFAULTS.metrics, reference_column=reference_column, asr_model=asr_model, asr_language=asr_language,
        gates=pop_gates(kwargs), drop_failed_gates=drop_failed_gates, max_seconds=max_seconds, actors=actors,
        gpus_per_actor=gpus_per_actor, cpus_per_actor=cpus_per_actor, batch_size=batch_size,
    )
    columns = None if is_tar_input(input_spec) else manifest_column_names(input_spec)  # shards: references from their json
    config, note = fit_to_manifest(config, columns, metrics_given=metrics is not None)
    if note:
        click.echo(f"[score] {note}", err=True)
    job = score_job(config)
    _run(job, input_manifest(input_spec, output), output, make_run_options(**kwargs))
