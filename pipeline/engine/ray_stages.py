"""Adapting `Stage` objects and the shard sink to Ray Data operators.

Each stage group (`pipeline.engine.fusion`) becomes one `map_batches` operator: stateless groups
run as tasks, a stateful stage (a model) as an actor pool whose constructor calls `setup()` once.
Each adapter is a subclass named after its group so Ray's dashboard and progress output show
`MapBatches(decode_encode_flac_write_shards)`, not an anonymous wrapper.

A stage that raises `DeviceContextError` (a sticky CUDA error: the process's CUDA context is
broken) makes its worker process exit: Ray restarts the actor (`max_restarts`) and runs the
batch again on the fresh one (`max_task_retries`), so the rows are redone, not lost; a batch
that kills its worker every time stops the job after STICKY_RETRIES tries.

Every stage's `prepare_device` runs before its `setup()` in the worker process, with the run's
--device policy and --precision (`DeviceRun`), so the device is decided where the GPU is.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import warnings

import pyarrow as pa
import ray.data

from pipeline.engine.compute import DeviceRun
from pipeline.engine.device_errors import DeviceContextError
from pipeline.engine.fusion import StageGroup, run_group
from pipeline.engine.item import Item, batch_to_items, items_to_batch
from pipeline.engine.rows import items_from_rows
from pipeline.engine.sink import SinkConfig, commit_part
from pipeline.engine.stage import Stage

log = logging.getLogger(__name__)

ACTOR_RESTARTS = -1  # a model actor whose process exits is always replaced ...
STICKY_RETRIES = 3  # ... and its batch retried this many times before the job stops (GPU tasks too)
STICKY_EXIT_CODE = 75  # EX_TEMPFAIL: the worker exits on purpose so that Ray replaces it

SUMMARY_SCHEMA = pa.schema(
    [
        ("part", pa.string()),
        ("samples", pa.int64()),
        ("errors", pa.int64()),
        ("rows", pa.int64()),
        ("bytes", pa.int64()),
        ("seconds_in", pa.float64()),
        ("seconds_out", pa.float64()),
        ("deferred", pa.int64()),
        ("deferred_ids", pa.list_(pa.string())),
        ("stage_metrics", pa.string()),  # JSON {stage: {counter: n}}
        ("compute", pa.string()),  # JSON list of the distinct sample `compute` records of the part
    ]
)


def run_stage(stage: Stage, items: list[Item]) -> list[Item]:
    """`stage(items)`, exiting the worker process on a sticky CUDA error so Ray replaces it."""
    try:
        return stage(items)
    except DeviceContextError as exc:
        log.error("%s", exc)
        print(f"{exc} (exit {STICKY_EXIT_CODE})", file=sys.stderr, flush=True)
        os._exit(STICKY_EXIT_CODE)


class _GroupCall:
    """What a group's task or actor does with one batch: items in, stages run, items (or a part's summary) out.

    `from_rows`: the batch is a block of manifest rows (`pipeline.engine.rows`), this is the first
    operator. `sink`: the group ends the job and commits the batch as one part. `last`: the shard
    sink comes next, so the items' working data (`item.data`, never written) is not sent to it.
    """

    def __init__(self, group: StageGroup, from_rows: bool = False, sink: SinkConfig | None = None, last: bool = False,
                 device: DeviceRun | None = None):
        self.group = group
        self.from_rows = from_rows
        self.sink = sink
        self.last = last or sink is not None
        self.device = device or DeviceRun()

    def setup(self) -> None:
        """Decide each stage's device in this process (the GPU Ray assigned it), then load its models."""
        for stage in self.group.stages:
            stage.prepare_device(self.device.policy, self.device.precision)
            stage.setup()

    def run(self, batch: pa.Table) -> pa.Table:
        items = items_from_rows(batch) if self.from_rows else batch_to_items(batch)
        if len(self.group.stages) == 1 and self.sink is None:
            items = run_stage(self.group.stages[0], items)
        else:
            run_group(self.group.stages, items, run_stage, drop_data=self.last)
        if self.sink is not None:
            return part_summary_table(items, self.sink)
        if self.last:
            for item in items:
                item.data.clear()
        return items_to_batch(items)


class _StageTask(_GroupCall):
    """Callable instance: Ray runs it as a stateless task per batch (setup once per worker process)."""

    def __init__(self, group: StageGroup, from_rows: bool = False, sink: SinkConfig | None = None, last: bool = False,
                 device: DeviceRun | None = None):
        super().__init__(group, from_rows, sink, last, device)
        self._ready = False

    def __call__(self, batch: pa.Table) -> pa.Table:
        if not self._ready:
            self.setup()
            self._ready = True
        return self.run(batch)


class _StageActor(_GroupCall):
    """Callable class: Ray keeps a pool of these actors, each with its model loaded once."""

    def __init__(self, group: StageGroup, from_rows: bool = False, last: bool = False, device: DeviceRun | None = None):
        super().__init__(group, from_rows, last=last, device=device)
        self.setup()

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.run(batch)


def part_summary_table(items: list[Item], config: SinkConfig) -> pa.Table:
    """Commit `items` as one part; its summary as the one-row table the driver reads (SUMMARY_SCHEMA)."""
    summary = commit_part(items, config)
    row = dataclasses.asdict(summary)
    row["rows"] = len(items)
    row.pop("shards")
    row["stage_metrics"] = json.dumps(row["stage_metrics"], sort_keys=True)
    row["compute"] = json.dumps(row["compute"], sort_keys=True)
    return pa.Table.from_pylist([row], schema=SUMMARY_SCHEMA)


class _Sink:
    def __init__(self, config: SinkConfig):
        self.config = config

    def __call__(self, batch: pa.Table) -> pa.Table:
        return part_summary_table(batch_to_items(batch), self.config)


def _named(base: type, name: str) -> type:
    safe = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name) or "stage"
    return type(safe, (base,), {})


def wants_actor_restarts(stage: Stage, address: str | None, forced: bool | None = None) -> bool:
    """Restart dead actors on a cluster (node loss) or on a GPU (sticky CUDA errors); `forced` overrides.

    A local CPU-only run has neither risk: a crashed actor then stops the job, which a re-run resumes,
    and the first run of `hsp demo` shows no error line from Ray.
    """
    from pipeline.engine.ray_env import joins_cluster

    if forced is not None:
        return forced
    return joins_cluster(address) or stage.resources.num_gpus > 0


def apply_stage(ds: ray.data.Dataset, stage: Stage, *, actor_restarts: bool = True, from_rows: bool = False,
                device: DeviceRun | None = None) -> ray.data.Dataset:
    """One stage as its own Ray Data operator (see `apply_group`)."""
    return apply_group(ds, StageGroup([stage]), actor_restarts=actor_restarts, from_rows=from_rows, device=device)


def apply_group(
    ds: ray.data.Dataset,
    group: StageGroup,
    *,
    actor_restarts: bool = True,
    from_rows: bool = False,
    sink: SinkConfig | None = None,
    rows_per_part: int | None = None,
    last: bool = False,
    device: DeviceRun | None = None,
) -> ray.data.Dataset:
    """`group` as a Ray Data operator; `actor_restarts` False: a dead actor fails the job instead of restarting.

    `from_rows`: the input is the manifest's row blocks (the first operator). `sink` (a group that
    commits): each batch of `rows_per_part` rows is written as one part, and the operator's output
    is one summary row per part. `last`: the separate shard sink follows (see `_GroupCall`).
    `device`: the run's device policy and precision for the stages' `prepare_device`.

    Ray Data passes every actor pool its DataContext and map function as object-store references;
    with restarts on, Ray 2.60 logs an error line per driver ("has constructor arguments in the
    object store and max_restarts > 0", ray-project/ray#57733) whatever our own arguments are. The
    runner asks for restarts only where they buy something (see `wants_actor_restarts`): on a
    cluster, to survive losing a worker node, and on a GPU, to replace an actor whose CUDA context
    a sticky error broke. Restarts retry a batch at most STICKY_RETRIES times, so a row that kills
    its worker every time stops the job instead of looping; the re-run resumes it.
    """
    res = group.resources
    if group.input_rows_per_block:
        ds = ds.repartition(target_num_rows_per_block=group.input_rows_per_block)  # streaming split
    if sink is not None and not group.commits:
        raise ValueError(f"stage group {group.name!r} does not end the job; it cannot commit parts")
    batch_size = rows_per_part if sink is not None else group.batch_size
    common = {"batch_size": batch_size, "batch_format": "pyarrow", "num_cpus": res.num_cpus}
    if res.memory:
        common["memory"] = res.memory
    if group.stateful:
        restarts = {"max_restarts": ACTOR_RESTARTS, "max_task_retries": STICKY_RETRIES} if actor_restarts else {"max_restarts": 0}
        with warnings.catch_warnings():
            # Ray 2.60 deprecates extra remote args for named ones, but has no named max_restarts yet (due in 2.64)
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated", category=DeprecationWarning)
            return ds.map_batches(
                _named(_StageActor, group.name),
                fn_constructor_args=(group, from_rows, last, device),
                concurrency=res.actors,
                num_gpus=res.num_gpus or None,
                **restarts,
                **common,
            )
    if res.num_gpus:  # CPU tasks keep Ray Data's unbounded retries (node loss); they hold no CUDA context
        common["num_gpus"] = res.num_gpus
        common["max_retries"] = STICKY_RETRIES
    return ds.map_batches(_named(_StageTask, group.name)(group, from_rows, sink, last, device), **common)


def apply_sink(ds: ray.data.Dataset, config: SinkConfig, rows_per_shard: int) -> ray.data.Dataset:
    return ds.map_batches(
        _named(_Sink, "write_shards")(config), batch_size=rows_per_shard, batch_format="pyarrow", num_cpus=0.5
    )
