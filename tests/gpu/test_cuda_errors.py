"""Real CUDA errors through the stage contract: an out-of-memory batch splits in halves with its memory
freed and the cache emptied, a row too big alone is deferred, a device-side assert ends the process.

The out-of-memory stage allocates real device memory per row under a memory fraction, so the errors
are the allocator's own; the device-side assert runs in a subprocess (it breaks the CUDA context).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from pipeline.engine.item import Item
from pipeline.engine.stage import Resources, Stage
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.gpu

MEMORY_FRACTION = 0.25  # of the device, for this test's own allocations


class AllocatingStage(Stage):
    """Each call allocates `per_row` bytes per row (`huge` times that for the row `huge_id`) on the device."""

    name = "allocating"
    stateful = True

    def __init__(self, device: str, per_row: int, huge_id: str, huge: int):
        super().__init__(Resources(num_gpus=1.0 if device == "cuda" else 0.0))
        self.target, self.per_row, self.huge_id, self.huge = device, per_row, huge_id, huge
        self.calls: list[tuple[int, int]] = []  # (rows, bytes allocated on the device when the call began)

    def process(self, items: list[Item]) -> None:
        self.process_batch_isolating(items, self._run)

    def _run(self, items: list[Item]) -> None:
        import torch

        allocated = torch.cuda.memory_allocated() if self.target == "cuda" else 0
        self.calls.append((len(items), allocated))
        need = sum(self.per_row * (self.huge if item.id == self.huge_id else 1) for item in items)
        if self.target == "cuda":
            torch.empty(need, dtype=torch.uint8, device="cuda").fill_(1)  # the allocator raises, not us
        elif need > 6 * self.per_row:  # the CPU rehearsal: the same decisions, raised by hand
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {need} bytes (rehearsal)")
        for item in items:
            item.data["done"] = 1


def test_out_of_memory_splits_in_halves_frees_the_batch_and_defers_a_row_too_big_alone(device, monkeypatch) -> None:
    import torch

    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(MEMORY_FRACTION)
        limit = int(MEMORY_FRACTION * torch.cuda.get_device_properties(0).total_memory)
    else:
        limit = 1 << 30
    emptied = []
    real_empty_cache = torch.cuda.empty_cache
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: (emptied.append(1), real_empty_cache()))
    per_row = int(0.15 * limit)  # 8 rows: 1.2 x the limit; 4 rows: 0.6 x; the huge row: 1.5 x alone
    stage = AllocatingStage(device, per_row, huge_id="r5", huge=10)
    baseline = torch.cuda.memory_allocated() if device == "cuda" else 0
    try:
        items = [Item(f"r{i}", i, {}) for i in range(8)]
        stage(items)
    finally:
        if device == "cuda":
            torch.cuda.set_per_process_memory_fraction(1.0)
    assert [rows for rows, _ in stage.calls] == [8, 4, 4, 2, 1, 1, 2]  # halves: no good row ran alone but r4
    assert all(allocated == baseline for _, allocated in stage.calls)  # the failed calls' memory was freed first
    assert len(emptied) == 4  # after each out-of-memory error
    assert items[5].deferred and "re-run the same command" in items[5].error.message
    assert [item.data.get("done") for i, item in enumerate(items) if i != 5] == [1] * 7
    counters = {}
    for item in items:
        for name, n in item.stage_metrics.get("allocating", {}).items():
            counters[name] = counters.get(name, 0) + n
    assert (counters["splits"], counters["oom"], counters["deferred_oom"]) == (3, 4, 1)


STICKY_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from pipeline.engine.device_errors import DeviceContextError
    from pipeline.engine.item import Item
    from pipeline.engine.stage import Stage

    class Indexing(Stage):
        name = "indexing"

    def out_of_bounds(batch):
        values = torch.zeros(4, device="cuda")
        print(values[torch.tensor([10], device="cuda")].sum().item())  # a device-side assert

    items = [Item("a", 0, {}), Item("b", 1, {})]
    try:
        Indexing().process_batch_isolating(items, out_of_bounds)
    except DeviceContextError as exc:
        print("STICKY", exc.__cause__.__class__.__name__, [i.error for i in items])
        sys.exit(0)
    print("NOT RAISED", [i.error for i in items])
    sys.exit(1)
    """
)


def test_a_device_side_assert_raises_instead_of_failing_rows(device) -> None:
    if device != "cuda":
        pytest.skip("a device-side assert needs a CUDA device (nothing to rehearse on CPU)")
    done = subprocess.run([sys.executable, "-c", STICKY_SCRIPT], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "STICKY" in done.stdout and "[None, None]" in done.stdout
