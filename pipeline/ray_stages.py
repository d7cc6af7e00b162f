"""Adapting `Stage` objects and the shard sink to Ray Data operators.

Stateless stages become `map_batches` tasks; stateful ones (models) become actor pools whose
constructor calls `setup()` once. Each adapter is a subclass named after the stage so Ray's
dashboard and progress output show `MapBatches(decode)`, not an anonymous wrapper.
"""

from __future__ import annotations

import dataclasses
import warnings

import pyarrow as pa
import ray.data

from pipeline.item import batch_to_items, items_to_batch
from pipeline.sink import SinkConfig, commit_part
from pipeline.stage import Stage

SUMMARY_SCHEMA = pa.schema(
    [
        ("part", pa.string()),
        ("samples", pa.int64()),
        ("errors", pa.int64()),
        ("rows", pa.int64()),
        ("bytes", pa.int64()),
        ("seconds_in", pa.float64()),
        ("seconds_out", pa.float64()),
    ]
)


class _StageTask:
    """Callable instance: Ray runs it as a stateless task per batch."""

    def __init__(self, stage: Stage):
        self.stage = stage
        self._ready = False

    def __call__(self, batch: pa.Table) -> pa.Table:
        if not self._ready:
            self.stage.setup()
            self._ready = True
        return items_to_batch(self.stage(batch_to_items(batch)))


class _StageActor:
    """Callable class: Ray keeps a pool of these actors, each with its model loaded once."""

    def __init__(self, stage: Stage):
        self.stage = stage
        self.stage.setup()

    def __call__(self, batch: pa.Table) -> pa.Table:
        return items_to_batch(self.stage(batch_to_items(batch)))


class _Sink:
    def __init__(self, config: SinkConfig):
        self.config = config

    def __call__(self, batch: pa.Table) -> pa.Table:
        items = batch_to_items(batch)
        summary = commit_part(items, self.config)
        row = dataclasses.asdict(summary)
        row["rows"] = len(items)
        row.pop("shards")
        return pa.Table.from_pylist([row], schema=SUMMARY_SCHEMA)


def _named(base: type, name: str) -> type:
    safe = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name) or "stage"
    return type(safe, (base,), {})


def apply_stage(ds: ray.data.Dataset, stage: Stage, *, actor_restarts: bool = True) -> ray.data.Dataset:
    """`stage` as a Ray Data operator; `actor_restarts` False: a dead actor fails the job instead of restarting.

    Ray Data passes every actor pool its DataContext and map function as object-store references
    and asks for endless restarts; with both, Ray 2.60 logs an error line per driver ("has constructor
    arguments in the object store and max_restarts > 0", ray-project/ray#57733) whatever our own
    arguments are. On a local Ray no node can be lost without the driver, and restarting an actor
    that crashed on a row retries that row forever, so local runs turn restarts off (a crash stops
    the job; the re-run resumes it) and cluster runs keep them to survive losing a worker node.
    """
    res = stage.resources
    if stage.input_rows_per_block:
        ds = ds.repartition(target_num_rows_per_block=stage.input_rows_per_block)  # streaming split
    common = {"batch_size": stage.batch_size, "batch_format": "pyarrow", "num_cpus": res.num_cpus}
    if res.memory:
        common["memory"] = res.memory
    if stage.stateful:
        restarts = {} if actor_restarts else {"max_restarts": 0}
        with warnings.catch_warnings():
            # Ray 2.60 deprecates extra remote args for named ones, but has no named max_restarts yet
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated", category=DeprecationWarning)
            return ds.map_batches(
                _named(_StageActor, stage.name),
                fn_constructor_args=(stage,),
                concurrency=res.actors,
                num_gpus=res.num_gpus or None,
                **restarts,
                **common,
            )
    if res.num_gpus:
        common["num_gpus"] = res.num_gpus
    return ds.map_batches(_named(_StageTask, stage.name)(stage), **common)


def apply_sink(ds: ray.data.Dataset, config: SinkConfig, rows_per_shard: int) -> ray.data.Dataset:
    return ds.map_batches(
        _named(_Sink, "write_shards")(config), batch_size=rows_per_shard, batch_format="pyarrow", num_cpus=0.5
    )
