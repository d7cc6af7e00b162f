"""`hsp export shar|nemo|hf|lhotse OUTPUT --to DIR`: thin commands over `pipeline.export`.

Each command builds its format's options dataclass (the one source of the defaults, read here
with `_default`) and prints the `ExportResult` as JSON. Only samples that passed the quality
gates are exported unless `--include-failed`.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import click

from pipeline.export.options import (
    ExportOptions,
    HuggingFaceOptions,
    LhotseManifestOptions,
    NemoOptions,
    SharOptions,
)


def _default(options: type, name: str):
    return next(f.default for f in fields(options) if f.name == name)


def _common(function):
    """OUTPUT, --to, --include-failed, --audio-member, --progress: what every export takes."""
    decorators = [
        click.argument("output", type=str),
        click.option("--to", "to_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Destination folder (files are committed by rename: a re-run gives the same files)."),
        click.option("--include-failed", is_flag=True, default=_default(ExportOptions, "include_failed"), help="Also export samples that failed a quality gate (gates_passed false)."),
        click.option("--audio-member", default=_default(ExportOptions, "audio_member"), show_default=True, help="Tar member with the audio (e.g. denoised.flac of an extract output)."),
        click.option("--progress/--no-progress", default=True, show_default=True),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def _echo(result) -> None:
    click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False, default=str))


@click.command("shar")
@_common
@click.option("--shard-size", type=click.IntRange(min=1), default=_default(SharOptions, "shard_size"), show_default=True, help="Cuts per cuts.NNNNNN.jsonl.gz / recording.NNNNNN.tar pair.")
@click.option("--audio-format", type=click.Choice(["flac", "wav"]), default=_default(SharOptions, "audio_format"), show_default=True, help="How lhotse's Shar writer stores the audio.")
def export_shar_command(output: str, to_dir: Path, include_failed: bool, audio_member: str, progress: bool, shard_size: int, audio_format: str) -> None:
    """Lhotse Shar of OUTPUT (read back with lhotse.CutSet.from_shar(in_dir=DIR)), written by lhotse's SharWriter."""
    from pipeline.export.shar import export_shar

    options = SharOptions(include_failed=include_failed, audio_member=audio_member, shard_size=shard_size, audio_format=audio_format)
    _echo(export_shar(output, to_dir, options, progress=progress))


@click.command("nemo")
@_common
@click.option("--tarred", is_flag=True, default=_default(NemoOptions, "tarred"), help="NeMo's tarred layout (audio_<n>.tar + tarred_audio_manifest.json), members copied without decoding.")
@click.option("--num-shards", type=click.IntRange(min=1), default=_default(NemoOptions, "num_shards"), show_default=True, help="Tars of the tarred layout (a multiple of the GPUs that train on it).")
def export_nemo_command(output: str, to_dir: Path, include_failed: bool, audio_member: str, progress: bool, tarred: bool, num_shards: int) -> None:
    """NeMo ASR manifest of OUTPUT: manifest.json over audio/ files, or the tarred layout (--tarred)."""
    from pipeline.export.nemo import export_nemo

    if num_shards != _default(NemoOptions, "num_shards") and not tarred:
        raise click.UsageError("--num-shards applies to --tarred only")
    options = NemoOptions(include_failed=include_failed, audio_member=audio_member, tarred=tarred, num_shards=num_shards)
    _echo(export_nemo(output, to_dir, options, progress=progress))


@click.command("hf")
@_common
@click.option("--max-shard-bytes", type=click.IntRange(min=1), default=_default(HuggingFaceOptions, "max_shard_bytes"), show_default=True, help="Largest Parquet file (audio + metadata).")
@click.option("--split", default=_default(HuggingFaceOptions, "split"), show_default=True, help="Split name: files are <split>-NNNNN-of-NNNNN.parquet.")
@click.option("--rows-per-group", type=click.IntRange(min=1), default=_default(HuggingFaceOptions, "rows_per_group"), show_default=True, help="Parquet row group size (what a streaming reader holds at once).")
def export_hf_command(output: str, to_dir: Path, include_failed: bool, audio_member: str, progress: bool, max_shard_bytes: int, split: str, rows_per_group: int) -> None:
    """Hugging Face Parquet of OUTPUT (audio column of the datasets Audio feature), written by datasets."""
    from pipeline.export.huggingface import export_huggingface

    options = HuggingFaceOptions(include_failed=include_failed, audio_member=audio_member, max_shard_bytes=max_shard_bytes, split=split, rows_per_group=rows_per_group)
    _echo(export_huggingface(output, to_dir, options, progress=progress))


@click.command("lhotse")
@_common
def export_lhotse_command(output: str, to_dir: Path, include_failed: bool, audio_member: str, progress: bool) -> None:
    """Lhotse recordings/supervisions/cuts manifests of OUTPUT over audio/ files, written by lhotse."""
    from pipeline.export.lhotse_manifest import export_lhotse_manifest

    options = LhotseManifestOptions(include_failed=include_failed, audio_member=audio_member)
    _echo(export_lhotse_manifest(output, to_dir, options, progress=progress))


COMMANDS = (export_shar_command, export_nemo_command, export_hf_command, export_lhotse_command)
