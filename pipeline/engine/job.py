"""What a job is (its manifest columns, stages and index columns) and how a run is configured."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa

from pipeline.engine.stage import Stage
from pipeline.io.manifest import BASE_COLUMNS, Column

DEFAULT_ROWS_PER_SHARD = 1000  # ~10 s clips: ~300 MB of 16 kHz FLAC, ~1 GB with w2v features
DEFAULT_MAX_SHARD_BYTES = 1 << 30


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
    # job-specific facts added to summary.json and printed with it (e.g. augment's prompt-speaker histogram)
    summary_extra: dict[str, Any] = field(default_factory=dict)

    def allows_internal_columns(self, manifest_path: str, out_root: str) -> bool:
        """True when `manifest_path` is this job's own internal manifest in `out_root`."""
        if self.internal_manifest is None:
            return False
        from pipeline.io.output import STATE, OutputDir
        from pipeline.io.uri import same_location

        return same_location(str(manifest_path), OutputDir(str(out_root)).path(STATE, self.internal_manifest))

    @property
    def columns(self) -> tuple[Column, ...]:
        names = {c.name for c in self.extra_columns}
        return tuple(c for c in BASE_COLUMNS if c.name not in names) + self.extra_columns


@dataclass
class RunOptions:
    """How to run: where (Ray address), how big the shards, how strict, how loud."""

    address: str | None = None
    num_cpus: int | None = None
    rows_per_shard: int = DEFAULT_ROWS_PER_SHARD
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES
    block_rows: int = 32
    strict: bool = False  # refuse row problems (missing files, null paths) up front
    device: Literal["auto", "cpu", "cuda"] = "auto"
    wait_for_gpus: float = 0.0  # seconds to wait for autoscaled GPU workers when the cluster has none yet
    progress: bool = True
    command: list[str] | None = None
    # per-stage overrides {stage name: {num_cpus|num_gpus|actors|memory: value}}, see pipeline.engine.stage_resources
    stage_resources: dict[str, dict[str, float | int]] = field(default_factory=dict)
    # restart dead model actors: None = on a cluster or a GPU (pipeline.engine.ray_stages.wants_actor_restarts)
    actor_restarts: bool | None = None
