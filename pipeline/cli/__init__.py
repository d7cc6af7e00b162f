"""The `hsp` command line: the root group, its error mapping, and every command, registered explicitly.

Each command lives in its own module (pipeline/cli/<group>.py), parses its options (defaults read
from the job's config dataclass) and calls one library function. A `PipelineError` raised anywhere
below is printed here, once, as one line with its class's exit code.
"""

from __future__ import annotations

import logging

import click

from pipeline.cli.demo import EXAMPLES_DIR, demo
from pipeline.cli.export import export
from pipeline.cli.extract import extract
from pipeline.cli.inspect import inspect
from pipeline.cli.manifest import manifest
from pipeline.cli.prepare import prepare
from pipeline.cli.probe import probe
from pipeline.cli.report import report
from pipeline.cli.score import score
from pipeline.cli.synthesize import augment, synthesize
from pipeline.cli.upsample import upsample
from pipeline.errors import PipelineError

__all__ = ["EXAMPLES_DIR", "main"]


class _Hsp(click.Group):
    """The root group: a `PipelineError` raised anywhere below is printed as its one line (click's
    "Error: ..."), with the error class's exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PipelineError as exc:
            error = click.ClickException(" ".join(str(exc).split()) or type(exc).__name__)
            error.exit_code = exc.exit_code
            raise error from exc


@click.group(cls=_Hsp)
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.version_option(package_name="hierspeech-pipeline", message="%(prog)s %(version)s")
def main(verbose: int) -> None:
    """hierspeech-pipeline: HierSpeech++ features, synthesis and upsampling over Parquet manifests with Ray."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


for _command in (manifest, prepare, extract, upsample, synthesize, augment, score, export, inspect, report, demo, probe):
    main.add_command(_command)
