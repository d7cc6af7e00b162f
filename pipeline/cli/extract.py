"""`hsp extract`: options of `ExtractConfig`, then the extract job."""

from __future__ import annotations

from pathlib import Path

import click

from hierspeech.f0 import BACKEND_HELP as F0_BACKEND_HELP
from pipeline.cli.options import default, manifest_argument, output_option, run_job_command, run_options
from pipeline.engine.job import RunOptions
from pipeline.extract import EXTRACT, FEATURES, ExtractConfig


def _features(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    return tuple(f.strip() for f in value.split(",") if f.strip())


def _absolute(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return str(Path(value).resolve()) if value else None


def _zero_is_none(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    return value or None


def _d(name: str):
    return default(ExtractConfig, name)


@click.command()
@manifest_argument
@output_option
@click.option("--features", default=",".join(_d("features")), callback=_features, show_default=True, help=f"Comma-separated subset of {','.join(FEATURES)}.")
@click.option("--w2v-model", default=_d("w2v_model"), show_default=True, help="Hub id or local directory (HF_HUB_OFFLINE=1 is honoured).")
@click.option("--w2v-layer", type=click.IntRange(min=0), default=_d("w2v_layer"), show_default=True, help="hidden_states index kept.")
@click.option("--w2v-dtype", type=click.Choice(["float16", "float32"]), default=_d("w2v_dtype"), show_default=True, help="Storage dtype of w2v.npy.")
@click.option("--f0-max", type=float, default=_d("f0_max"), help="YAAPT f0_max (default 400 Hz as extract_f0.py; upstream's VC inference uses 1100).")
@click.option("--f0-backend", type=click.Choice(["amfm", "fast"]), default=_d("f0_backend"), show_default=True, help=F0_BACKEND_HELP)
@click.option("--f0-failure", type=click.Choice(["error", "zeros"]), default=_d("f0_failure"), show_default=True, help="error: the row goes to the errors table; zeros: store zeros and flag f0.failed in the json and index.")
@click.option("--language", default=_d("language"), show_default=True, help="espeak voice for rows without a 'language' value.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=_d("max_tokens"), show_default=True, help="Longer texts (ids before blanks) are error rows.")
@click.option("--denoiser-ckpt", type=click.Path(exists=True, dir_okay=False), default=_d("denoiser_ckpt"), callback=_absolute, help="MP-SENet checkpoint (denoiser/g_best with config.json beside) for the denoise feature.")
@click.option("--denoise-chunk-seconds", type=float, default=_d("denoise_chunk_seconds"), callback=_zero_is_none, show_default=True, help="Longer inputs are denoised in overlapping chunks (0: never chunk).")
@click.option("--max-seconds", type=float, default=_d("max_seconds"), show_default=True, help="Reject files longer than this.")
@click.option("--cpu-actors", type=click.IntRange(min=1), default=_d("cpu_actors"), show_default=True, help="F0 + mel actor pool size (YAAPT is the slow stage: about one per core).")
@click.option("--gpu-actors", type=click.IntRange(min=1), default=_d("gpu_actors"), show_default=True, help="w2v/denoise actor pool size.")
@click.option("--gpus-per-actor", type=click.FloatRange(min=0), default=_d("gpus_per_actor"), show_default=True, help="GPUs per model actor (0.5 packs two per GPU).")
@click.option("--batch-seconds", type=click.FloatRange(min=1), default=_d("batch_seconds"), show_default=True, help="Padded audio seconds per w2v forward (length-bucketed batches).")
@click.option("--w2v-backend", type=click.Choice(["auto", "packed", "transformers"]), default=_d("w2v_backend"), show_default=True, help="packed: our CPU float32 path (~1.4x the transformers forward); transformers: padded batches (GPU); auto: packed on CPU.")
@run_options
def extract(manifest_path: str, output: str, run: RunOptions, **options) -> None:
    """HierSpeech++ training features (w2v, F0, tokens, mel, denoised audio) for every row."""
    run_job_command(EXTRACT.name, ExtractConfig(**options), manifest_path, output, run)
