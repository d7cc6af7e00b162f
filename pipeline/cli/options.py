"""What every job command shares: defaults read from the config dataclasses, run options, the run itself.

A command's options are named after the fields of its job's config dataclass and take their
defaults from it (`default`), so a default lives in one place and `hsp X --help` shows it. The
options every job has (where to run, shard sizes, strictness, per-stage resources) become one
`RunOptions` (`run_options`), whose dataclass is their source too.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from pipeline.engine.compute import DEVICE_POLICIES, PRECISIONS
from pipeline.engine.job import RunOptions

# RunOptions fields set by command-line options (command, actor_restarts: set by the program)
RUN_OPTION_FIELDS = ("address", "num_cpus", "rows_per_shard", "max_shard_bytes", "block_rows", "strict", "device",
                     "precision", "allow_mixed_devices", "wait_for_gpus", "progress", "stage_resources", "storage_options",
                     "unsafe_object_store_commit")


def default(config: type, name: str) -> Any:
    """The default of field `name` of dataclass `config` (its default_factory called when it has one)."""
    found = config.__dataclass_fields__[name]
    if found.default is not dataclasses.MISSING:
        return found.default
    if found.default_factory is not dataclasses.MISSING:
        return found.default_factory()
    raise TypeError(f"{config.__name__}.{name} has no default")


def parameter_default(function: Callable[..., Any], name: str) -> Any:
    """The default of parameter `name` of a library function (commands over functions without a config)."""
    return inspect.signature(function).parameters[name].default


def int_choice(values: Sequence[int]) -> click.Choice:
    """A choice among integers, shown and typed as such (``--bits 16|24``), converted to int."""

    class IntChoice(click.Choice):
        def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
            return int(super().convert(str(value), param, ctx))

    return IntChoice([str(v) for v in values])


def _parse_stage_resources(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict:
    from pipeline.engine.stage_resources import StageResourcesError, parse_stage_resources

    try:
        return parse_stage_resources(value or ())
    except StageResourcesError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


def _parse_storage_options(ctx: click.Context, param: click.Parameter, value: str | None) -> dict:
    from pipeline.errors import ConfigError
    from pipeline.io.storage import parse_storage_options

    if not value:
        return {}
    try:
        return parse_storage_options(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


def command_line() -> list[str]:
    """What to record as the command: the job YAML entry point passes its own in the context's obj."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and isinstance(ctx.find_root().obj, dict) and "command" in ctx.find_root().obj:
        return list(ctx.find_root().obj["command"])
    return ["hsp", *sys.argv[1:]]


def run_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by every job command; the command receives them as one `run: RunOptions`."""

    def run_default(name: str) -> Any:
        return default(RunOptions, name)

    decorators = [
        click.option("--address", envvar="RAY_ADDRESS", default=run_default("address"), help="Ray cluster address (default: start a local Ray)."),
        click.option("--num-cpus", type=int, default=run_default("num_cpus"), help="Logical CPUs of the local Ray (default: max(4, cores))."),
        click.option("--rows-per-shard", type=click.IntRange(min=1), default=run_default("rows_per_shard"), show_default=True),
        click.option("--max-shard-bytes", type=click.IntRange(min=1), default=run_default("max_shard_bytes"), show_default=True),
        click.option("--block-rows", type=click.IntRange(min=1), default=run_default("block_rows"), show_default=True, help="Rows per input block: the unit Ray Data streams between stages (smaller: work spreads and streams sooner)."),
        click.option("--strict/--lenient", default=run_default("strict"), show_default=True, help="Refuse manifests with missing files or null paths instead of recording those rows as errors."),
        click.option("--device", type=click.Choice(list(DEVICE_POLICIES)), default=run_default("device"), show_default=True, help="auto: GPU stages fall back to CPU when the cluster has no GPU (or torch cannot see it; the plan and summary say CPU FALLBACK); cuda: fail instead."),
        click.option("--precision", type=click.Choice(list(PRECISIONS)), default=run_default("precision"), show_default=True, help="CUDA math of the GPU stages: fp32 (TF32 off, the tested tolerances), tf32 (TF32 matmuls and convolutions), bf16 (bfloat16 autocast). CPU always computes in fp32."),
        click.option("--allow-mixed-devices", is_flag=True, default=run_default("allow_mixed_devices"), help="Resume an output computed on another device so far (CPU vs GPU) instead of refusing to mix them."),
        click.option("--wait-for-gpus", type=click.FloatRange(min=0), default=run_default("wait_for_gpus"), show_default=True, metavar="SECONDS", help="If the cluster has no GPU yet, ask the autoscaler for the GPU stages' GPUs and wait this long before falling back (auto) or failing (cuda)."),
        click.option("--progress/--no-progress", default=run_default("progress"), show_default=True),
        click.option("--storage-options", default=None, metavar="JSON", callback=_parse_storage_options, help="fsspec options for s3:// and gs:// inputs and outputs, e.g. '{\"endpoint_url\": \"http://127.0.0.1:9000\"}' (default: the store's environment, AWS_* for S3)."),
        click.option("--unsafe-object-store-commit", is_flag=True, default=run_default("unsafe_object_store_commit"), help="For object stores that ignore conditional writes (the run refuses them otherwise): commit by copy and delete, without a run lease. Never run two jobs on the output at once."),
        click.option(
            "--stage-resources",
            multiple=True,
            metavar="STAGE=KEY:VALUE,...",
            callback=_parse_stage_resources,
            help="Override a stage's resources, e.g. decode=num_cpus:2 or upsample=num_gpus:0.5,actors:4,memory:4G "
            "(keys: num_cpus, num_gpus, actors, memory). Repeatable; the plan printed at start shows the result.",
        ),
    ]

    @functools.wraps(function)
    def command(*args: Any, **kwargs: Any) -> Any:
        run = RunOptions(**{name: kwargs.pop(name) for name in RUN_OPTION_FIELDS}, command=command_line())
        return function(*args, run=run, **kwargs)

    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def check_path_or_uri(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A local path (or ``file://`` URI) that exists, or a remote URI (s3://, gs://, ...), left as given."""
    from pipeline.io.uri import is_uri, local_path

    if value is not None and not is_uri(value) and not Path(local_path(value)).exists():
        raise click.BadParameter(f"{value!r} does not exist", ctx=ctx, param=param)
    return value


def manifest_argument(function: Callable[..., Any]) -> Callable[..., Any]:
    """The MANIFEST argument of job commands: a local path that exists, or a URI (s3://, gs://, ...)."""
    return click.argument("manifest_path", metavar="MANIFEST", callback=check_path_or_uri)(function)


def output_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """-o/--output of job commands: the output folder, local or a URI."""
    return click.option("-o", "--output", required=True, help="Output folder (local path or URI).")(function)


def run_job_command(name: str, config: Any, source: str, output: str, run: RunOptions) -> None:
    """Run registered job `name`; exit 3 when the output is not complete (rows left for a re-run)."""
    from pipeline import registry

    summary = registry.run(name, config, str(source), output, run)
    if not summary["complete"]:
        raise SystemExit(3)
