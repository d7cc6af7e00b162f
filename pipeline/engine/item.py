"""The unit of work that flows through a job: one manifest row and everything stages add to it.

Items travel between Ray Data operators pickled in a single binary column, so every batch has
the same three-column Arrow schema whatever the features inside (ragged arrays, bytes, dicts).
That avoids Arrow type unification across batches and keeps stage code plain Python.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

BATCH_SCHEMA = pa.schema([("id", pa.string()), ("row", pa.int64()), ("payload", pa.large_binary())])


@dataclass
class ItemError:
    """Why an item failed: the stage, the exception type and a readable message.

    `deferred`: not the row's fault (it ran out of device memory even alone). The sink writes
    such an item nowhere, so the row stays to do and the next run of the same command retries it.
    """

    stage: str
    error: str
    message: str
    deferred: bool = False


@dataclass
class Item:
    """A manifest row in flight.

    `fields`: the manifest columns (paths already resolved); `data`: working values that are
    not written (decoded audio, ...); `members`: tar members to write, extension -> bytes;
    `meta`: the sample's json; `index`: job columns of the index row; `stage_metrics`: counters
    of the batched calls this item led ({stage: {counter: n}}), summed by the sink; `timings`:
    seconds per step (benchmarks read them; synthesis writes them to the sample's json); `compute`:
    what each GPU-holding stage ran it on ({stage: `Compute.record()`}), the sample json's `compute`.
    """

    id: str
    row: int
    fields: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    members: dict[str, bytes] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    index: dict[str, Any] = field(default_factory=dict)
    error: ItemError | None = None
    stage_metrics: dict[str, dict[str, int]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    compute: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """Failed or deferred: later stages skip it either way."""
        return self.error is not None

    @property
    def deferred(self) -> bool:
        return self.error is not None and self.error.deferred

    def count(self, stage: str, counter: str, n: int = 1) -> None:
        """Add `n` to this item's `stage_metrics[stage][counter]`."""
        counters = self.stage_metrics.setdefault(stage, {})
        counters[counter] = counters.get(counter, 0) + n

    def record_time(self, step: str, started: float) -> None:
        """Record the seconds since `started` (a `time.perf_counter()` value) as `timings[step]`."""
        self.timings[step] = time.perf_counter() - started

    def fail(self, stage: str, exc: BaseException | str, error: str | None = None) -> None:
        """Mark the item failed; later stages skip it and the sink writes an error row."""
        if isinstance(exc, BaseException):
            self.error = ItemError(stage, error or type(exc).__name__, f"[{stage}] {exc}")
        else:
            self.error = ItemError(stage, error or "Error", f"[{stage}] {exc}")
        self.data.clear()
        self.members.clear()

    def defer(self, stage: str, error: str, message: str) -> None:
        """Leave the row for a later run (see `ItemError.deferred`); later stages skip it."""
        self.error = ItemError(stage, error, f"[{stage}] {message}", deferred=True)
        self.data.clear()
        self.members.clear()


def items_to_batch(items: list[Item]) -> pa.Table:
    return pa.Table.from_pydict(
        {
            "id": [i.id for i in items],
            "row": [i.row for i in items],
            "payload": [pickle.dumps(i, protocol=pickle.HIGHEST_PROTOCOL) for i in items],
        },
        schema=BATCH_SCHEMA,
    )


def batch_to_items(batch: pa.Table) -> list[Item]:
    return [pickle.loads(p) for p in batch.column("payload").to_pylist()]
