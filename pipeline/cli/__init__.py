"""The `hsp` command line: thin click commands over the library functions."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click

from hierspeech.f0 import BACKEND_HELP as F0_BACKEND_HELP
from hierspeech.f0 import DEFAULT_BACKEND as DEFAULT_F0_BACKEND
from pipeline.augment import PROMPT_SAMPLING, AugmentOptions
from pipeline.cli.score_options import pop_gates, pop_scoring, synthesis_score_options
from pipeline.engine.job import DEFAULT_MAX_SHARD_BYTES, DEFAULT_ROWS_PER_SHARD, RunOptions
from pipeline.errors import ConfigError, ModelError, PipelineError
from pipeline.jobs_registry import JOB_COLUMNS

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"


def _parse_stage_resources(ctx, param, value):
    from pipeline.engine.stage_resources import StageResourcesError, parse_stage_resources

    try:
        return parse_stage_resources(value or ())
    except StageResourcesError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


def run_options(function):
    """Options shared by every job command (where to run, shard sizes, strictness, per-stage resources)."""
    decorators = [
        click.option("--address", envvar="RAY_ADDRESS", default=None, help="Ray cluster address (default: start a local Ray)."),
        click.option("--num-cpus", type=int, default=None, help="Logical CPUs of the local Ray (default: max(4, cores))."),
        click.option("--rows-per-shard", type=click.IntRange(min=1), default=DEFAULT_ROWS_PER_SHARD, show_default=True),
        click.option("--max-shard-bytes", type=click.IntRange(min=1), default=DEFAULT_MAX_SHARD_BYTES, show_default=True),
        click.option("--block-rows", type=click.IntRange(min=1), default=32, show_default=True, help="Rows per input block: the unit Ray Data streams between stages (smaller: work spreads and streams sooner)."),
        click.option("--strict/--lenient", default=False, show_default=True, help="Refuse manifests with missing files or null paths instead of recording those rows as errors."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True, help="auto: GPU stages fall back to CPU when the cluster has no GPU; cuda: fail instead."),
        click.option("--wait-for-gpus", type=click.FloatRange(min=0), default=0.0, show_default=True, metavar="SECONDS", help="If the cluster has no GPU yet, ask the autoscaler for the GPU stages' GPUs and wait this long before falling back (auto) or failing (cuda)."),
        click.option("--progress/--no-progress", default=True, show_default=True),
        click.option(
            "--stage-resources",
            multiple=True,
            metavar="STAGE=KEY:VALUE,...",
            callback=_parse_stage_resources,
            help="Override a stage's resources, e.g. decode=num_cpus:2 or upsample=num_gpus:0.5,actors:4,memory:4G "
            "(keys: num_cpus, num_gpus, actors, memory). Repeatable; the plan printed at start shows the result.",
        ),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def _check_path_or_uri(ctx, param, value: str) -> str:
    if "://" not in value and not Path(value).exists():
        raise click.BadParameter(f"{value!r} does not exist", ctx=ctx, param=param)
    return value


def manifest_argument(function):
    """The MANIFEST argument of job commands: a local path that exists, or a URI (s3://, gs://, ...)."""
    return click.argument("manifest_path", metavar="MANIFEST", callback=_check_path_or_uri)(function)


def make_run_options(**kwargs) -> RunOptions:
    return RunOptions(
        address=kwargs["address"],
        num_cpus=kwargs["num_cpus"],
        rows_per_shard=kwargs["rows_per_shard"],
        max_shard_bytes=kwargs["max_shard_bytes"],
        block_rows=kwargs.get("block_rows", 32),
        strict=kwargs["strict"],
        device=kwargs["device"],
        wait_for_gpus=kwargs.get("wait_for_gpus", 0.0),
        progress=kwargs["progress"],
        command=_command_line(),
        stage_resources=kwargs.get("stage_resources") or {},
    )


def _command_line() -> list[str]:
    """What to record as the command: the job YAML entry point passes its own in the context's obj."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and isinstance(ctx.find_root().obj, dict) and "command" in ctx.find_root().obj:
        return list(ctx.find_root().obj["command"])
    return ["hsp", *sys.argv[1:]]


class _Hsp(click.Group):
    """The root group: a `PipelineError` raised anywhere below is printed as its one line (click's
    "Error: ..."), with the error class's exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PipelineError as exc:
            error = click.ClickException(str(exc))
            error.exit_code = exc.exit_code
            raise error from exc


@click.group(cls=_Hsp)
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

    from pipeline.io.manifest_build import build_manifest

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
    from pipeline.io.manifest import validate_manifest
    from pipeline.jobs_registry import job_columns

    report = validate_manifest(path, job_columns(job_name), check_files=check_files)
    click.echo(report.format(limit))
    if report.problems:
        raise SystemExit(1)
    click.echo("manifest is valid")


@main.command()
@manifest_argument
@click.option("-o", "--output", required=True, help="Output folder (local path or URI).")
@click.option("--sr", "sample_rate", type=click.IntRange(min=1000), default=16000, show_default=True, help="Output sample rate.")
@click.option("--channels", "channel_policy", type=click.Choice(["first", "mean"]), default="first", show_default=True, help="Multi-channel input: keep the first channel (as upstream) or average.")
@click.option("--max-seconds", type=float, default=3600.0, show_default=True, help="Reject files longer than this.")
@click.option("--bits", type=click.Choice(["16", "24"]), default="16", show_default=True)
@run_options
def prepare(manifest_path: str, output: str, sample_rate: int, channel_policy: str, max_seconds: float, bits: str, **kwargs) -> None:
    """Decode, downmix and resample every row to mono FLAC shards (default 16 kHz)."""
    from pipeline.prepare import prepare_job

    job = prepare_job(sample_rate, channel_policy=channel_policy, max_seconds=max_seconds, bits=int(bits))
    _run(job, manifest_path, output, make_run_options(**kwargs))


@main.command(hidden=True)
@manifest_argument
@click.option("-o", "--output", required=True, help="Output folder (local path or URI).")
@click.option("--gpus", type=float, default=1.0, show_default=True, help="GPUs per probe actor.")
@click.option("--actors", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--delay", type=click.FloatRange(min=0), default=0.0, show_default=True, help="Seconds to sleep per item (fault tests).")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True, help="Rows per probe call (1: parts commit one by one).")
@click.option("--hold", default="", metavar="FILE", help="After its first row, each probe actor waits for FILE to exist before the next rows (fault tests).")
@run_options
def probe(manifest_path: str, output: str, gpus: float, actors: int, delay: float, batch_size: int, hold: str, **kwargs) -> None:
    """Cluster check: prepare + a GPU stage that records where it ran (node ip, GPU ids) in each sample's json."""
    from pipeline.testing.probes import probe_job

    _run(probe_job(num_gpus=gpus, actors=actors, delay=delay, batch_size=batch_size, hold=hold), manifest_path, output, make_run_options(**kwargs))


@main.command()
@manifest_argument
@click.option("-o", "--output", required=True, help="Output folder (local path or URI).")
@click.option("--features", default="w2v,f0,tokens,mel", show_default=True, help="Comma-separated subset of w2v,f0,tokens,mel,denoise.")
@click.option("--w2v-model", default="facebook/mms-300m", show_default=True, help="Hub id or local directory (HF_HUB_OFFLINE=1 is honoured).")
@click.option("--w2v-layer", type=click.IntRange(min=0), default=7, show_default=True, help="hidden_states index kept.")
@click.option("--w2v-dtype", type=click.Choice(["float16", "float32"]), default="float16", show_default=True, help="Storage dtype of w2v.npy.")
@click.option("--f0-max", type=float, default=None, help="YAAPT f0_max (default 400 Hz as extract_f0.py; upstream's VC inference uses 1100).")
@click.option("--f0-backend", type=click.Choice(["amfm", "fast"]), default=DEFAULT_F0_BACKEND, show_default=True, help=F0_BACKEND_HELP)
@click.option("--f0-failure", type=click.Choice(["error", "zeros"]), default="error", show_default=True, help="error: the row goes to the errors table; zeros: store zeros and flag f0.failed in the json and index.")
@click.option("--language", default="en-us", show_default=True, help="espeak voice for rows without a 'language' value.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=1024, show_default=True, help="Longer texts (ids before blanks) are error rows.")
@click.option("--denoiser-ckpt", type=click.Path(exists=True, dir_okay=False), default=None, help="MP-SENet checkpoint (denoiser/g_best with config.json beside) for the denoise feature.")
@click.option("--denoise-chunk-seconds", type=float, default=4.0, show_default=True, help="Longer inputs are denoised in overlapping chunks (0: never chunk).")
@click.option("--max-seconds", type=float, default=3600.0, show_default=True, help="Reject files longer than this.")
@click.option("--cpu-actors", type=click.IntRange(min=1), default=2, show_default=True, help="F0 + mel actor pool size (YAAPT is the slow stage: about one per core).")
@click.option("--gpu-actors", type=click.IntRange(min=1), default=1, show_default=True, help="w2v/denoise actor pool size.")
@click.option("--gpus-per-actor", type=click.FloatRange(min=0), default=1.0, show_default=True, help="GPUs per model actor (0.5 packs two per GPU).")
@click.option("--batch-seconds", type=click.FloatRange(min=1), default=120.0, show_default=True, help="Padded audio seconds per w2v forward (length-bucketed batches).")
@click.option("--w2v-backend", type=click.Choice(["auto", "packed", "transformers"]), default="auto", show_default=True, help="packed: our CPU float32 path (~1.4x the transformers forward); transformers: padded batches (GPU); auto: packed on CPU.")
@run_options
def extract(manifest_path: str, output: str, features: str, w2v_model: str, w2v_layer: int, w2v_dtype: str, f0_max: float | None, f0_backend: str, f0_failure: str, language: str, max_tokens: int, denoiser_ckpt: str | None, denoise_chunk_seconds: float, max_seconds: float, cpu_actors: int, gpu_actors: int, gpus_per_actor: float, batch_seconds: float, w2v_backend: str, **kwargs) -> None:
    """HierSpeech++ training features (w2v, F0, tokens, mel, denoised audio) for every row."""
    from pipeline.extract import ExtractConfig, extract_job

    config = ExtractConfig(
            features=tuple(f.strip() for f in features.split(",") if f.strip()),
            w2v_model=w2v_model,
            w2v_layer=w2v_layer,
            w2v_dtype=w2v_dtype,
            f0_max=f0_max,
            f0_backend=f0_backend,
            f0_failure=f0_failure,
            language=language,
            max_tokens=max_tokens,
            denoiser_ckpt=str(Path(denoiser_ckpt).resolve()) if denoiser_ckpt else None,
            denoise_chunk_seconds=denoise_chunk_seconds or None,
            max_seconds=max_seconds,
            cpu_actors=cpu_actors,
            gpu_actors=gpu_actors,
            gpus_per_actor=gpus_per_actor,
            batch_seconds=batch_seconds,
            w2v_backend=w2v_backend,
        )
    job = extract_job(config)
    _run(job, manifest_path, output, make_run_options(**kwargs))


@main.group()
def export() -> None:
    """Export job outputs to other layouts."""


@export.command("upstream")
@click.argument("output", type=str)
@click.option("--to", "to_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder for upstream's training layout.")
@click.option("--name", default="data", show_default=True, help="Prefix of the feature folders (<name>_16k, <name>_w2v, ...).")
@click.option("--test-count", type=click.IntRange(min=0), default=0, show_default=True, help="Samples (chosen by id hash) for the test_* filelists.")
def export_upstream_command(output: str, to_dir: Path, name: str, test_count: int) -> None:
    """Write an extract OUTPUT as upstream's *_w2v/*_f0/*_token .pt files and filelists (train_ttv_v1.py)."""
    from pipeline.export.upstream import export_upstream

    report = export_upstream(output, to_dir, name=name, test_count=test_count)
    click.echo(json.dumps(report, indent=2))
    click.echo(f"set data.train_filelist_path={report['train_filelist_path']} and data.test_filelist_path={report['test_filelist_path']} in ttv_v1/config.json")


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
@click.option("--batch-seconds", type=click.FloatRange(min=0.1), default=None, help="Output audio per model call (memory budget, ~90 MB per second at 48 kHz). Default: one window per call on CPU (fastest there), 10 s on GPU. Does not change results.")
@click.option("--channels", "channel_policy", type=click.Choice(["first", "mean"]), default="first", show_default=True)
@click.option("--max-seconds", type=float, default=3600.0, show_default=True, help="Reject inputs longer than this.")
@run_options
def upsample(input_spec: str, output: str, sample_rate: str, normalize: str, bits: str, checkpoint: str | None,
             actors: int, gpus_per_actor: float, cpus_per_actor: float, batch_seconds: float | None, channel_policy: str,
             max_seconds: float, **kwargs) -> None:
    """Upsample 16 kHz speech to 48/24 kHz FLAC with SpeechSR.

    INPUT is a Parquet manifest (any rate: resampled to 16 kHz first) or WebDataset tar shards: a
    directory, a glob or a brace pattern (quote it); non-audio members pass through unchanged.
    """
    from pipeline.upsample import input_manifest, upsample_job

    job = upsample_job(int(sample_rate), normalize=normalize, bits=int(bits), checkpoint=checkpoint, actors=actors,
                       gpus_per_actor=gpus_per_actor, cpus_per_actor=cpus_per_actor, batch_seconds=batch_seconds,
                       channel_policy=channel_policy, max_seconds=max_seconds)
    manifest_path = input_manifest(input_spec, output)
    _run(job, manifest_path, output, make_run_options(**kwargs))


@main.command()
@click.argument("output", callback=_check_path_or_uri)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def inspect(output: str, as_json: bool) -> None:
    """Show counts, hours, errors by type, shards, and whether OUTPUT is complete."""
    from pipeline.report.inspect import format_inspection, inspect_output

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
@click.option("--worst", type=click.IntRange(min=0), default=3, show_default=True, help="Worst samples shown per quality score (outputs of hsp score, or synthesize/augment --score).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def report(output: str, report_dir: Path, samples: int, seed: int, stats_samples: int, worst: int, progress: bool) -> None:
    """Write a visual report of OUTPUT (plots, errors, audio players) to a folder; open its index.html."""
    from pipeline.report.build import build_report

    if report_dir.suffix.lower() in (".html", ".htm"):
        raise click.BadParameter(f"the report is a folder (index.html + assets/); pass e.g. -o {report_dir.with_suffix('')}", param_hint="-o")
    result = build_report(output, report_dir, samples=samples, seed=seed, stats_samples=stats_samples, progress=progress, worst=worst)
    state = "PARTIAL output" if result.partial else "complete output"
    click.echo(
        f"wrote {result.path}: {result.samples_out} samples ({state}), {result.images} images, "
        f"{result.audio} audio files, {result.bytes / 1e6:.1f} MB"
    )


@main.command()
@click.option("-o", "--output", default="demo-out", show_default=True, help="Folder for the demo outputs.")
@click.option("--num-cpus", type=int, default=None)
def demo(output: str, num_cpus: int | None) -> None:
    """Run the pipeline on the bundled examples (local Ray): prepare, then upsample the shards to 48 kHz."""
    from pipeline.prepare import prepare_job
    from pipeline.stages.model_checks import WeightsUnavailableError
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
    except WeightsUnavailableError as exc:
        click.echo(
            f"skipping upsample (the prepare output above is complete): {exc}\n"
            "To run it: set HSP_WEIGHTS_DIR to a folder with speechsr48k/G_100000.pth and its config.json "
            "(the layout of the upstream repository), or allow the one-time download (sha256-verified, cached in "
            "$HSP_CACHE_DIR or ~/.cache/hierspeech-pipeline); then run `hsp demo` again.",
            err=True,
        )
        return
    _run(job, input_manifest(str(base / "prepared"), str(base / "upsampled48k")), str(base / "upsampled48k"), options)


def synthesis_options(function):
    """Checkpoints, per-row defaults, limits, gates and actors shared by `synthesize` and `augment`."""
    decorators = [
        click.option("--models", "models_file", type=click.Path(exists=True, dir_okay=False), default=None, help="models.yaml/json with synthesizer, ttv, denoiser, speechsr24k, speechsr48k, w2v_model (paths relative to it); explicit options win."),
        click.option("--synthesizer", type=click.Path(exists=True, dir_okay=False), default=None, help="hierspeechpp_v2_ckpt.pth (config.json beside)."),
        click.option("--ttv", type=click.Path(exists=True, dir_okay=False), default=None, help="ttv_lt960_ckpt.pth (config.json beside); TTS rows."),
        click.option("--denoiser", type=click.Path(exists=True, dir_okay=False), default=None, help="MP-SENet denoiser/g_best; needed when denoise_ratio > 0."),
        click.option("--speechsr", multiple=True, type=click.Path(exists=True, dir_okay=False), help="SpeechSR G_*.pth (24 or 48 kHz, config.json beside); repeatable."),
        click.option("--w2v-model", default=None, help="w2v hub id or folder (default facebook/mms-300m); VC rows."),
        click.option("--w2v-layer", type=click.IntRange(min=0), default=7, show_default=True),
        click.option("--f0-backend", type=click.Choice(["amfm", "fast"]), default=DEFAULT_F0_BACKEND, show_default=True, help=F0_BACKEND_HELP + " VC rows."),
        click.option("--noise-scale", type=click.FloatRange(0, 10), default=0.333, show_default=True, help="VC rows: synthesizer noise scale."),
        click.option("--noise-scale-ttv", type=click.FloatRange(0, 10), default=0.333, show_default=True),
        click.option("--noise-scale-vc", type=click.FloatRange(0, 10), default=0.333, show_default=True, help="TTS rows: synthesizer noise scale."),
        click.option("--noise-scale-w", type=click.FloatRange(0, 10), default=1.0, show_default=True),
        click.option("--length-scale", type=click.FloatRange(min=0.01), default=1.0, show_default=True),
        click.option("--denoise-ratio", type=click.FloatRange(0, 1), default=0.0, show_default=True),
        click.option("--output-sr", type=click.Choice(["16000", "24000", "48000"]), default="16000", show_default=True),
        click.option("--scale-norm", type=click.Choice(["max", "prompt"]), default="max", show_default=True, help="Output peak: 0.999 (max) or the prompt's peak, as upstream."),
        click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Base of per-row seeds (rows without 'seed')."),
        click.option("--min-prompt-seconds", type=click.FloatRange(min=0), default=1.0, show_default=True),
        click.option("--max-prompt-seconds", type=click.FloatRange(min=0.1), default=30.0, show_default=True),
        click.option("--max-source-seconds", type=click.FloatRange(min=0.1), default=60.0, show_default=True),
        click.option("--max-text-tokens", type=click.IntRange(min=1), default=200, show_default=True, help="Phoneme ids (before blanks); longer texts are error rows."),
        click.option("--language", default="en-us", show_default=True),
        click.option("--min-rms-dbfs", type=float, default=-60.0, show_default=True, help="Quality gate: near-silence."),
        click.option("--max-clipped-fraction", type=click.FloatRange(0, 1), default=0.001, show_default=True),
        click.option("--duration-ratio", nargs=2, type=float, default=(0.5, 2.0), show_default=True, help="Quality gate: output / expected duration range."),
        click.option("--drop-failed-gates", is_flag=True, help="Rows failing a gate go to the errors table instead of the shards."),
        click.option("--gpu-actors", type=click.IntRange(min=1), default=1, show_default=True),
        click.option("--gpus-per-actor", type=click.FloatRange(min=0), default=1.0, show_default=True),
        click.option("--cpu-actors", type=click.IntRange(min=1), default=2, show_default=True, help="YAAPT F0 actors (VC rows)."),
        click.option("--max-batch-items", type=click.IntRange(min=0), default=0, show_default=True, help="Rows per model call; 0: 1 on CPU (bit-reproducible reruns), 8 on CUDA."),
        synthesis_score_options,
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def _synthesize_config(mode, modes, kw):
    from pipeline.stages.synthesis_params import GateLimits, InputLimits, SynthesisDefaults
    from pipeline.synthesize import SynthesizeConfig, load_models_file

    files = load_models_file(kw.pop("models_file")) if kw.get("models_file") else {}
    kw.pop("models_file", None)
    synthesizer = kw.pop("synthesizer") or files.get("synthesizer")
    if not synthesizer:
        raise ConfigError("pass --synthesizer PATH (or --models models.yaml)")
    speechsr: dict[int, str] = {}
    for path in [*(files.get(k) for k in ("speechsr24k", "speechsr48k") if files.get(k)), *kw.pop("speechsr")]:
        from hierspeech.speechsr import SpeechSRConfig

        config_path = Path(path).with_name("config.json")
        try:
            config = SpeechSRConfig.from_json(config_path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"--speechsr {path}: cannot read {config_path} ({type(exc).__name__}: {exc}); the official config.json must sit beside the checkpoint") from exc
        speechsr[config.sampling_rate] = str(Path(path).resolve())
    absolute = lambda p: str(Path(p).resolve()) if p else None  # noqa: E731
    return SynthesizeConfig(
        synthesizer=absolute(synthesizer),
        mode=mode,
        modes=modes,
        ttv=absolute(kw.pop("ttv") or files.get("ttv")),
        denoiser=absolute(kw.pop("denoiser") or files.get("denoiser")),
        speechsr=speechsr,
        w2v_model=kw.pop("w2v_model") or files.get("w2v_model") or "facebook/mms-300m",
        w2v_layer=kw.pop("w2v_layer"),
        f0_backend=kw.pop("f0_backend"),
        defaults=SynthesisDefaults(
            noise_scale=kw.pop("noise_scale"), noise_scale_ttv=kw.pop("noise_scale_ttv"), noise_scale_vc=kw.pop("noise_scale_vc"),
            noise_scale_w=kw.pop("noise_scale_w"), length_scale=kw.pop("length_scale"), denoise_ratio=kw.pop("denoise_ratio"),
            output_sr=int(kw.pop("output_sr")), seed=kw.pop("seed"), scale_norm=kw.pop("scale_norm"),
        ),
        limits=InputLimits(
            min_prompt_seconds=kw.pop("min_prompt_seconds"), max_prompt_seconds=kw.pop("max_prompt_seconds"),
            max_source_seconds=kw.pop("max_source_seconds"), max_text_tokens=kw.pop("max_text_tokens"), language=kw.pop("language"),
        ),
        gates=GateLimits(
            min_rms_dbfs=kw.pop("min_rms_dbfs"), max_clipped_fraction=kw.pop("max_clipped_fraction"),
            min_duration_ratio=kw["duration_ratio"][0], max_duration_ratio=kw.pop("duration_ratio")[1],
        ),
        drop_failed_gates=kw.pop("drop_failed_gates"),
        gpu_actors=kw.pop("gpu_actors"),
        gpus_per_actor=kw.pop("gpus_per_actor"),
        cpu_actors=kw.pop("cpu_actors"),
        max_batch_items=kw.pop("max_batch_items"),
        scoring=pop_scoring(kw, kw.pop("score_metrics")),
        score_gates=pop_gates(kw),
    )


def _synthesize_run(mode, modes, manifest_path, output, kw) -> None:
    from pipeline.synthesize import synthesize_job

    config = _synthesize_config(mode, modes, kw)
    job = synthesize_job(config)
    _run(job, manifest_path, output, make_run_options(**kw))


@main.group()
def synthesize() -> None:
    """Zero-shot voice conversion and TTS with HierSpeech++ (see docs/synthesize.md)."""


@synthesize.command("vc")
@click.argument("manifest_path", metavar="MANIFEST", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", required=True)
@synthesis_options
@run_options
def synthesize_vc(manifest_path: Path, output: str, **kw) -> None:
    """Rows id, audio (source), target_audio (voice prompt) [+ noise_scale, denoise_ratio, seed, output_sr]."""
    _synthesize_run("vc", ("vc",), manifest_path, output, kw)


@synthesize.command("tts")
@click.argument("manifest_path", metavar="MANIFEST", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", required=True)
@synthesis_options
@run_options
def synthesize_tts(manifest_path: Path, output: str, **kw) -> None:
    """Rows id, text, prompt_audio [+ noise_scale_ttv, noise_scale_vc, noise_scale_w, length_scale, denoise_ratio, seed, output_sr]."""
    _synthesize_run("tts", ("tts",), manifest_path, output, kw)


@main.command()
@click.argument("manifest_path", metavar="MANIFEST", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", required=True, help="Output folder (local): plan.parquet is written there too.")
@click.option("--variants", type=click.IntRange(min=1), default=1, show_default=True, help="Variants per utterance and mode.")
@click.option("--mode", "augment_mode", type=click.Choice(["vc", "tts", "both"]), default="vc", show_default=True)
@click.option("--prompts", "prompts_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None, help="Prompt pool manifest (id, audio, speaker); default: the manifest itself.")
@click.option("--prompt-sampling", type=click.Choice(PROMPT_SAMPLING), default=AugmentOptions.prompt_sampling, show_default=True, help="uniform-row: every prompt utterance equally likely (speakers with many utterances give most voices); uniform-speaker: every other speaker equally likely, then one of its utterances.")
@synthesis_options
@run_options
def augment(manifest_path: Path, output: str, variants: int, augment_mode: str, prompts_path: Path | None, prompt_sampling: str, **kw) -> None:
    """K synthetic variants per ASR utterance (id, audio, text, speaker), voices from other speakers."""
    from dataclasses import replace

    from pipeline.augment import plan_for_output, prompt_speaker_summary
    from pipeline.io.manifest import ManifestError, read_manifest, validate_table
    from pipeline.jobs_registry import job_columns
    from pipeline.synthesize import augment_plan, synthesize_job

    table = read_manifest(manifest_path)
    report = validate_table(table, job_columns("augment"), base_dir=manifest_path.resolve().parent, check_files=False)
    if not report.ok:
        raise ManifestError(str(manifest_path), report)
    prompts = read_manifest(prompts_path) if prompts_path else None
    options = AugmentOptions(variants=variants, mode=augment_mode, seed=kw["seed"], prompt_sampling=prompt_sampling)
    modes = ("vc", "tts") if augment_mode == "both" else (augment_mode,)
    job = synthesize_job(_synthesize_config(None, modes, kw))  # checkpoints and options checked before the plan is written
    plan_path, plan, version, kept = plan_for_output(output, lambda version: augment_plan(
        table, manifest_path.resolve().parent, replace(options, plan_version=version), prompts, prompts_path.resolve().parent if prompts_path else None))
    click.echo(f"{'kept' if kept else 'wrote'} {plan_path} (plan version {version}): {plan.num_rows} rows ({variants} variant(s) x {augment_mode} for {table.num_rows} utterances, {prompt_sampling} prompts)", err=True)
    job.summary_extra = {"prompt_speakers": prompt_speaker_summary(plan), "prompt_sampling": prompt_sampling, "plan_version": version}
    _run(job, plan_path, output, make_run_options(**kw))


def _run(job, manifest_path, output, options: RunOptions) -> None:
    from pipeline.engine.runner import run_job

    summary = run_job(job, manifest_path, output, options)
    if not summary["complete"]:
        raise SystemExit(3)



def _register_commands() -> None:
    """Commands defined in their own modules, registered explicitly (not by import side effects)."""
    from pipeline.cli.export_formats import COMMANDS as EXPORT_COMMANDS
    from pipeline.cli.score import score

    main.add_command(score)
    for command in EXPORT_COMMANDS:
        export.add_command(command)


_register_commands()
