"""`hsp probe` (hidden): the cluster check, prepare plus a GPU stage that records where it ran."""

from __future__ import annotations

import click

from pipeline.cli.options import default, manifest_argument, output_option, run_job_command, run_options
from pipeline.engine.job import RunOptions
from pipeline.testing.probes import PROBE, ProbeConfig


@click.command(hidden=True)
@manifest_argument
@output_option
@click.option("--gpus", "num_gpus", type=float, default=default(ProbeConfig, "num_gpus"), show_default=True, help="GPUs per probe actor.")
@click.option("--actors", type=click.IntRange(min=1), default=default(ProbeConfig, "actors"), show_default=True)
@click.option("--delay", type=click.FloatRange(min=0), default=default(ProbeConfig, "delay"), show_default=True, help="Seconds to sleep per item (fault tests).")
@click.option("--batch-size", type=click.IntRange(min=1), default=default(ProbeConfig, "batch_size"), show_default=True, help="Rows per probe call (1: parts commit one by one).")
@click.option("--hold", default=default(ProbeConfig, "hold"), metavar="FILE", help="After its first row, each probe actor waits for FILE to exist before the next rows (fault tests).")
@run_options
def probe(manifest_path: str, output: str, run: RunOptions, **options) -> None:
    """Cluster check: prepare + a GPU stage that records where it ran (node ip, GPU ids) in each sample's json."""
    run_job_command(PROBE.name, ProbeConfig(**options), manifest_path, output, run)
