"""Which stages share one Ray Data operator, and how a shared operator runs them.

Every operator boundary costs per row: the items are pickled into the batch column, stored, and
unpickled by the next task (a 1 s clip's decoded audio is 64 KB), and every block is a task to
launch. On short rows that cost more than the work (bench/bench_scale.py). So consecutive stateless
CPU stages form one group that runs in one task, item objects passed from stage to stage in memory,
and a group that ends the job also commits the part (the shard sink) in the same task: for
`hsp prepare` the whole job is one operator and nothing but the manifest rows and one summary row
per part crosses the object store.

Model stages (stateful: an actor pool each) and GPU tasks stay alone in their group: they are sized
and restarted on their own (`pipeline.engine.ray_stages`). A stage that asks for its input split
into smaller blocks (`input_rows_per_block`) starts a group, as the split happens before it.

Inside a group the stages run depth first over chunks of the group's batch size: chunk 1 through
every stage, then chunk 2, so a task holds one chunk's working data (`item.data`), not the whole
block's; each stage still gets batches of its own `batch_size`. Working data is dropped when the
last stage is done: the sink writes members, meta and index only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipeline.engine.item import Item
from pipeline.engine.stage import Resources, Stage


def fusable(stage: Stage) -> bool:
    """A stateless CPU stage: it can share a task with its neighbours."""
    return not stage.stateful and not stage.resources.num_gpus


@dataclass
class StageGroup:
    """Stages that run in one Ray Data operator; `commits`: the operator also writes the part (sink)."""

    stages: list[Stage]
    commits: bool = False

    @property
    def name(self) -> str:
        """Stage names joined by '+', and '+write_shards' when it commits: the operator's name in Ray."""
        return "+".join([s.name for s in self.stages] + (["write_shards"] if self.commits else []))

    @property
    def stateful(self) -> bool:
        return self.stages[0].stateful

    @property
    def batch_size(self) -> int:
        """Rows per chunk run through the whole group (the largest stage batch)."""
        return max(s.batch_size for s in self.stages)

    @property
    def input_rows_per_block(self) -> int | None:
        return self.stages[0].input_rows_per_block

    @property
    def resources(self) -> Resources:
        """One task runs the stages one after another: it needs the most any of them needs."""
        if len(self.stages) == 1:
            return self.stages[0].resources
        memories = [s.resources.memory for s in self.stages if s.resources.memory]
        return Resources(
            num_cpus=max(s.resources.num_cpus for s in self.stages),
            num_gpus=0.0,
            memory=max(memories) if memories else None,
        )


def group_stages(stages: list[Stage]) -> list[StageGroup]:
    """`stages` in operator groups (see the module docstring); the last group commits when it is stateless CPU work."""
    groups: list[StageGroup] = []
    for stage in stages:
        joins = groups and fusable(stage) and all(fusable(s) for s in groups[-1].stages) and not stage.input_rows_per_block
        if joins:
            groups[-1].stages.append(stage)
        else:
            groups.append(StageGroup([stage]))
    if groups and all(fusable(s) for s in groups[-1].stages):
        groups[-1].commits = True
    return groups


def run_group(
    stages: list[Stage], items: list[Item], run: Callable[[Stage, list[Item]], list[Item]], *, drop_data: bool = False
) -> list[Item]:
    """Run `stages` over `items` depth first in chunks of the largest stage batch; `run(stage, batch)` calls one stage.

    `drop_data`: clear each chunk's `item.data` after its last stage (what follows is the sink).
    """
    chunk = max(s.batch_size for s in stages)
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        for stage in stages:
            for at in range(0, len(part), stage.batch_size):
                run(stage, part[at : at + stage.batch_size])
        if drop_data:
            for item in part:
                item.data.clear()
    return items
