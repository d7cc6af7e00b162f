"""`hsp export upstream|shar|nemo|hf|lhotse`: a job output in another layout, each one library call.

The training formats read their defaults from the export options dataclasses
(pipeline/export/options.py), print the `ExportResult` as JSON, and export only samples that passed
the quality gates unless `--include-failed`.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from pipeline.cli.options import default, parameter_default
from pipeline.export.options import (
    ExportOptions,
    HuggingFaceOptions,
    LhotseManifestOptions,
    NemoOptions,
    SharOptions,
)
from pipeline.export.upstream import export_upstream


@click.group()
def export() -> None:
    """Export job outputs to other layouts."""


@export.command("upstream")
@click.argument("output", type=str)
@click.option("--to", "to_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder for upstream's training layout.")
@click.option("--name", default=parameter_default(export_upstream, "name"), show_default=True, help="Prefix of the feature folders (<name>_16k, <name>_w2v, ...).")
@click.option("--test-count", type=click.IntRange(min=0), default=parameter_default(export_upstream, "test_count"), show_default=True, help="Samples (chosen by id hash) for the test_* filelists.")
def export_upstream_command(output: str, to_dir: Path, name: str, test_count: int) -> None:
    """Write an extract OUTPUT as upstream's *_w2v/*_f0/*_token .pt files and filelists (train_ttv_v1.py)."""
    report = export_upstream(output, to_dir, name=name, test_count=test_count)
    click.echo(json.dumps(report, indent=2))
    click.echo(f"set data.train_filelist_path={report['train_filelist_path']} and data.test_filelist_path={report['test_filelist_path']} in ttv_v1/config.json")


def _common(function):
    """OUTPUT, --to, --include-failed, --audio-member, --progress: what every export takes."""
    decorators = [
        click.argument("output", type=str),
        click.option("--to", "to_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Destination folder (files are committed by rename: a re-run gives the same files)."),
        click.option("--include-failed", is_flag=True, default=default(ExportOptions, "include_failed"), help="Also export samples that failed a quality gate (gates_passed false)."),
        click.option("--audio-member", default=default(ExportOptions, "audio_member"), show_default=True, help="Tar member with the audio (e.g. denoised.flac of an extract output)."),
        click.option("--progress/--no-progress", default=True, show_default=True),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def _echo(result) -> None:
    click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False, default=str))


@export.command("shar")
@_common
@click.option("--shard-size", type=click.IntRange(min=1), default=default(SharOptions, "shard_size"), show_default=True, help="Cuts per cuts.NNNNNN.jsonl.gz / recording.NNNNNN.tar pair.")
@click.option("--audio-format", type=click.Choice(["flac", "wav"]), default=default(SharOptions, "audio_format"), show_default=True, help="How lhotse's Shar writer stores the audio.")
def export_shar_command(output: str, to_dir: Path, include_failed: bool, audio_member: str, progress: bool, shard_size: int, audio_format: str) -> None:
    """Lhotse Shar of OUTPUT (read back with lhotse.CutSet.from_shar(in_dir=DIR)), written by lhotse's SharWriter."""
    from pipeline.export.shar import export_shar

    options = SharOptions(include_failed=include_failed, audio_member=audio_member, shard_size=shard_size, audio_format=audio_format)
    _echo(export_shar(output, to_dir, options, progress=progress))


@export.command("nemo")
@_common
@click.option("--tarred", is_flag=True, default=default(NemoOptions, "tarred"), help="NeMo's tarred layout (audio_<n>.tar + tarred_audio_manifest.json), members copied without decoding.")
@click.option("--num-shards", type=click.IntRange(min=1), default=default(NemoOptions, "num_shards"), show_default=True, help="Tars of the tarred layout (a multiple of the GPUs that train on it).")
def export_nemo_command(output: str, to_dir: Path, include_failed: bool, audio_member: str, progress: bool, tarred: bool, num_shards: int) -> None:
    """NeMo ASR manifest of OUTPUT: manifest.json over audio/ files, or the tarred layout (--tarred)."""
    from pipeline.export.nemo import export_nemo

    if num_shards != default(NemoOptions, "num_shards") and not tarred:
        raise click.UsageError("--num-shards applies to --tarred only")
    options = NemoOptions(include_failed=include_failed, audio_member=audio_member, tarred=tarred, num_shards=num_shards)
    _echo(export_nemo(output, to_dir, options, progress=progress))


@export.command("hf")
@_common
@click.option("--max-shard-bytes", type=click.IntRange(min=1), default=default(HuggingFaceOptions, "max_shard_bytes"), show_default=True, help="Largest Parquet file (audio + metadata).")
@click.option("--split", default=default(HuggingFaceOptions, "split"), show_default=True, help="Split name: files are <split>-NNNNN-of-NNNNN.parquet.")
@click.option("--rows-per-group", type=click.IntRange(min=1), default=default(HuggingFaceOptions, "rows_per_group"), show_default=True, help="Parquet row group size (what a streaming reader holds at once).")
def export_hf_command(output: str, to_dir: Path, include_failed: bool, audio_member: str, progress: bool, max_shard_bytes: int, split: str, rows_per_group: int) -> None:
    """Hugging Face Parquet of OUTPUT (audio column of the datasets Audio feature), written by datasets."""
    from pipeline.export.huggingface import export_huggingface

    options = HuggingFaceOptions(include_failed=include_failed, audio_member=audio_member, max_shard_bytes=max_shard_bytes, split=split, rows_per_group=rows_per_group)
    _echo(export_huggingface(output, to_dir, options, progress=progress))


@export.command("lhotse")
@_common
def export_lhotse_command(output: str, to_dir: Path, include_failed: bool, audio_member: str, progress: bool) -> None:
    """Lhotse recordings/supervisions/cuts manifests of OUTPUT over audio/ files, written by lhotse."""
    from pipeline.export.lhotse_manifest import export_lhotse_manifest

    options = LhotseManifestOptions(include_failed=include_failed, audio_member=audio_member)
    _echo(export_lhotse_manifest(output, to_dir, options, progress=progress))

