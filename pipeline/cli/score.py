"""`hsp score INPUT -o OUT`: a thin command over `pipeline.score.score_job` (defaults from `ScoreConfig`)."""

from __future__ import annotations

import click

from pipeline.cli.options import output_option, run_job_command, run_options
from pipeline.cli.score_options import (
    DEFAULTS,
    METRICS_HELP,
    _metrics,
    asr_options,
    score_gate_options,
)
from pipeline.engine.job import RunOptions
from pipeline.score import SCORE


@click.command("score")
@click.argument("input_spec", metavar="INPUT")
@output_option
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
def score(input_spec: str, output: str, metrics: tuple[str, ...] | None, run: RunOptions, **options) -> None:
    """Quality scores (DNSMOS, speaker similarity, VAD speech ratio, bandwidth, WER/CER) of every sample, as gates.

    INPUT is a Parquet manifest (id, audio [, reference_audio, text]) or any job's WebDataset shards
    (a directory, a glob or a brace pattern; quote it); every member passes through unchanged and
    the scores go to the index (one column per value) and to each sample's json.
    """
    from pipeline.io.tar_source import is_tar_input
    from pipeline.score import fit_to_manifest, manifest_column_names, score_config

    config = score_config(metrics=metrics, **options)
    columns = None if is_tar_input(input_spec) else manifest_column_names(input_spec)  # shards: references from their json
    config, note = fit_to_manifest(config, columns, metrics_given=metrics is not None)
    if note:
        click.echo(f"[score] {note}", err=True)
    run_job_command(SCORE.name, config, input_spec, output, run)
