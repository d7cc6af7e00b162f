"""The stage contract: what a job step declares, loads once, and does to a batch of items.

A stage names itself (the name shows in Ray's dashboard and in error rows), declares its
resources, loads models once in `setup()` (per actor), and processes a batch. Stateless stages
run as Ray tasks; stages with `stateful = True` (models) run as actor pools. One item raising
never fails the batch: the item becomes an error row and the others go on.

Batched model calls go through `process_batch_isolating`: a batch that raises is split in halves
until only the culprit fails; out-of-memory rows are left for a later run; a broken CUDA context
raises `DeviceContextError` so the process is replaced (see `pipeline.engine.device_errors`). What
happened is counted per stage (BATCH_COUNTERS) on the items and summed into the job summary.

Before `setup()` the Ray adapters call `prepare_device(policy, precision)`: it decides the device
the stage really uses (`pipeline.engine.compute`: a GPU the torch of this process cannot see stops
the job under --device cuda, falls back to CPU under --device auto), sets the precision, and makes
every batch of a GPU-holding stage stamp that record on its items (the sample json's `compute`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.engine.compute import Compute, actor_compute, precision_scope
from pipeline.engine.device_errors import DeviceContextError, ErrorKind, classify_error, release_device_memory
from pipeline.engine.item import Item

log = logging.getLogger(__name__)

BATCH_COUNTERS = ("batches", "batch_failures", "splits", "oom", "deferred_oom")
"""Counters of `process_batch_isolating`, per stage: calls of the batch function (retries included),
calls that raised, failed batches split in halves, out-of-memory errors, rows left for a later run."""
DEFERRED_HINT = "out of device memory even alone; left for a later run: re-run the same command to retry it"


@dataclass
class Resources:
    """What each task/actor of a stage needs, and how many actors (stateful stages only)."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory: int | None = None  # bytes, for Ray's scheduler
    actors: int = 1


class Stage:
    """Base class: override `process_item` (per item) or `process` (whole batch, e.g. GPU)."""

    name: str = "stage"
    stateful: bool = False
    batch_size: int = 16
    # Ray hands a whole input block to one task/actor: set this to split blocks first so an
    # actor pool spreads slow per-item work (e.g. YAAPT) over its actors.
    input_rows_per_block: int | None = None
    # the contract (see the module docstring): item.data keys read and written, manifest columns read
    inputs: tuple[str, ...] = ()
    optional_inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    field_inputs: tuple[str, ...] = ()
    # what this process computes on, once `prepare_device` ran (None: not prepared, e.g. a stage run directly)
    compute: Compute | None = None

    def __init__(self, resources: Resources | None = None):
        self.resources = resources or Resources()

    @property
    def device(self) -> str:
        """The torch device this stage uses: what `prepare_device` decided, else CUDA when it holds a GPU and torch sees one."""
        if self.compute is not None:
            return self.compute.device
        if self.resources.num_gpus > 0:
            import torch

            if torch.cuda.is_available():
                return "cuda"
        return "cpu"

    def required_inputs(self, item: Item) -> tuple[str, ...]:
        """The item.data keys this item must carry here (default `inputs`; mode-dependent stages add theirs)."""
        return self.inputs

    def _check_inputs(self, item: Item) -> bool:
        """Fail `item` when it lacks a required input: the stage list is broken, not the row."""
        missing = [key for key in self.required_inputs(item) if key not in item.data]
        if missing:
            item.fail(self.name, f"stage {self.name!r} needs item.data[{missing[0]!r}], which no earlier stage wrote "
                      "(the job's stage list is broken: report it)", error="StageContractError")
        return not missing

    def prepare_device(self, policy: str = "auto", precision: str = "fp32") -> Compute:
        """Decide this process's device and precision before `setup()` (`pipeline.engine.compute.actor_compute`).

        `policy` is the run's --device; raises `DeviceUnavailableError` when it is "cuda" and the torch
        here cannot see the GPU Ray assigned. Called once per actor (or task process) by the Ray adapters.
        """
        self.compute = actor_compute(self.name, self.resources.num_gpus, policy, precision)
        return self.compute

    def setup(self) -> None:
        """Load models or other expensive state; called once per actor (or per task)."""

    def process_item(self, item: Item) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement process_item or process")

    def process(self, items: list[Item]) -> None:
        """Process the live (not failed) items of a batch in place."""
        for item in items:
            self.run_guarded(item, self.process_item)

    def run_guarded(self, item: Item, fn: Callable[[Item], None]) -> None:
        """Run `fn(item)`, turning an exception into an error on the item.

        Out of device memory defers the item instead; a sticky CUDA error raises `DeviceContextError`.
        """
        outcome = self._attempt(lambda: fn(item))
        if outcome is not None:
            self._settle_single(item, *outcome)

    def process_batch_isolating(self, items: list[Item], fn: Callable[[list[Item]], None]) -> None:
        """Run a batched `fn`; if it raises, retry the halves (recursively) so only the culprit fails.

        `fn` must write to its items only after the whole batch succeeded (compute into locals,
        assign at the end): a retry then sees exactly the input the failed call was given. Retries run
        after the exception is dropped, outside its handler, so the failed call's tensors are free;
        an out-of-memory error also empties the CUDA cache first. A row that runs out of memory alone
        is deferred (written nowhere: the next run retries it); any other error of a single row
        becomes its error row; a sticky CUDA error raises `DeviceContextError`.
        """
        pending = [list(items)] if items else []
        while pending:
            batch = pending.pop()
            batch[0].count(self.name, "batches")
            outcome = self._attempt(lambda batch=batch: fn(batch))
            if outcome is None:
                continue
            kind, error, message = outcome
            lead = batch[0]
            lead.count(self.name, "batch_failures")
            if len(batch) == 1:
                self._settle_single(lead, kind, error, message)
                continue
            lead.count(self.name, "splits")
            if kind == "oom":
                lead.count(self.name, "oom")
                release_device_memory()
            half = (len(batch) + 1) // 2
            log.warning("[%s] batch of %d failed (%s: %s); retrying as %d + %d", self.name, len(batch), error, message, half, len(batch) - half)
            pending.append(batch[half:])
            pending.append(batch[:half])  # popped first: the first half runs first

    def _attempt(self, call: Callable[[], None]) -> tuple[ErrorKind, str, str] | None:
        """Run `call`; None when it succeeded, else (kind, exception type, message) of its error.

        Only strings leave the handler, so the exception, its traceback and the frames (and tensors)
        they hold are released as soon as this returns.
        """
        try:
            call()
        except DeviceContextError:
            raise
        except Exception as exc:  # a row's failure must never take down the batch
            kind = classify_error(exc)
            if kind == "sticky":
                raise DeviceContextError(
                    f"[{self.name}] {type(exc).__name__}: {exc}; this process's CUDA context is unusable, "
                    "so the worker exits and Ray retries its batch in a fresh process"
                ) from exc
            return kind, type(exc).__name__, str(exc)
        return None

    def _settle_single(self, item: Item, kind: ErrorKind, error: str, message: str) -> None:
        """The final outcome of one item's failed call: deferred on out-of-memory, else its error row."""
        if kind == "oom":
            item.count(self.name, "oom")
            item.count(self.name, "deferred_oom")
            release_device_memory()
            log.warning("[%s] %s alone ran out of device memory; deferred to a later run", self.name, item.id)
            item.defer(self.name, error, f"{message} ({DEFERRED_HINT})")
        else:
            item.fail(self.name, message, error=error)

    def __call__(self, items: list[Item]) -> list[Item]:
        """Process the live items (under bf16 autocast when the run asks for it); a stage holding a GPU
        stamps what it computed on on each of them (`Item.compute`)."""
        live = [item for item in items if not item.failed and self._check_inputs(item)]
        if live:
            with precision_scope(self.compute):
                self.process(live)
            if self.compute is not None and self.resources.num_gpus > 0:
                record = self.compute.record()
                for item in live:
                    item.compute[self.name] = record
        return items
