"""Test helpers that ship with the package, so users can check their own cluster setup too."""

from __future__ import annotations

import os

from pipeline.item import Item
from pipeline.stage import Resources, Stage


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
