"""`hsp export upstream|nemo|lhotse`: a job output in another layout, each one library call."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click

from pipeline.cli.options import parameter_default
from pipeline.export.corpus import export_lhotse, export_nemo
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


def _corpus_command(name: str, function: Callable[..., dict], to: click.Option, doc: str) -> click.Command:
    """`hsp export nemo|lhotse`: the same arguments, one library function each."""

    def command(output: str, to_path: Path, include_failed: bool) -> None:
        click.echo(json.dumps(function(output, to_path, include_failed=include_failed), indent=2))

    command.__doc__ = doc
    command = click.option("--include-failed", is_flag=True, help="Also export samples that failed a quality gate.")(command)
    command = to(command)
    command = click.argument("output", type=str)(command)
    return export.command(name)(command)


export_nemo_command = _corpus_command(
    "nemo", export_nemo,
    click.option("--to", "to_path", required=True, type=click.Path(dir_okay=False, path_type=Path), help="JSONL manifest to write; audio goes to <stem>_audio/ beside it."),
    "NeMo ASR manifest (audio_filepath, duration, text) of a synthesize/augment OUTPUT.",
)
export_lhotse_command = _corpus_command(
    "lhotse", export_lhotse,
    click.option("--to", "to_path", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder for recordings/supervisions jsonl.gz and audio/."),
    "Lhotse recordings + supervisions manifests of a synthesize/augment OUTPUT.",
)
