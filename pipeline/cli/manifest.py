"""`hsp manifest build|validate`: make a Parquet manifest from a corpus folder, and check one."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.registry import JOBS


@click.group()
def manifest() -> None:
    """Build and validate Parquet manifests."""


@manifest.command("build")
@click.argument("corpus", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Manifest to write (.parquet).")
@click.option("--absolute/--relative", default=False, show_default=True, help="Store absolute audio paths, or paths relative to the manifest.")
@click.option("--workers", type=click.IntRange(min=1), default=16, show_default=True, help="Threads reading headers.")
def manifest_build(corpus: Path, output: Path, absolute: bool, workers: int) -> None:
    """Scan CORPUS for wav/flac/ogg/mp3 (+ sidecar transcripts) into a manifest."""
    from pipeline.io.manifest_build import describe_manifest, write_manifest

    table = write_manifest(corpus, output, absolute=absolute, workers=workers)
    click.echo(f"wrote {output}: {describe_manifest(table)}")


@manifest.command("validate")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--job", "job_name", type=click.Choice(sorted(JOBS)), default=None, help="Also check the columns this job needs.")
@click.option("--check-files/--no-check-files", default=True, show_default=True)
@click.option("--limit", type=int, default=50, show_default=True, help="Problems to print.")
def manifest_validate(path: Path, job_name: str | None, check_files: bool, limit: int) -> None:
    """Check schema, types, duplicate ids, nulls and missing files; exit 1 on any problem."""
    from pipeline.io.manifest import validate_manifest
    from pipeline.registry import job_columns

    report = validate_manifest(path, job_columns(job_name), check_files=check_files)
    click.echo(report.format(limit))
    if report.problems:
        raise SystemExit(1)
    click.echo("manifest is valid")
