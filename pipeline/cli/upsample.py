"""`hsp upsample`: options of `UpsampleConfig`, then the upsample job over a manifest or tar shards."""

from __future__ import annotations

import click

from pipeline.cli.options import default, int_choice, output_option, run_job_command, run_options
from pipeline.engine.job import RunOptions
from pipeline.io.audio import CHANNEL_POLICIES, FLAC_SUBTYPES
from pipeline.io.tar_source import is_tar_input
from pipeline.stages.normalize import NORMALIZE_MODES
from pipeline.upsample import LAYOUTS, SPEECHSR_VARIANTS, UPSAMPLE, UpsampleConfig


def _d(name: str):
    return default(UpsampleConfig, name)


@click.command()
@click.argument("input_spec", metavar="INPUT")
@output_option
@click.option("--sr", "sample_rate", type=int_choice(sorted(SPEECHSR_VARIANTS, reverse=True)), default=str(_d("sample_rate")), show_default=True, help="Output rate: the SpeechSR 48k or 24k model.")
@click.option("--normalize", type=click.Choice(NORMALIZE_MODES), default=_d("normalize"), show_default=True, help="source: keep the input's peak level; peak: peak 0.999 as upstream; none: raw model output.")
@click.option("--bits", type=int_choice(sorted(FLAC_SUBTYPES)), default=str(_d("bits")), show_default=True)
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), default=_d("checkpoint"), help="SpeechSR G_*.pth (config.json beside it); default: $HSP_WEIGHTS_DIR, else a verified download.")
@click.option("--actors", type=click.IntRange(min=1), default=_d("actors"), show_default=True, help="SpeechSR actors (model copies).")
@click.option("--gpus-per-actor", type=click.FloatRange(min=0.0), default=_d("gpus_per_actor"), show_default=True, help="Fractions share a GPU (e.g. 0.25: four actors per GPU).")
@click.option("--cpus-per-actor", type=click.FloatRange(min=0.0, min_open=True), default=_d("cpus_per_actor"), show_default=True)
@click.option("--batch-seconds", type=click.FloatRange(min=0.1), default=_d("batch_seconds"), help="Output audio per model call (memory budget, ~90 MB per second at 48 kHz). Default: one window per call on CPU (fastest there), 10 s on GPU. Does not change results.")
@click.option("--channels", "channel_policy", type=click.Choice(CHANNEL_POLICIES), default=_d("channel_policy"), show_default=True)
@click.option("--max-seconds", type=float, default=_d("max_seconds"), show_default=True, help="Reject inputs longer than this.")
@click.option("--layout", type=click.Choice(LAYOUTS), default=_d("layout"), show_default=True, help="shards: our WebDataset shards (keys from ids); mirror (tar input): one output tar per input tar, same names, keys, order and companions, audio replaced in place.")
@click.option("--audio-ext", type=click.Choice(["flac"]), default=_d("audio_ext"), help="--layout mirror: write upsampled members as FLAC (default: keep each member's extension and format).")
@click.option("--audio-member", default=_d("audio_member"), metavar="EXT", help="--layout mirror: upsample only this member of each sample (e.g. wav); default: every audio member.")
@run_options
def upsample(input_spec: str, output: str, run: RunOptions, **options) -> None:
    """Upsample 16 kHz speech to 48/24 kHz with SpeechSR.

    INPUT is a Parquet manifest (any rate: resampled to 16 kHz first) or WebDataset tar shards: a
    directory, a glob, a brace pattern (quote it) or a list file (.txt) of tar paths/URLs; non-audio
    members pass through unchanged.
    """
    if options["layout"] == "mirror" and not is_tar_input(input_spec):
        raise click.UsageError(f"--layout mirror mirrors tar shards, and INPUT {input_spec!r} is a manifest; "
                               "pass tar shards (folder, glob, brace pattern or list file) or drop --layout mirror")
    run_job_command(UPSAMPLE.name, UpsampleConfig(**options), input_spec, output, run)
