"""What a job is (its registry entry, manifest columns, stages and index columns) and how a run is configured.

A `JobSpec` is what every door of a job shares (the registry in pipeline/registry.py lists them):
its name, its `hsp` command, its config dataclass (the one source of its defaults), the builder
that turns a config into a `Job`, and the columns it reads and writes. A `Job` is one run's plan:
its stages, built on the driver, and the options recorded in job.json.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from pipeline.engine.compute import DevicePolicy, Precision
from pipeline.engine.stage import Stage
from pipeline.io.manifest import Column, with_base_columns

DEFAULT_ROWS_PER_SHARD = 1000  # ~10 s clips: ~300 MB of 16 kHz FLAC, ~1 GB with w2v features
DEFAULT_MAX_SHARD_BYTES = 1 << 30
DEFAULT_BLOCK_ROWS = 32


@dataclass
class Job:
    """A pipeline job: `build_stages` is called on the driver after Ray is up (GPU facts known)."""

    name: str
    build_stages: Callable[[], list[Stage]]
    index_fields: list[pa.Field] = field(default_factory=list)
    extra_columns: tuple[Column, ...] = ()
    # options that change the output: recorded in job.json; a resume with other values is refused
    output_options: dict[str, Any] = field(default_factory=dict)
    # name of a manifest the job writes itself under OUT/_state (tar input): the only manifest whose
    # columns marked `internal` are accepted
    internal_manifest: str | None = None
    # job-specific facts for summary.json, computed from the output folder when the run ends
    # (e.g. augment's prompt-speaker histogram from OUT/plan.parquet); printed with the summary
    summary_extra: Callable[[str], dict[str, Any]] | None = None

    def allows_internal_columns(self, manifest_path: str, out_root: str) -> bool:
        """True when `manifest_path` is this job's own internal manifest in `out_root`."""
        if self.internal_manifest is None:
            return False
        from pipeline.io.output import STATE, OutputDir
        from pipeline.io.uri import same_location

        return same_location(str(manifest_path), OutputDir(str(out_root)).path(STATE, self.internal_manifest))

    @property
    def columns(self) -> tuple[Column, ...]:
        return with_base_columns(self.extra_columns)

    def stages(self) -> list[Stage]:
        """Build the stages and check that they fit together (StageContractError naming stage and key)."""
        from pipeline.engine.contracts import check_stage_list

        stages = self.build_stages()
        check_stage_list(self.name, stages, [c.name for c in self.columns])
        return stages


@dataclass(frozen=True)
class JobSpec:
    """A registered job: one name for job.json, `hsp manifest validate --job`, and `python -m jobs.<name>`.

    `columns`: manifest columns beyond the base ones that the user's manifest may hold (augment's
    input differs from the plan it runs on: its Job says so with its own `extra_columns`).
    `input_manifest(config, INPUT, OUT)`: the manifest the runner reads, when it is not INPUT itself
    (tar input's internal manifest, augment's plan). `run(job, config, INPUT, OUT, options)`: how the
    built job runs, when not by `run_job` over that manifest (upsample's mirror layout runs over tars).
    """

    name: str
    command: tuple[str, ...]
    config: type
    build: Callable[[Any], Job]
    columns: tuple[Column, ...] = ()
    index_fields: tuple[pa.Field, ...] = ()
    input_manifest: Callable[[Any, str, str], str] | None = None
    run: Callable[[Job, Any, str, str, RunOptions], dict[str, Any]] | None = None

    @property
    def manifest_columns(self) -> tuple[Column, ...]:
        """Every column a manifest of this job is checked against (base columns included)."""
        return with_base_columns(self.columns)

    def job(self, build_stages: Callable[[], list[Stage]], output_options: dict[str, Any], *,
            extra_columns: tuple[Column, ...] | None = None, internal_manifest: str | None = None) -> Job:
        """This job's `Job`: its name, index fields and columns from the spec."""
        return Job(
            name=self.name,
            build_stages=build_stages,
            index_fields=list(self.index_fields),
            extra_columns=self.columns if extra_columns is None else extra_columns,
            output_options=output_options,
            internal_manifest=internal_manifest,
        )


@dataclass
class RunOptions:
    """How to run: where (Ray address), on what device and precision, how big the shards, how strict, how loud.

    None of these is an output option (`Job.output_options`): job.json records the device and
    precision a run used under `compute`, apart from `options`.
    """

    address: str | None = None
    num_cpus: int | None = None
    rows_per_shard: int = DEFAULT_ROWS_PER_SHARD
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES
    block_rows: int = DEFAULT_BLOCK_ROWS
    strict: bool = False  # refuse row problems (missing files, null paths) up front
    device: DevicePolicy = "auto"
    # CUDA precision of the GPU stages (pipeline.engine.compute): fp32 (TF32 off), tf32, bf16 (autocast); CPU is fp32
    precision: Precision = "fp32"
    # resume an output computed on another device (CPU vs GPU) so far; refused otherwise
    allow_mixed_devices: bool = False
    wait_for_gpus: float = 0.0  # seconds to wait for autoscaled GPU workers when the cluster has none yet
    progress: bool = True
    command: list[str] | None = None
    # per-stage overrides {stage name: {num_cpus|num_gpus|actors|memory: value}}, see pipeline.engine.stage_resources
    stage_resources: dict[str, dict[str, float | int]] = field(default_factory=dict)
    # restart dead model actors: None = on a cluster or a GPU (pipeline.engine.ray_stages.wants_actor_restarts)
    actor_restarts: bool | None = None
    # fsspec options for s3:// / gs:// inputs and outputs (pipeline.io.storage); {} = the store's environment
    storage_options: dict[str, Any] = field(default_factory=dict)
    # object stores that ignore conditional writes: commit by rename, no lock (docs/object-storage.md)
    unsafe_object_store_commit: bool = False
