"""`hsp inspect`: a job output's counts, hours, errors and shards, recomputed from what is on disk."""

from __future__ import annotations

import json

import click

from pipeline.cli.options import check_path_or_uri


@click.command()
@click.argument("output", callback=check_path_or_uri)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def inspect(output: str, as_json: bool) -> None:
    """Show counts, hours, errors by type, shards, and whether OUTPUT is complete."""
    from pipeline.report.inspect import format_inspection, inspect_output

    result = inspect_output(output)
    click.echo(json.dumps(result, indent=2, default=str) if as_json else format_inspection(result))
    if not result["summary"]["complete"]:
        raise SystemExit(3)
