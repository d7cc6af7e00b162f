"""Test helpers that ship with the package, so users can check their own cluster setup too."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from pipeline.engine.item import Item
from pipeline.engine.job import Job, JobSpec
from pipeline.engine.stage import Resources, Stage
from pipeline.prepare import PREPARE, PrepareConfig, prepare_job


class PlacementProbeStage(Stage):
    """A stateful stage that records where it ran: GPU ids Ray assigned, CUDA_VISIBLE_DEVICES, node."""

    name = "placement_probe"
    stateful = True
    batch_size = 4

    def __init__(self, resources: Resources | None = None):
        super().__init__(resources or Resources(num_cpus=0.5, num_gpus=1.0, actors=1))

    def setup(self) -> None:
        import ray

        context = ray.get_runtime_context()
        self.placement = {
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "node_id": context.get_node_id(),
            "node_ip": ray.util.get_node_ip_address(),
            "pid": os.getpid(),
        }

    def process_item(self, item: Item) -> None:
        item.meta["placement"] = self.placement


class SlowProbeStage(PlacementProbeStage):
    """`PlacementProbeStage` that also sleeps `delay` seconds per item, so a test can kill a node mid-job.

    `batch_size` 1 with one actor makes rows reach the shard writer one by one (parts commit in turn).
    `hold`: a file path; after its first row, an actor waits until that file exists (at most
    HOLD_SECONDS) before each further row, so a test can act between two commits without racing.
    """

    HOLD_SECONDS = 120.0

    def __init__(self, resources: Resources | None = None, delay: float = 0.0, batch_size: int = 4, hold: str = ""):
        super().__init__(resources)
        self.delay = delay
        self.batch_size = batch_size
        self.hold = hold
        self._rows_seen = 0
        # Ray Data emits a task's output when the task ends: one row per block makes each row reach
        # the shard writer as soon as it is done, not with the rest of its block
        self.input_rows_per_block = 1 if batch_size == 1 else None

    def process_item(self, item: Item) -> None:
        if self.hold and self._rows_seen:
            deadline = time.time() + self.HOLD_SECONDS
            while not os.path.exists(self.hold) and time.time() < deadline:
                time.sleep(0.05)
        self._rows_seen += 1
        if self.delay:
            time.sleep(self.delay)
        super().process_item(item)


@dataclass(frozen=True)
class ProbeConfig:
    """The probe stage's GPUs and actors, and its fault-test knobs (`SlowProbeStage`)."""

    num_gpus: float = 1.0  # GPUs per probe actor
    actors: int = 1
    delay: float = 0.0  # seconds to sleep per item (fault tests)
    batch_size: int = 4  # rows per probe call (1: parts commit one by one)
    hold: str = ""  # after its first row, each probe actor waits for this file to exist (fault tests)


def probe_job(config: ProbeConfig) -> Job:
    """`prepare` (decode + FLAC) plus a GPU stage that records its placement in each sample's json.

    A small real job for checking a cluster: GPU samples must show a GPU node's ip and GPU ids.
    """
    base = prepare_job(PrepareConfig())

    def build() -> list[Stage]:
        probe = SlowProbeStage(Resources(num_cpus=0.5, num_gpus=config.num_gpus, actors=config.actors), delay=config.delay,
                               batch_size=config.batch_size, hold=config.hold)
        return [*base.build_stages(), probe]

    return PROBE.job(build, {**base.output_options, "num_gpus": config.num_gpus})


PROBE = JobSpec(name="probe", command=("probe",), config=ProbeConfig, build=probe_job, index_fields=PREPARE.index_fields)


class OutOfMemoryProbeStage(Stage):
    """A stateful batched stage that runs out of "device memory" on purpose, to check the retry rules.

    Any call with more than `max_rows` rows raises `torch.cuda.OutOfMemoryError`, and so does every
    call holding one of `ids` while the file `until` does not exist (create it to let a re-run
    finish those rows). Rows that pass get `meta['oom_probe'] = True`. Needs no GPU.
    """

    name = "oom_probe"
    stateful = True
    batch_size = 4

    def __init__(self, *, max_rows: int, ids: tuple[str, ...] = (), until: str = "", resources: Resources | None = None):
        super().__init__(resources or Resources(num_cpus=0.5))
        self.max_rows = max_rows
        self.ids = frozenset(ids)
        self.until = until

    def process(self, items: list[Item]) -> None:
        self.process_batch_isolating(items, self._run)

    def _run(self, items: list[Item]) -> None:
        import torch

        blocked = not (self.until and os.path.exists(self.until)) and any(item.id in self.ids for item in items)
        if len(items) > self.max_rows or blocked:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (probe: {len(items)} rows, at most {self.max_rows})")
        for item in items:
            item.meta["oom_probe"] = True


class StickyErrorProbeStage(Stage):
    """A stateful batched stage whose first call anywhere raises a sticky CUDA error ("illegal memory
    access") and writes its pid to the file `marker`; later calls pass (`meta['sticky_probe']`).
    Checks that a broken CUDA context restarts the actor and redoes its batch. Needs no GPU."""

    name = "sticky_probe"
    stateful = True
    batch_size = 4

    def __init__(self, *, marker: str, resources: Resources | None = None):
        super().__init__(resources or Resources(num_cpus=0.5))
        self.marker = marker

    def process(self, items: list[Item]) -> None:
        self.process_batch_isolating(items, self._run)

    def _run(self, items: list[Item]) -> None:
        if not os.path.exists(self.marker):
            with open(self.marker, "w") as handle:
                handle.write(str(os.getpid()))
            raise RuntimeError("CUDA error: an illegal memory access was encountered (probe)")
        for item in items:
            item.meta["sticky_probe"] = os.getpid()

