"""The `hsp` command line: thin click commands over the library functions."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from pipeline.job import DEFAULT_MAX_SHARD_BYTES, DEFAULT_ROWS_PER_SHARD, RunOptions
from pipeline.jobs_registry import JOB_COLUMNS

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"


def run_options(function):
    """Options shared by every job command (where to run, shard sizes, strictness)."""
    decorators = [
        click.option("--address", envvar="RAY_ADDRESS", default=None, help="Ray cluster address (default: start a local Ray)."),
        click.option("--num-cpus", type=int, default=None, help="Logical CPUs of the local Ray (default: max(4, cores))."),
        click.option("--rows-per-shard", type=click.IntRange(min=1), default=DEFAULT_ROWS_PER_SHARD, show_default=True),
        click.option("--max-shard-bytes", type=click.IntRange(min=1), default=DEFAULT_MAX_SHARD_BYTES, show_default=True),
        click.option("--strict/--lenient", default=False, show_default=True, help="Refuse manifests with missing files or null paths instead of recording those rows as errors."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True, help="auto: GPU stages fall back to CPU when the cluster has no GPU; cuda: fail instead."),
        click.option("--progress/--no-progress", default=True, show_default=True),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def make_run_options(**kwargs) -> RunOptions:
    return RunOptions(
        address=kwargs["address"],
        num_cpus=kwargs["num_cpus"],
        rows_per_shard=kwargs["rows_per_shard"],
        max_shard_bytes=kwargs["max_shard_bytes"],
        strict=kwargs["strict"],
        device=kwargs["device"],
        progress=kwargs["progress"],
        command=["hsp", *sys.argv[1:]],
    )


@click.group()
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.version_option(package_name="hierspeech-pipeline", message="%(prog)s %(version)s")
def main(verbose: int) -> None:
    """hierspeech-pipeline: HierSpeech++ features, synthesis and upsampling over Parquet manifests with Ray."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@main.group()
def manifest() -> None:
    """Build and validate Parquet manifests."""


@manifest.command("build")
@click.argument("corpus", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Manifest to write (.parquet).")
@click.option("--absolute/--relative", default=False, show_default=True, help="Store absolute audio paths, or paths relative to the manifest.")
@click.option("--workers", type=click.IntRange(min=1), default=16, show_default=True, help="Threads reading headers.")
def manifest_build(corpus: Path, output: Path, absolute: bool, workers: int) -> None:
    """Scan CORPUS for wav/flac/ogg/mp3 (+ sidecar transcripts) into a manifest."""
    import pyarrow.parquet as pq

    from pipeline.manifest_build import build_manifest

    output.parent.mkdir(parents=True, exist_ok=True)
    table = build_manifest(corpus, relative_to=None if absolute else output.resolve().parent, workers=workers)
    pq.write_table(table, output)
    hours = sum(d or 0.0 for d in table.column("duration").to_pylist()) / 3600
    texts = sum(t is not None for t in table.column("text").to_pylist())
    speakers = len({s for s in table.column("speaker").to_pylist() if s})
    click.echo(f"wrote {output}: {table.num_rows} files, {hours:.3f} h, {texts} with transcripts, {speakers} speakers")


@manifest.command("validate")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--job", "job_name", type=click.Choice(sorted(JOB_COLUMNS)), default=None, help="Also check the columns this job needs.")
@click.option("--check-files/--no-check-files", default=True, show_default=True)
@click.option("--limit", type=int, default=50, show_default=True, help="Problems to print.")
def manifest_validate(path: Path, job_name: str | None, check_files: bool, limit: int) -> None:
    """Check schema, types, duplicate ids, nulls and missing files; exit 1 on any problem."""
    from pipeline.jobs_registry import job_columns
    from pipeline.manifest import validate_manifest

    report = validate_manifest(path, job_columns(job_name), check_files=check_files)
    click.echo(report.format(limit))
    if report.problems:
        raise SystemExit(1)
    click.echo("manifest is valid")


@main.command()
@click.argument("manifest_path", metavar="MANIFEST", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", required=True, help="Output folder (local path or URI).")
@click.option("--sr", "sample_rate", type=click.IntRange(min=1000), default=16000, show_default=True, help="Output sample rate.")
@click.option("--channels", "channel_policy", type=click.Choice(["first", "mean"]), default="first", show_default=True, help="Multi-channel input: keep the first channel (as upstream) or average.")
@click.option("--max-seconds", type=float, default=3600.0, show_default=True, help="Reject files longer than this.")
@click.option("--bits", type=click.Choice(["16", "24"]), default="16", show_default=True)
@run_options
def prepare(manifest_path: Path, output: str, sample_rate: int, channel_policy: str, max_seconds: float, bits: str, **kwargs) -> None:
    """Decode, downmix and resample every row to mono FLAC shards (default 16 kHz)."""
    from pipeline.prepare import prepare_job

    job = prepare_job(sample_rate, channel_policy=channel_policy, max_seconds=max_seconds, bits=int(bits))
    _run(job, manifest_path, output, make_run_options(**kwargs))


@main.command()
@click.argument("output", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def inspect(output: str, as_json: bool) -> None:
    """Show counts, hours, errors by type, shards, and whether OUTPUT is complete."""
    from pipeline.inspect_output import format_inspection, inspect_output

    result = inspect_output(output)
    click.echo(json.dumps(result, indent=2, default=str) if as_json else format_inspection(result))
    if not result["summary"]["complete"]:
        raise SystemExit(3)


@main.command()
@click.argument("output", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--report", "report_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder to write (index.html + assets/).")
@click.option("--samples", type=click.IntRange(min=0), default=6, show_default=True, help="Random samples shown with audio players and spectrograms.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random choice of samples.")
@click.option("--stats-samples", type=click.IntRange(min=0), default=256, show_default=True, help="Random samples opened for F0/w2v figures.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def report(output: str, report_dir: Path, samples: int, seed: int, stats_samples: int, progress: bool) -> None:
    """Write a visual report of OUTPUT (plots, errors, audio players) to a folder; open its index.html."""
    from pipeline.report.build import build_report

    if report_dir.suffix.lower() in (".html", ".htm"):
        raise click.BadParameter(f"the report is a folder (index.html + assets/); pass e.g. -o {report_dir.with_suffix('')}", param_hint="-o")
    try:
        result = build_report(output, report_dir, samples=samples, seed=seed, stats_samples=stats_samples, progress=progress)
    except (FileNotFoundError, FileExistsError) as exc:
        raise click.ClickException(str(exc)) from exc
    state = "PARTIAL output" if result.partial else "complete output"
    click.echo(
        f"wrote {result.path}: {result.samples_out} samples ({state}), {result.images} images, "
        f"{result.audio} audio files, {result.bytes / 1e6:.1f} MB"
    )


@main.command()
@click.option("-o", "--output", default="demo-out", show_default=True, help="Folder for the demo outputs.")
@click.option("--num-cpus", type=int, default=None)
def demo(output: str, num_cpus: int | None) -> None:
    """Run the pipeline on the bundled examples (local Ray, no network needed)."""
    from pipeline.prepare import prepare_job

    manifest_path = EXAMPLES_DIR / "examples.parquet"
    base = Path(output)
    options = RunOptions(num_cpus=num_cpus, rows_per_shard=4, command=["hsp", *sys.argv[1:]])
    click.echo(f"== prepare: {manifest_path} -> {base / 'prepared'}")
    _run(prepare_job(16000), manifest_path, str(base / "prepared"), options)


def _run(job, manifest_path, output, options: RunOptions) -> None:
    from pipeline.manifest import ManifestError
    from pipeline.output import OutputConflictError
    from pipeline.ray_env import ResourceError
    from pipeline.runner import JobFailedError, run_job

    try:
        summary = run_job(job, manifest_path, output, options)
    except (ManifestError, OutputConflictError, ResourceError, JobFailedError) as exc:
        raise click.ClickException(str(exc)) from exc
    if not summary["complete"]:
        raise SystemExit(3)


if __name__ == "__main__":
    main()
