"""Staging upsampled members until their input tar is complete (the mirror layout's sink).

Ray Data hands the sink batches of finished members from any input tars, in any order; a
mirrored tar can only be written once every member of its input tar is back. So the sink stages:
per batch and input tar, one Parquet file under ``OUT/_state/mirror/<run>/<tar part>/`` with one
row group per member (key, extension, new bytes or the error, index facts), written under a
temporary name and renamed, named after the ids it holds (a retried task rewrites the same file).
The driver counts the staged members per tar and commits a tar when its count is complete
(`pipeline.engine.mirror_commit`), reading the bytes back one member at a time.

Staging lives under the run's id: files an older, killed run's leftover tasks still write are
never read, and the next run deletes them; a new run redoes its unfinished tars from the start.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.engine.item import Item, batch_to_items
from pipeline.engine.sink import StaleRunError, distinct_computes, merge_stage_metrics
from pipeline.io.output import STATE, OutputDir, part_name

STAGING = "mirror"

STAGED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("key", pa.string()),
        ("ext", pa.string()),
        ("data", pa.large_binary()),  # null when the member failed
        ("stage", pa.string()),
        ("error", pa.string()),
        ("message", pa.string()),
        ("deferred", pa.bool_()),
        ("index", pa.string()),  # json of the item's index facts
    ]
)
STAGED_SUMMARY_SCHEMA = pa.schema(
    [
        ("part", pa.string()),  # the input tar's part
        ("members", pa.int64()),
        ("deferred", pa.int64()),
        ("deferred_ids", pa.list_(pa.string())),
        ("seconds_in", pa.float64()),
        ("seconds_out", pa.float64()),
        ("stage_metrics", pa.string()),
        ("compute", pa.string()),  # JSON list of the distinct `compute` records of the tar's members
    ]
)


@dataclass(frozen=True)
class MirrorConfig:
    """Where the mirror job writes, which run it is, and its index schema."""

    out: str
    run_id: str
    job: str
    index_schema: pa.Schema


def staging_dir(out: OutputDir, run_id: str, part: str) -> str:
    return out.path(STATE, STAGING, run_id, part)


def _staged_row(item: Item) -> dict:
    error = item.error
    ext = item.fields["tar_member"]
    data = None if error is not None else item.members.get(item.fields["mirror_ext"])
    return {
        "id": item.id,
        "key": item.fields["tar_key"],
        "ext": ext,
        "data": data,
        "stage": error.stage if error else None,
        "error": error.error if error else None,
        "message": error.message if error else None,
        "deferred": bool(error and error.deferred),
        "index": json.dumps(item.index, default=str),
    }


def stage_members(items: list[Item], config: MirrorConfig) -> list[dict]:
    """Stage `items` (one file per input tar they belong to); one summary row per tar."""
    out = OutputDir(config.out)
    if out.current_run_id() != config.run_id:
        raise StaleRunError(f"run {config.run_id} is no longer the current run of {config.out}; not staging")
    by_part: dict[str, list[Item]] = {}
    for item in items:
        by_part.setdefault(item.fields["mirror_part"], []).append(item)
    rows = []
    for part, group in by_part.items():
        table = pa.Table.from_pylist([_staged_row(i) for i in group], schema=STAGED_SCHEMA)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, row_group_size=1)  # one member per row group: read back one at a time
        folder = staging_dir(out, config.run_id, part)
        with out.writing(folder):
            out.fs.create_dir(folder, recursive=True)
        out.write_atomic(f"{STATE}/{STAGING}/{config.run_id}/{part}", f"{part_name(i.id for i in group)}.parquet",
                         sink.getvalue().to_pybytes())
        deferred = [i.id for i in group if i.deferred]
        rows.append({
            "part": part,
            "members": len(group),
            "deferred": len(deferred),
            "deferred_ids": deferred[:20],
            "seconds_in": float(sum(i.index.get("source_duration") or 0.0 for i in group if not i.failed)),
            "seconds_out": float(sum(i.index.get("duration") or 0.0 for i in group if not i.failed)),
            "stage_metrics": json.dumps(merge_stage_metrics(i.stage_metrics for i in group), sort_keys=True),
            "compute": json.dumps(distinct_computes(i for i in group if not i.failed), sort_keys=True),
        })
    return rows


class StagedMembers:
    """The staged members of one tar in this run: facts of all, bytes of one at a time (a context manager)."""

    def __init__(self, out: OutputDir, run_id: str, part: str):
        self.out = out
        self.folder = staging_dir(out, run_id, part)
        self._files: list[pq.ParquetFile] = []
        self._handles = []
        self.facts: dict[tuple[str, str], dict] = {}
        self._where: dict[tuple[str, str], tuple[int, int]] = {}

    def __enter__(self) -> StagedMembers:
        from pyarrow import fs as pafs

        infos = self.out.fs.get_file_info(pafs.FileSelector(self.folder, allow_not_found=True))
        for info in sorted(infos, key=lambda i: i.path):
            if info.type != pafs.FileType.File or not info.base_name.endswith(".parquet") or info.base_name.startswith("."):
                continue
            handle = self.out.fs.open_input_file(info.path)
            self._handles.append(handle)
            parquet = pq.ParquetFile(handle)
            number = len(self._files)
            self._files.append(parquet)
            facts = parquet.read(columns=[c for c in STAGED_SCHEMA.names if c != "data"]).to_pylist()
            for row_group, row in enumerate(facts):
                member = (row["key"], row["ext"])
                row["index"] = json.loads(row["index"])
                self.facts[member] = row
                self._where[member] = (number, row_group)
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.close()

    def data(self, key: str, ext: str) -> bytes:
        number, row_group = self._where[(key, ext)]
        value = self._files[number].read_row_group(row_group, columns=["data"]).column(0)[0].as_py()
        if value is None:
            raise RuntimeError(f"staged member {key}.{ext} has no data")
        return value


class MirrorStagingSink:
    """Ray Data callable: a batch of items -> staged files, one summary row per input tar."""

    def __init__(self, config: MirrorConfig):
        self.config = config

    def __call__(self, batch: pa.Table) -> pa.Table:
        return pa.Table.from_pylist(stage_members(batch_to_items(batch), self.config), schema=STAGED_SUMMARY_SCHEMA)

