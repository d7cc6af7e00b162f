"""The stage contract's batch retry: halves before singles, outside the handler, OOM and sticky CUDA errors."""

from __future__ import annotations

import sys
import weakref

import pytest
import torch

from pipeline.engine.device_errors import DeviceContextError, classify_error
from pipeline.engine.item import Item
from pipeline.engine.sink import merge_stage_metrics
from pipeline.engine.stage import Resources, Stage

ILLEGAL_ACCESS = "CUDA error: an illegal memory access was encountered\nCompile with `TORCH_USE_CUDA_DSA` to enable device-side assertions."
OOM_MESSAGE = "CUDA out of memory. Tried to allocate 8.00 GiB. GPU 0 has a total capacity of 79.11 GiB"


class BatchStage(Stage):
    name = "batched"
    stateful = True


def rows(n: int) -> list[Item]:
    return [Item(f"r{i}", i, {}) for i in range(n)]


def ids(items: list[Item]) -> list[str]:
    return [item.id for item in items]


def test_a_bad_row_splits_the_batch_in_halves_until_only_it_fails() -> None:
    calls: list[list[str]] = []

    def fn(batch: list[Item]) -> None:
        calls.append(ids(batch))
        if any(item.id == "r5" for item in batch):
            raise ValueError("row r5 is broken")
        for item in batch:
            item.data["done"] = True

    items = rows(8)
    BatchStage().process_batch_isolating(items, fn)
    assert calls == [ids(items), ["r0", "r1", "r2", "r3"], ["r4", "r5", "r6", "r7"], ["r4", "r5"], ["r4"], ["r5"], ["r6", "r7"]]
    assert [item.data.get("done", False) for item in items] == [True] * 5 + [False] + [True] * 2
    assert items[5].error is not None and (items[5].error.error, items[5].error.message) == ("ValueError", "[batched] row r5 is broken")
    assert not items[5].deferred
    total = merge_stage_metrics(item.stage_metrics for item in items)
    assert total == {"batched": {"batches": 7, "batch_failures": 4, "splits": 3}}


def test_out_of_memory_empties_the_cache_after_the_failed_batch_is_freed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first call runs out of memory: the retry is two halves, run outside the except block, after the
    failed call's tensors are gone and `torch.cuda.empty_cache()` was called."""
    held: list[weakref.ref] = []
    seen: list[tuple[int, bool, bool]] = []  # (batch size, inside an exception handler?, failed call's tensor alive?)
    emptied: list[bool] = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(all(ref() is None for ref in held)))

    def fn(batch: list[Item]) -> None:
        seen.append((len(batch), sys.exc_info()[1] is not None, any(ref() is not None for ref in held)))
        activations = torch.zeros(len(batch), 1000)  # what a failed forward leaves referenced by its traceback
        held.append(weakref.ref(activations))
        if len(batch) > 2:
            raise torch.cuda.OutOfMemoryError(OOM_MESSAGE)
        for item in batch:
            item.data["out"] = float(activations.sum())

    items = rows(4)
    BatchStage().process_batch_isolating(items, fn)
    assert seen == [(4, False, False), (2, False, False), (2, False, False)]
    assert emptied == [True]
    assert all(item.error is None and item.data["out"] == 0.0 for item in items)
    assert merge_stage_metrics(item.stage_metrics for item in items)["batched"] == {"batches": 3, "batch_failures": 1, "splits": 1, "oom": 1}


@pytest.mark.parametrize("error", [torch.cuda.OutOfMemoryError(OOM_MESSAGE), RuntimeError(OOM_MESSAGE)], ids=["OutOfMemoryError", "RuntimeError"])
def test_a_row_out_of_memory_alone_is_deferred_not_an_error(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    calls: list[list[str]] = []

    def fn(batch: list[Item]) -> None:
        calls.append(ids(batch))
        if any(item.id == "r2" for item in batch):
            raise error

    items = rows(4)
    BatchStage().process_batch_isolating(items, fn)
    assert calls == [ids(items), ["r0", "r1"], ["r2", "r3"], ["r2"], ["r3"]]
    assert len(emptied) == 3  # after each out-of-memory call
    bad = items[2]
    assert bad.deferred and bad.failed  # later stages skip it; the sink writes it nowhere
    assert "re-run the same command" in bad.error.message
    assert [item.error for item in items if item is not bad] == [None] * 3
    total = merge_stage_metrics(item.stage_metrics for item in items)["batched"]
    assert (total["oom"], total["deferred_oom"], total["splits"]) == (3, 1, 2)


@pytest.mark.parametrize(
    "message",
    [ILLEGAL_ACCESS, "CUDA error: device-side assert triggered", "CUDA error: unspecified launch failure"],
)
def test_sticky_cuda_errors_propagate_instead_of_failing_rows(message: str) -> None:
    stage = BatchStage()

    def fn(batch: list[Item]) -> None:
        raise RuntimeError(message)

    items = rows(4)
    with pytest.raises(DeviceContextError, match="CUDA context is unusable") as caught:
        stage.process_batch_isolating(items, fn)
    assert str(caught.value.__cause__) == message
    assert [item.error for item in items] == [None] * 4  # no row is blamed: the batch is redone elsewhere
    with pytest.raises(DeviceContextError):
        stage.run_guarded(items[0], lambda item: fn([item]))
    assert items[0].error is None


def test_error_kinds() -> None:
    assert classify_error(torch.cuda.OutOfMemoryError("x")) == "oom"
    assert classify_error(RuntimeError("CUDA error: out of memory")) == "oom"  # before the sticky "CUDA error:" rule
    assert classify_error(RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED")) == "oom"
    assert classify_error(RuntimeError(ILLEGAL_ACCESS)) == "sticky"
    assert classify_error(RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED when calling cublasSgemm")) == "sticky"
    assert classify_error(ValueError("CUDA error: in a user's message")) == "row"  # only torch's RuntimeErrors
    assert classify_error(RuntimeError("expand(torch.FloatTensor{[188, 2]}, size=[188])")) == "row"


def test_a_sticky_error_exits_the_worker_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside Ray the stage's DeviceContextError ends the process (Ray restarts the actor, retries the batch)."""
    from pipeline.engine import ray_stages

    exits: list[int] = []

    def fake_exit(code: int) -> None:
        exits.append(code)
        raise SystemExit(code)

    monkeypatch.setattr(ray_stages.os, "_exit", fake_exit)

    class Broken(BatchStage):
        def process(self, items: list[Item]) -> None:
            self.process_batch_isolating(items, lambda batch: (_ for _ in ()).throw(RuntimeError(ILLEGAL_ACCESS)))

    with pytest.raises(SystemExit):
        ray_stages.run_stage(Broken(), rows(2))
    assert exits == [ray_stages.STICKY_EXIT_CODE]
    assert ray_stages.run_stage(BatchStage(), []) == []


def test_actor_pools_are_restarted_and_their_batches_retried() -> None:
    """Model actors get max_restarts (replace a dead actor) and a bounded max_task_retries (redo its batch)."""
    from pipeline.engine import ray_stages

    class Recorder:
        def __init__(self) -> None:
            self.kwargs: dict = {}

        def map_batches(self, fn, **kwargs):
            self.kwargs = kwargs
            return self

    model, cpu_task, gpu_task = Recorder(), Recorder(), Recorder()
    ray_stages.apply_stage(model, BatchStage(Resources(num_gpus=1.0)))
    assert model.kwargs["max_restarts"] == -1 and model.kwargs["max_task_retries"] == ray_stages.STICKY_RETRIES > 0

    class Task(Stage):
        name = "task"

    ray_stages.apply_stage(cpu_task, Task())
    assert "max_retries" not in cpu_task.kwargs  # Ray Data's own (unbounded) retries for CPU tasks
    ray_stages.apply_stage(gpu_task, Task(Resources(num_gpus=0.5)))
    assert gpu_task.kwargs["max_retries"] == ray_stages.STICKY_RETRIES


def test_actor_restarts_where_they_buy_something() -> None:
    """Restarts on a cluster (node loss) or a GPU (sticky CUDA errors); a local CPU run has neither and
    turns them off (no Ray error line in `hsp demo`); an explicit choice wins."""
    from pipeline.engine import ray_stages

    cpu, gpu = BatchStage(), BatchStage(Resources(num_gpus=0.5))
    assert not ray_stages.wants_actor_restarts(cpu, None)
    assert ray_stages.wants_actor_restarts(gpu, None)
    assert ray_stages.wants_actor_restarts(cpu, "10.0.0.1:6379")
    assert ray_stages.wants_actor_restarts(cpu, None, forced=True)
    assert not ray_stages.wants_actor_restarts(gpu, None, forced=False)

    class Recorder:
        def __init__(self) -> None:
            self.kwargs: dict = {}

        def map_batches(self, fn, **kwargs):
            self.kwargs = kwargs
            return self

    local = Recorder()
    ray_stages.apply_stage(local, cpu, actor_restarts=False)
    assert local.kwargs["max_restarts"] == 0 and "max_task_retries" not in local.kwargs
