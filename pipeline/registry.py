"""The job registry: every job by name, and the one way every door (hsp, job YAML, library) runs one.

Each job module defines its `JobSpec` (name, `hsp` command, config dataclass, builder, columns,
index fields); this module lists them, explicitly. `hsp manifest validate --job NAME` checks the
columns of `JOBS[NAME]`, `python -m jobs.NAME` finds the command there, and `run` is what every job
command calls.
"""

from __future__ import annotations

from typing import Any

from pipeline.augment import AUGMENT
from pipeline.engine.job import JobSpec, RunOptions
from pipeline.errors import ConfigError
from pipeline.extract import EXTRACT
from pipeline.io.manifest import BASE_COLUMNS, Column
from pipeline.prepare import PREPARE
from pipeline.score import SCORE
from pipeline.synthesize import SYNTHESIZE_TTS, SYNTHESIZE_VC
from pipeline.testing.probes import PROBE
from pipeline.upsample import UPSAMPLE

JOBS: dict[str, JobSpec] = {spec.name: spec for spec in (PREPARE, EXTRACT, UPSAMPLE, SYNTHESIZE_VC, SYNTHESIZE_TTS, AUGMENT, SCORE, PROBE)}


def job_spec(name: str) -> JobSpec:
    """The registered job `name`; ConfigError naming the known jobs otherwise."""
    if name not in JOBS:
        raise ConfigError(f"unknown job {name!r}; known jobs: {', '.join(sorted(JOBS))}")
    return JOBS[name]


def job_columns(name: str | None) -> tuple[Column, ...]:
    """The manifest columns of job `name` (None: the base columns every manifest has)."""
    return BASE_COLUMNS if name is None else job_spec(name).manifest_columns


def run(name: str, config: Any, source: str, output: str, options: RunOptions) -> dict[str, Any]:
    """Run job `name` with `config` over `source` (a manifest, or what the job turns into one) into `output`.

    The job is built first (its driver-side checks: checkpoints, weights, models), then its input is
    read (tar input's internal manifest, augment's plan), then the engine runs it. Returns the summary.
    """
    from pipeline.engine.runner import run_job

    spec = job_spec(name)
    if not isinstance(config, spec.config):
        raise ConfigError(f"job {name!r} takes a {spec.config.__name__}, not a {type(config).__name__}")
    job = spec.build(config)
    if spec.run is not None:
        return spec.run(job, config, source, output, options)
    manifest = spec.input_manifest(config, source, output) if spec.input_manifest else source
    return run_job(job, manifest, output, options)
