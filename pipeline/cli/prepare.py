"""`hsp prepare`: options of `PrepareConfig`, then the prepare job."""

from __future__ import annotations

import click

from pipeline.cli.options import (
    default,
    int_choice,
    manifest_argument,
    output_option,
    run_job_command,
    run_options,
)
from pipeline.engine.job import RunOptions
from pipeline.io.audio import CHANNEL_POLICIES, FLAC_SUBTYPES
from pipeline.prepare import PREPARE, PrepareConfig


@click.command()
@manifest_argument
@output_option
@click.option("--sr", "sample_rate", type=click.IntRange(min=1000), default=default(PrepareConfig, "sample_rate"), show_default=True, help="Output sample rate.")
@click.option("--channels", "channel_policy", type=click.Choice(CHANNEL_POLICIES), default=default(PrepareConfig, "channel_policy"), show_default=True, help="Multi-channel input: keep the first channel (as upstream) or average.")
@click.option("--max-seconds", type=float, default=default(PrepareConfig, "max_seconds"), show_default=True, help="Reject files longer than this.")
@click.option("--bits", type=int_choice(sorted(FLAC_SUBTYPES)), default=str(default(PrepareConfig, "bits")), show_default=True)
@run_options
def prepare(manifest_path: str, output: str, run: RunOptions, **options) -> None:
    """Decode, downmix and resample every row to mono FLAC shards (default 16 kHz)."""
    run_job_command(PREPARE.name, PrepareConfig(**options), manifest_path, output, run)
