"""`hsp synthesize vc|tts` and `hsp augment`: the synthesis options (defaults from the synthesis
dataclasses), then the synthesis or augment job."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from hierspeech.f0 import BACKEND_HELP as F0_BACKEND_HELP
from pipeline.augment import AUGMENT, AUGMENT_MODES, PROMPT_SAMPLING, AugmentConfig, AugmentOptions
from pipeline.cli.options import (
    check_path_or_uri,
    default,
    int_choice,
    manifest_argument,
    output_option,
    run_job_command,
    run_options,
)
from pipeline.cli.score_options import synthesis_score_options
from pipeline.engine.job import JobSpec, RunOptions
from pipeline.stages.synthesis_params import GateLimits, InputLimits, SynthesisDefaults
from pipeline.synthesize import (
    OUTPUT_RATES,
    SYNTHESIZE_TTS,
    SYNTHESIZE_VC,
    SynthesizeConfig,
    synthesize_config,
)

NOISE_SCALE = click.FloatRange(0, 10)


def synthesis_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Checkpoints, per-row defaults, limits, gates and actors shared by `synthesize` and `augment`."""
    row, limits, gates, job = SynthesisDefaults, InputLimits, GateLimits, SynthesizeConfig
    decorators = [
        click.option("--models", "models_file", type=click.Path(exists=True, dir_okay=False), default=None, help="models.yaml/json with synthesizer, ttv, denoiser, speechsr24k, speechsr48k, w2v_model (paths relative to it); explicit options win."),
        click.option("--synthesizer", type=click.Path(exists=True, dir_okay=False), default=None, help="hierspeechpp_v2_ckpt.pth (config.json beside)."),
        click.option("--ttv", type=click.Path(exists=True, dir_okay=False), default=None, help="ttv_lt960_ckpt.pth (config.json beside); TTS rows."),
        click.option("--denoiser", type=click.Path(exists=True, dir_okay=False), default=None, help="MP-SENet denoiser/g_best; needed when denoise_ratio > 0."),
        click.option("--speechsr", multiple=True, type=click.Path(exists=True, dir_okay=False), help="SpeechSR G_*.pth (24 or 48 kHz, config.json beside); repeatable."),
        click.option("--w2v-model", default=None, help=f"w2v hub id or folder (default {default(job, 'w2v_model')}, or the models file's); VC rows."),
        click.option("--w2v-layer", type=click.IntRange(min=0), default=default(job, "w2v_layer"), show_default=True),
        click.option("--f0-backend", type=click.Choice(["amfm", "fast"]), default=default(job, "f0_backend"), show_default=True, help=F0_BACKEND_HELP + " VC rows."),
        click.option("--noise-scale", type=NOISE_SCALE, default=default(row, "noise_scale"), show_default=True, help="VC rows: synthesizer noise scale."),
        click.option("--noise-scale-ttv", type=NOISE_SCALE, default=default(row, "noise_scale_ttv"), show_default=True),
        click.option("--noise-scale-vc", type=NOISE_SCALE, default=default(row, "noise_scale_vc"), show_default=True, help="TTS rows: synthesizer noise scale."),
        click.option("--noise-scale-w", type=NOISE_SCALE, default=default(row, "noise_scale_w"), show_default=True),
        click.option("--length-scale", type=click.FloatRange(min=0.01), default=default(row, "length_scale"), show_default=True),
        click.option("--denoise-ratio", type=click.FloatRange(0, 1), default=default(row, "denoise_ratio"), show_default=True),
        click.option("--output-sr", type=int_choice(OUTPUT_RATES), default=str(default(row, "output_sr")), show_default=True),
        click.option("--scale-norm", type=click.Choice(["max", "prompt"]), default=default(row, "scale_norm"), show_default=True, help="Output peak: 0.999 (max) or the prompt's peak, as upstream."),
        click.option("--seed", type=click.IntRange(min=0), default=default(row, "seed"), show_default=True, help="Base of per-row seeds (rows without 'seed')."),
        click.option("--min-prompt-seconds", type=click.FloatRange(min=0), default=default(limits, "min_prompt_seconds"), show_default=True),
        click.option("--max-prompt-seconds", type=click.FloatRange(min=0.1), default=default(limits, "max_prompt_seconds"), show_default=True),
        click.option("--max-source-seconds", type=click.FloatRange(min=0.1), default=default(limits, "max_source_seconds"), show_default=True),
        click.option("--max-text-tokens", type=click.IntRange(min=1), default=default(limits, "max_text_tokens"), show_default=True, help="Phoneme ids (before blanks); longer texts are error rows."),
        click.option("--language", default=default(limits, "language"), show_default=True),
        click.option("--min-rms-dbfs", type=float, default=default(gates, "min_rms_dbfs"), show_default=True, help="Quality gate: near-silence."),
        click.option("--max-clipped-fraction", type=click.FloatRange(0, 1), default=default(gates, "max_clipped_fraction"), show_default=True),
        click.option("--duration-ratio", nargs=2, type=float, default=(default(gates, "min_duration_ratio"), default(gates, "max_duration_ratio")), show_default=True, help="Quality gate: output / expected duration range."),
        click.option("--drop-failed-gates", is_flag=True, default=default(job, "drop_failed_gates"), help="Rows failing a gate go to the errors table instead of the shards."),
        click.option("--gpu-actors", type=click.IntRange(min=1), default=default(job, "gpu_actors"), show_default=True),
        click.option("--gpus-per-actor", type=click.FloatRange(min=0), default=default(job, "gpus_per_actor"), show_default=True),
        click.option("--cpu-actors", type=click.IntRange(min=1), default=default(job, "cpu_actors"), show_default=True, help="YAAPT F0 actors (VC rows)."),
        click.option("--max-batch-items", type=click.IntRange(min=0), default=default(job, "max_batch_items"), show_default=True, help="Rows per model call; 0: 1 on CPU (bit-reproducible reruns), 8 on CUDA."),
        synthesis_score_options,
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


@click.group()
def synthesize() -> None:
    """Zero-shot voice conversion and TTS with HierSpeech++ (see docs/synthesize.md)."""


def _synthesize_command(spec: JobSpec, mode: str, rows: str) -> click.Command:
    """`hsp synthesize MODE`: rows of that mode only (the augment plan mixes them)."""

    def command(manifest_path: Path, output: str, run: RunOptions, **options) -> None:
        run_job_command(spec.name, synthesize_config(mode, (mode,), **options), str(manifest_path), output, run)

    command.__doc__ = rows
    for decorator in reversed((manifest_argument, output_option, synthesis_options, run_options)):
        command = decorator(command)
    return synthesize.command(mode)(command)


synthesize_vc = _synthesize_command(
    SYNTHESIZE_VC, "vc", "Rows id, audio (source), target_audio (voice prompt) [+ noise_scale, denoise_ratio, seed, output_sr].")
synthesize_tts = _synthesize_command(
    SYNTHESIZE_TTS, "tts", "Rows id, text, prompt_audio [+ noise_scale_ttv, noise_scale_vc, noise_scale_w, length_scale, "
    "denoise_ratio, seed, output_sr].")


@click.command()
@manifest_argument
@click.option("-o", "--output", required=True, help="Output folder (local): plan.parquet is written there too.")
@click.option("--variants", type=click.IntRange(min=1), default=default(AugmentOptions, "variants"), show_default=True, help="Variants per utterance and mode.")
@click.option("--mode", "augment_mode", type=click.Choice(sorted(AUGMENT_MODES)), default=default(AugmentOptions, "mode"), show_default=True)
@click.option("--prompts", "prompts_path", callback=check_path_or_uri, default=default(AugmentConfig, "prompts"), help="Prompt pool manifest (id, audio, speaker); default: the manifest itself.")
@click.option("--prompt-sampling", type=click.Choice(PROMPT_SAMPLING), default=default(AugmentOptions, "prompt_sampling"), show_default=True, help="uniform-row: every prompt utterance equally likely (speakers with many utterances give most voices); uniform-speaker: every other speaker equally likely, then one of its utterances. The summary shows the prompt-speaker histogram.")
@synthesis_options
@run_options
def augment(manifest_path: Path, output: str, variants: int, augment_mode: str, prompts_path: str | None, prompt_sampling: str,
            run: RunOptions, **options) -> None:
    """K synthetic variants per ASR utterance (id, audio, text, speaker), voices from other speakers."""
    config = AugmentConfig(
        synthesis=synthesize_config(None, AUGMENT_MODES[augment_mode], **options),
        plan=AugmentOptions(variants=variants, mode=augment_mode, seed=options["seed"], prompt_sampling=prompt_sampling),
        prompts=prompts_path,
    )
    run_job_command(AUGMENT.name, config, str(manifest_path), output, run)
