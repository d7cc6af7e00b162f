"""The `hsp` command line: thin click commands over the library functions."""

from __future__ import annotations

import json
import logging
import os
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
@click.argument("input_spec", metavar="INPUT")
@click.option("-o", "--output", required=True, help="Output folder (local path or URI).")
@click.option("--sr", "sample_rate", type=click.Choice(["48000", "24000"]), default="48000", show_default=True, help="Output rate: the SpeechSR 48k or 24k model.")
@click.option("--normalize", type=click.Choice(["source", "peak", "none"]), default="source", show_default=True, help="source: keep the input's peak level; peak: peak 0.999 as upstream; none: raw model output.")
@click.option("--bits", type=click.Choice(["16", "24"]), default="16", show_default=True)
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), default=None, help="SpeechSR G_*.pth (config.json beside it); default: $HSP_WEIGHTS_DIR, else a verified download.")
@click.option("--actors", type=click.IntRange(min=1), default=1, show_default=True, help="SpeechSR actors (model copies).")
@click.option("--gpus-per-actor", type=click.FloatRange(min=0.0), default=1.0, show_default=True, help="Fractions share a GPU (e.g. 0.25: four actors per GPU).")
@click.option("--cpus-per-actor", type=click.FloatRange(min=0.0, min_open=True), default=1.0, show_default=True)
@click.option("--batch-seconds", type=click.FloatRange(min=0.1), default=10.0, show_default=True, help="Output audio per model call: the memory budget (~90 MB per second at 48 kHz); raise it on GPUs. Does not change results.")
@click.option("--channels", "channel_policy", type=click.Choice(["first", "mean"]), default="first", show_default=True)
@click.option("--max-seconds", type=float, default=3600.0, show_default=True, help="Reject inputs longer than this.")
@run_options
def upsample(input_spec: str, output: str, sample_rate: str, normalize: str, bits: str, checkpoint: str | None,
             actors: int, gpus_per_actor: float, cpus_per_actor: float, batch_seconds: float, channel_policy: str,
             max_seconds: float, **kwargs) -> None:
    """Upsample 16 kHz speech to 48/24 kHz FLAC with SpeechSR.

    INPUT is a Parquet manifest (any rate: resampled to 16 kHz first) or WebDataset tar shards: a
    directory, a glob or a brace pattern (quote it); non-audio members pass through unchanged.
    """
    from hierspeech.weights import WeightsError
    from pipeline.tar_source import TarSourceError
    from pipeline.upsample import input_manifest, upsample_job

    try:
        job = upsample_job(int(sample_rate), normalize=normalize, bits=int(bits), checkpoint=checkpoint, actors=actors,
                           gpus_per_actor=gpus_per_actor, cpus_per_actor=cpus_per_actor, batch_seconds=batch_seconds,
                           channel_policy=channel_policy, max_seconds=max_seconds)
        manifest_path = input_manifest(input_spec, output)
    except (WeightsError, TarSourceError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
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
@click.option("-o", "--output", default="demo-out", show_default=True, help="Folder for the demo outputs.")
@click.option("--num-cpus", type=int, default=None)
def demo(output: str, num_cpus: int | None) -> None:
    """Run the pipeline on the bundled examples (local Ray): prepare, then upsample the shards to 48 kHz."""
    from hierspeech.weights import WeightsError
    from pipeline.prepare import prepare_job
    from pipeline.upsample import input_manifest, upsample_job

    manifest_path = EXAMPLES_DIR / "examples.parquet"
    base = Path(output)
    options = RunOptions(num_cpus=num_cpus, rows_per_shard=4, command=["hsp", *sys.argv[1:]])
    click.echo(f"== prepare: {manifest_path} -> {base / 'prepared'}")
    _run(prepare_job(16000), manifest_path, str(base / "prepared"), options)
    click.echo(f"== upsample (SpeechSR 48k): {base / 'prepared'} shards -> {base / 'upsampled48k'}")
    try:
        threads = max(1, min(4, (os.cpu_count() or 2) // 2))  # the model is the slow part; give it cores
        job = upsample_job(48000, cpus_per_actor=threads, download_timeout=30.0)
    except WeightsError as exc:
        click.echo(
            f"skipping upsample (the prepare output above is complete): {exc}\n"
            "To run it: set HSP_WEIGHTS_DIR to a folder with speechsr48k/G_100000.pth and its config.json "
            "(the layout of the upstream repository), or allow the one-time download (sha256-verified, cached in "
            "$HSP_CACHE_DIR or ~/.cache/hierspeech-pipeline); then run `hsp demo` again.",
            err=True,
        )
        return
    _run(job, input_manifest(str(base / "prepared"), str(base / "upsampled48k")), str(base / "upsampled48k"), options)


def _run(job, manifest_path, output, options: RunOptions) -> None:
    from pipeline.manifest import ManifestError
    from pipeline.output import OutputConflictError
    from pipeline.ray_env import ResourceError
    from pipeline.runner import run_job

    try:
        summary = run_job(job, manifest_path, output, options)
    except (ManifestError, OutputConflictError, ResourceError) as exc:
        raise click.ClickException(str(exc)) from exc
    if not summary["complete"]:
        raise SystemExit(3)


if __name__ == "__main__":
    main()
