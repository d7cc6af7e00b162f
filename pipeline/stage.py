"""The stage contract: what a job step declares, loads once, and does to a batch of items.

A stage names itself (the name shows in Ray's dashboard and in error rows), declares its
resources, loads models once in `setup()` (per actor), and processes a batch. Stateless stages
run as Ray tasks; stages with `stateful = True` (models) run as actor pools. One item raising
never fails the batch: the item becomes an error row and the others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.item import Item

log = logging.getLogger(__name__)


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

    def __init__(self, resources: Resources | None = None):
        self.resources = resources or Resources()

    @property
    def device(self) -> str:
        """The torch device this stage should use: CUDA when Ray gave it a GPU and torch sees one."""
        if self.resources.num_gpus > 0:
            import torch

            if torch.cuda.is_available():
                return "cuda"
        return "cpu"

    def setup(self) -> None:
        """Load models or other expensive state; called once per actor (or per task)."""

    def process_item(self, item: Item) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement process_item or process")

    def process(self, items: list[Item]) -> None:
        """Process the live (not failed) items of a batch in place."""
        for item in items:
            self.run_guarded(item, self.process_item)

    def run_guarded(self, item: Item, fn: Callable[[Item], None]) -> None:
        """Run `fn(item)`, turning an exception into an error on the item."""
        try:
            fn(item)
        except Exception as exc:  # a row's failure must never take down the batch
            item.fail(self.name, exc)

    def process_batch_isolating(self, items: list[Item], fn: Callable[[list[Item]], None]) -> None:
        """Run a batched `fn`; if it raises, retry item by item so only the culprit fails."""
        try:
            fn(items)
        except Exception as exc:
            if len(items) == 1:
                items[0].fail(self.name, exc)
                return
            log.warning("[%s] batch of %d failed (%s); retrying items one by one", self.name, len(items), exc)
            for item in items:
                self.run_guarded(item, lambda one: fn([one]))

    def __call__(self, items: list[Item]) -> list[Item]:
        live = [item for item in items if not item.failed]
        if live:
            self.process(live)
        return items
