"""`hsp report`: the visual dataset card of a job output (see docs/report.md)."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import parameter_default
from pipeline.report.build import build_report


@click.command()
@click.argument("output", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--report", "report_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder to write (index.html + assets/).")
@click.option("--samples", type=click.IntRange(min=0), default=parameter_default(build_report, "samples"), show_default=True, help="Random samples shown with audio players and spectrograms.")
@click.option("--seed", type=int, default=parameter_default(build_report, "seed"), show_default=True, help="Seed of the random choice of samples.")
@click.option("--stats-samples", type=click.IntRange(min=0), default=parameter_default(build_report, "stats_samples"), show_default=True, help="Random samples opened for F0/w2v figures.")
@click.option("--worst", type=click.IntRange(min=0), default=parameter_default(build_report, "worst"), show_default=True, help="Worst samples shown per quality score (outputs of hsp score, or synthesize/augment --score).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def report(output: str, report_dir: Path, samples: int, seed: int, stats_samples: int, worst: int, progress: bool) -> None:
    """Write a visual report of OUTPUT (plots, errors, audio players) to a folder; open its index.html."""
    if report_dir.suffix.lower() in (".html", ".htm"):
        raise click.BadParameter(f"the report is a folder (index.html + assets/); pass e.g. -o {report_dir.with_suffix('')}", param_hint="-o")
    result = build_report(output, report_dir, samples=samples, seed=seed, stats_samples=stats_samples, progress=progress, worst=worst)
    state = "PARTIAL output" if result.partial else "complete output"
    click.echo(
        f"wrote {result.path}: {result.samples_out} samples ({state}), {result.images} images, "
        f"{result.audio} audio files, {result.bytes / 1e6:.1f} MB"
    )
