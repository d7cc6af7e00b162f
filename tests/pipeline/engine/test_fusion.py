"""Operator groups: which stages share a task, how a group runs them, and the rows the first operator reads."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pyarrow as pa

from pipeline.engine.fusion import group_stages, run_group
from pipeline.engine.item import Item
from pipeline.engine.ray_stages import run_stage
from pipeline.engine.rows import items_from_rows, row_blocks
from pipeline.engine.runner import parts_rows
from pipeline.engine.stage import Resources, Stage


class Step(Stage):
    """Records (stage, ids) per call; writes data[name] and a member."""

    calls: ClassVar[list[tuple[str, list[str]]]] = []

    def __init__(self, name: str, batch_size: int = 2, resources: Resources | None = None, stateful: bool = False):
        super().__init__(resources)
        self.name, self.batch_size, self.stateful = name, batch_size, stateful

    def process(self, items: list[Item]) -> None:
        Step.calls.append((self.name, [i.id for i in items]))
        for item in items:
            item.data[self.name] = True
            item.members[f"{self.name}.txt"] = b"x"


def names(groups) -> list[tuple[str, bool]]:
    return [(g.name, g.commits) for g in groups]


def test_stateless_cpu_stages_share_a_group_and_the_last_one_commits() -> None:
    decode, encode = Step("decode"), Step("encode")
    assert names(group_stages([decode, encode])) == [("decode+encode+write_shards", True)]

    model = Step("model", stateful=True)
    gpu_task = Step("gpu_task", resources=Resources(num_gpus=0.5))
    split = Step("split")
    split.input_rows_per_block = 1
    groups = group_stages([Step("a"), Step("b"), model, Step("c"), gpu_task, Step("d"), split, Step("e")])
    assert names(groups) == [("a+b", False), ("model", False), ("c", False), ("gpu_task", False), ("d", False),
                             ("split+e+write_shards", True)]
    assert names(group_stages([Step("a"), model])) == [("a", False), ("model", False)]  # a model last: a separate sink


def test_a_group_needs_the_most_any_of_its_stages_needs() -> None:
    group = group_stages([Step("a", resources=Resources(num_cpus=1.0, memory=1 << 20)),
                          Step("b", batch_size=8, resources=Resources(num_cpus=2.0, memory=1 << 30))])[0]
    assert (group.resources.num_cpus, group.resources.memory, group.batch_size) == (2.0, 1 << 30, 8)


def test_a_group_runs_depth_first_in_chunks_with_each_stages_batch_size() -> None:
    Step.calls = []
    items = [Item(f"r{i}", i, {}) for i in range(5)]
    stages = [Step("one", batch_size=4), Step("two", batch_size=2)]
    run_group(stages, items, run_stage, drop_data=True)
    assert Step.calls == [
        ("one", ["r0", "r1", "r2", "r3"]), ("two", ["r0", "r1"]), ("two", ["r2", "r3"]),  # chunk 1 through both
        ("one", ["r4"]), ("two", ["r4"]),
    ]
    assert all(not item.data and set(item.members) == {"one.txt", "two.txt"} for item in items)


def test_a_failed_row_skips_the_later_stages_of_its_group() -> None:
    class Breaks(Step):
        def process(self, items: list[Item]) -> None:
            for item in items:
                self.run_guarded(item, lambda i: (_ for _ in ()).throw(ValueError("bad")) if i.id == "r1" else None)

    Step.calls = []
    items = [Item(f"r{i}", i, {}) for i in range(3)]
    run_group([Breaks("first", batch_size=3), Step("second", batch_size=3)], items, run_stage)
    assert items[1].error is not None and items[1].error.message == "[first] bad"
    assert Step.calls == [("second", ["r0", "r2"])]


def test_row_blocks_carry_the_manifest_columns_resolved_paths_and_problems(tmp_path: Path) -> None:
    table = pa.table({"id": ["a", "b", "c", "d", "e"], "audio": ["x.wav", None, "/abs/y.wav", "s3://b/z.wav", "w.wav"],
                      "text": ["t0", "t1", None, "t3", "t4"], "seed": [0, 1, 2, 3, 4]})
    blocks = row_blocks(table, [0, 1, 2, 4], {1: "column 'audio': required value is null"},
                        path_columns=["audio", "target_audio"], base_dir=str(tmp_path), rows_per_block=3)
    assert [b.num_rows for b in blocks] == [3, 1]
    items = [item for block in blocks for item in items_from_rows(block)]
    assert [(i.id, i.row) for i in items] == [("a", 0), ("b", 1), ("c", 2), ("e", 4)]
    assert items[0].fields == {"id": "a", "audio": str(tmp_path / "x.wav"), "text": "t0", "seed": 0}
    assert items[2].fields["audio"] == "/abs/y.wav" and items[2].fields["text"] is None
    assert items[1].failed and items[1].error.stage == "validate" and items[1].error.error == "InvalidRow"
    assert "required value is null" in items[1].error.message
    assert not any(i.failed for i in items if i.id != "b")


def test_parts_spread_small_runs_over_the_cpus_and_never_exceed_rows_per_shard() -> None:
    assert parts_rows(1000, 1000, cluster_cpus=4, cpus_per_task=1) == 250
    assert parts_rows(10_000, 1000, cluster_cpus=4, cpus_per_task=1) == 1000
    assert parts_rows(10_000, 1000, cluster_cpus=64, cpus_per_task=2) == 313
    assert parts_rows(3, 4, cluster_cpus=4, cpus_per_task=1) == 1
    assert parts_rows(0, 4, cluster_cpus=4, cpus_per_task=1) == 1
