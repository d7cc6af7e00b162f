"""Job YAML -> the very `hsp` click command, so `python -m jobs.X job.yaml` and `hsp X ...` share one code path.

A job YAML's keys are the command's parameter names (`manifest`, `output`, `rows_per_shard`, ...;
the option spelling `rows-per-shard` works too). They may be grouped under `inputs:`, `outputs:`,
`models:` and `run:` for readability, which is flattened. `resources:` maps stage names to
resource overrides (`--stage-resources`), and `job:` (optional) must name the entry point's job.
The YAML is checked against the command's parameters and parsed by click before any work starts:
a bad key is named with the allowed keys listed.

Adding a job entry point is three lines (see jobs/prepare.py): the `hsp` command does the rest.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from typing import Any

import click
import yaml

from pipeline.errors import ConfigError

SECTIONS = ("inputs", "outputs", "models", "run")
RESOURCES_KEY = "resources"
JOB_KEY = "job"


class JobSpecError(ConfigError):
    """The job YAML does not fit the job's command (unknown/missing keys, bad values)."""


def job_command(name: str) -> click.Command:
    """The `hsp` command of registered job `name` (e.g. synthesize_vc -> `hsp synthesize vc`)."""
    from pipeline.cli import main as hsp
    from pipeline.registry import JOBS

    spec = JOBS.get(name)
    if spec is None:
        raise JobSpecError(f"unknown job {name!r}; known jobs: {', '.join(sorted(JOBS))}")
    command: click.Command = hsp
    for part in spec.command:
        command = command.commands[part]  # type: ignore[attr-defined]
    return command


def command_words(name: str) -> list[str]:
    """The words after `hsp` that name job `name`'s command."""
    from pipeline.registry import job_spec

    return list(job_spec(name).command)


def _keys_of(param: click.Parameter) -> list[str]:
    """YAML keys naming this parameter: its python name, long option names, an argument's metavar."""
    keys = [param.name or ""]
    if isinstance(param, click.Option):
        keys += [o.lstrip("-").replace("-", "_") for o in param.opts if o.startswith("--")]
    elif param.metavar:
        keys.append(param.metavar.lower())
    return list(dict.fromkeys(k for k in keys if k))


def allowed_keys(command: click.Command) -> dict[str, click.Parameter]:
    """YAML key -> parameter, for every parameter of the command (help excluded)."""
    table: dict[str, click.Parameter] = {}
    for param in command.params:
        if param.name in ("help", "stage_resources"):
            continue
        for key in _keys_of(param):
            table[key] = param
    return table


def _primary_keys(command: click.Command) -> list[str]:
    keys = []
    for param in command.params:
        if param.name in ("help", "stage_resources"):
            continue
        alias = _keys_of(param)
        keys.append(alias[-1] if isinstance(param, click.Argument) or len(alias) == 1 else alias[1])
    return [*keys, RESOURCES_KEY]


def _flatten(spec: dict[str, Any], source: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in spec.items():
        entries = value.items() if key in SECTIONS else [(key, value)]
        if key in SECTIONS and not isinstance(value, dict):
            raise JobSpecError(f"{source}: section '{key}' must be a mapping of keys to values")
        for inner, inner_value in entries:
            inner = str(inner).replace("-", "_")
            if inner in flat:
                raise JobSpecError(f"{source}: key '{inner}' is given twice")
            flat[inner] = inner_value
    return flat


def _option_argv(param: click.Option, key: str, value: Any) -> list[str]:
    flag = next((o for o in param.opts if o.startswith("--")), param.opts[0])
    if param.is_flag:
        if not isinstance(value, bool):
            raise JobSpecError(f"key '{key}' is a switch: use true or false, not {value!r}")
        if value:
            return [flag]
        return [param.secondary_opts[0]] if param.secondary_opts else []
    values = value if param.multiple and isinstance(value, list) else [value]
    argv: list[str] = []
    for one in values:
        if isinstance(one, dict | list) and param.metavar == "JSON":  # --storage-options: YAML mapping -> JSON
            one = json.dumps(one, sort_keys=True)
        if isinstance(one, dict | list):
            raise JobSpecError(f"key '{key}' takes a single value, not {one!r}")
        argv += [flag, str(one)]
    return argv


def spec_to_argv(command: click.Command, spec: dict[str, Any], job: str, source: str = "job YAML") -> list[str]:
    """Turn a parsed job YAML into the argument list of `hsp <job>`; raises JobSpecError on bad keys."""
    from pipeline.engine.stage_resources import StageResourcesError, format_stage_resources

    if not isinstance(spec, dict):
        raise JobSpecError(f"{source}: a job YAML is a mapping of keys to values, not {type(spec).__name__}")
    spec = dict(spec)
    named = spec.pop(JOB_KEY, None)
    if named is not None and named != job:
        raise JobSpecError(f"{source}: says job '{named}' but was given to the '{job}' entry point")
    resources = spec.pop(RESOURCES_KEY, None) or {}
    flat = _flatten(spec, source)
    table = allowed_keys(command)
    unknown = [k for k in flat if k not in table]
    if unknown:
        raise JobSpecError(
            f"{source}: unknown key(s) {', '.join(unknown)} for job '{job}'; allowed keys: {', '.join(_primary_keys(command))}"
            f" (optionally grouped under {', '.join(SECTIONS)})"
        )
    seen: dict[str, str] = {}
    for key in flat:
        name = table[key].name or key
        if name in seen:
            raise JobSpecError(f"{source}: keys '{seen[name]}' and '{key}' set the same parameter")
        seen[name] = key
    missing = [_keys_of(p)[-1] for p in command.params if p.required and p.name not in seen]
    if missing:
        raise JobSpecError(f"{source}: missing required key(s) {', '.join(missing)} for job '{job}'")

    options: list[str] = []
    arguments: list[str] = []
    for key, value in flat.items():
        param = table[key]
        if value is None:
            continue
        if isinstance(param, click.Argument):
            arguments.append(str(value))
        else:
            options += _option_argv(param, key, value)
    if not isinstance(resources, dict):
        raise JobSpecError(f"{source}: '{RESOURCES_KEY}' maps stage names to {{num_cpus, num_gpus, actors, memory}}")
    try:
        for item in format_stage_resources(resources):
            options += ["--stage-resources", item]
    except StageResourcesError as exc:
        raise JobSpecError(f"{source}: {exc}") from exc
    return [*options, "--", *arguments] if arguments else options


def load_spec(path: str) -> dict[str, Any]:
    """Read a job YAML from a local path or a URI pyarrow understands."""
    from pipeline.io.audio import read_bytes

    try:
        return yaml.safe_load(read_bytes(path)) or {}
    except yaml.YAMLError as exc:
        raise JobSpecError(f"{path}: not valid YAML: {exc}") from exc


def run_job_yaml(job: str, path: str, *, check_only: bool = False) -> int:
    """Validate the YAML, then run `hsp <job>` with it in this process. Returns the exit code."""
    prog = f"python -m jobs.{job}"
    try:
        command = job_command(job)
        argv = spec_to_argv(command, load_spec(path), job, source=path)
    except (JobSpecError, FileNotFoundError, OSError) as exc:
        click.echo(f"Error: {exc}", err=True)
        return 2
    click.echo(f"[{job}] equivalent command: hsp {' '.join(command_words(job))} {shlex.join(argv)}", err=True)
    obj = {"command": [*prog.split(), path]}
    try:
        # parsing runs every type check and callback: nothing has started when this fails
        with command.make_context(prog, list(argv), obj=obj):
            pass
        if check_only:
            click.echo(f"[{job}] {path} is valid", err=True)
            return 0
        from pipeline.cli import main as hsp

        # through the root group, so errors are mapped exactly as for `hsp` itself
        hsp.main(args=[*command_words(job), *argv], prog_name=prog, obj=obj, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        return 1
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def job_main(job: str | None, argv: list[str] | None = None) -> int:
    """`python -m jobs.<job> JOB.yaml [--check]` (job None: taken from the YAML's `job:` key)."""
    parser = argparse.ArgumentParser(
        prog=f"python -m jobs{'.' + job if job else ''}",
        description="Run a pipeline job described by a YAML file (see jobs/examples/).",
    )
    parser.add_argument("spec", metavar="JOB.yaml", help="job file: local path or URI")
    parser.add_argument("--check", action="store_true", help="only validate the file and print the equivalent hsp command")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2), format="%(levelname)s %(name)s: %(message)s")
    if job is None:
        try:
            job = load_spec(args.spec).get(JOB_KEY)
        except (JobSpecError, OSError) as exc:
            click.echo(f"Error: {exc}", err=True)
            return 2
        if not job:
            click.echo(f"Error: {args.spec} has no '{JOB_KEY}:' key; use python -m jobs.<job> or add one", err=True)
            return 2
    return run_job_yaml(job, args.spec, check_only=args.check)


if __name__ == "__main__":
    sys.exit(job_main(None))
