"""`hsp demo`: the bundled examples through prepare, then upsample (SpeechSR 48k), on a local Ray."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from pipeline.engine.job import RunOptions
from pipeline.prepare import PREPARE, PrepareConfig
from pipeline.upsample import UPSAMPLE, UpsampleConfig

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"


@click.command()
@click.option("-o", "--output", default="demo-out", show_default=True, help="Folder for the demo outputs.")
@click.option("--num-cpus", type=int, default=None)
def demo(output: str, num_cpus: int | None) -> None:
    """Run the pipeline on the bundled examples (local Ray): prepare, then upsample the shards to 48 kHz."""
    from pipeline import registry
    from pipeline.stages.model_checks import WeightsUnavailableError

    manifest_path = EXAMPLES_DIR / "examples.parquet"
    base = Path(output)
    options = RunOptions(num_cpus=num_cpus, rows_per_shard=4, command=["hsp", *sys.argv[1:]])
    click.echo(f"== prepare: {manifest_path} -> {base / 'prepared'}")
    _check(registry.run(PREPARE.name, PrepareConfig(), str(manifest_path), str(base / "prepared"), options))
    click.echo(f"== upsample (SpeechSR 48k): {base / 'prepared'} shards -> {base / 'upsampled48k'}")
    threads = max(1, min(4, (os.cpu_count() or 2) // 2))  # the model is the slow part; give it cores
    config = UpsampleConfig(sample_rate=48000, cpus_per_actor=threads, download_timeout=30.0)
    try:
        summary = registry.run(UPSAMPLE.name, config, str(base / "prepared"), str(base / "upsampled48k"), options)
    except WeightsUnavailableError as exc:
        click.echo(
            f"skipping upsample (the prepare output above is complete): {exc}\n"
            "To run it: set HSP_WEIGHTS_DIR to a folder with speechsr48k/G_100000.pth and its config.json "
            "(the layout of the upstream repository), or allow the one-time download (sha256-verified, cached in "
            "$HSP_CACHE_DIR or ~/.cache/hierspeech-pipeline); then run `hsp demo` again.",
            err=True,
        )
        return
    _check(summary)


def _check(summary: dict) -> None:
    if not summary["complete"]:
        raise SystemExit(3)
