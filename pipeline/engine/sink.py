"""Writing a batch of finished items as WebDataset shard(s) plus its index and errors parts.

Runs inside Ray tasks, close to the data. Each call commits one part (see `pipeline.io.output`):
tar(s) first, then the errors part, then the index part. Rename protocol (local disks): each is
written under a temporary name and renamed. Conditional protocol (object stores): tars and the
errors part go straight to names carrying this attempt's token, and the index part is created
exclusively; a part whose index part already exists (a retried task) is not written again, and
an attempt whose create is refused (another attempt won) deletes its own files. Tars are
reproducible: members are sorted by key and carry a fixed mtime.

Deferred items (out of device memory even alone, see `Item.defer`) are written nowhere: the
part is named after the ids it commits, so a later run that finishes a deferred row writes a
part of its own and never a name already taken.
"""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.engine.compute import sample_compute
from pipeline.engine.item import Item
from pipeline.errors import OutputError
from pipeline.io.keys import sample_key
from pipeline.io.output import (
    ATTEMPT_KEY,
    ERRORS,
    ERRORS_SCHEMA,
    INDEX,
    RENAME,
    SCHEMA_VERSION,
    SHARDS,
    TMP_PREFIX,
    OutputDir,
    new_attempt,
    part_name,
)

FIXED_MTIME = 1_700_000_000  # reproducible tars: content, not wall-clock, decides the bytes
MAX_DEFERRED_IDS = 20  # ids of deferred rows carried to the summary (the count is always complete)


class StaleRunError(OutputError):
    """A writer of an older run tried to commit after a newer run started on the same output."""


@dataclass(frozen=True)
class SinkConfig:
    out: str
    run_id: str
    job: str
    index_schema: pa.Schema
    max_shard_bytes: int
    package_version: str
    commit_protocol: str = RENAME  # "conditional" on object stores (see pipeline.io.output)


@dataclass
class PartSummary:
    part: str
    samples: int
    errors: int
    shards: list[str]
    bytes: int
    seconds_in: float
    seconds_out: float
    deferred: int = 0
    deferred_ids: list[str] = field(default_factory=list)
    stage_metrics: dict[str, dict[str, int]] = field(default_factory=dict)
    compute: list[dict[str, Any]] = field(default_factory=list)  # the distinct sample `compute` records


def sample_json(item: Item, key: str, config: SinkConfig) -> bytes:
    """The sample's json member: who wrote it, what it ran on (`compute`), and the stages' `item.meta`."""
    meta: dict[str, Any] = {
        "id": item.id,
        "key": key,
        "job": config.job,
        "schema_version": SCHEMA_VERSION,
        "package_version": config.package_version,
    }
    meta.update(item.meta)
    meta["compute"] = sample_compute(item.compute)
    return json.dumps(meta, sort_keys=True, ensure_ascii=False, default=_json_default).encode("utf-8")


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def distinct_computes(items: Iterable[Item]) -> list[dict[str, Any]]:
    """The distinct sample `compute` records of `items` (what the driver adds up into the run's compute)."""
    found: dict[str, dict[str, Any]] = {}
    for item in items:
        record = sample_compute(item.compute)
        found.setdefault(json.dumps(record, sort_keys=True), record)
    return [found[key] for key in sorted(found)]


def _group_by_bytes(samples: list[tuple[str, Item, dict[str, bytes]]], max_bytes: int) -> list[list[tuple[str, Item, dict[str, bytes]]]]:
    groups: list[list[tuple[str, Item, dict[str, bytes]]]] = [[]]
    size = 0
    for entry in samples:
        entry_bytes = sum(len(b) + 1024 for b in entry[2].values())  # + tar header and padding
        if groups[-1] and size + entry_bytes > max_bytes:
            groups.append([])
            size = 0
        groups[-1].append(entry)
        size += entry_bytes
    return [g for g in groups if g]


def _write_tar(out: OutputDir, name: str, group: list[tuple[str, Item, dict[str, bytes]]]) -> int:
    # conditional protocol: the name is this attempt's own, so the object is written in place (an
    # object appears whole or not at all) and deleted if the write fails
    tmp = out.path(SHARDS, name) if out.conditional else out.path(SHARDS, f"{TMP_PREFIX}{uuid.uuid4().hex}-{name}")
    written = 0
    with out.writing(out.path(SHARDS, name), tmp=tmp):
        with out.fs.open_output_stream(tmp) as stream, tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for key, _item, members in group:
                for ext in sorted(members):
                    data = members[ext]
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    info.mtime = FIXED_MTIME
                    info.mode = 0o644
                    tar.addfile(info, io.BytesIO(data))
                    written += len(data)
        if tmp != out.path(SHARDS, name):
            out.fs.move(tmp, out.path(SHARDS, name))
    return written


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def commit_part(items: list[Item], config: SinkConfig) -> PartSummary:
    """Write `items` as one committed part; returns what was written.

    Deferred items are left out (and counted); when nothing is left to commit, nothing is written
    and the summary's `part` is "".
    """
    out = OutputDir(config.out, protocol=config.commit_protocol)
    _check_fence(out, config)
    deferred = [i.id for i in items if i.deferred]
    metrics = merge_stage_metrics(i.stage_metrics for i in items)
    committed = [i for i in items if not i.deferred]
    if not committed:
        return PartSummary("", 0, 0, [], 0, 0.0, 0.0, len(deferred), deferred[:MAX_DEFERRED_IDS], metrics)
    computes = distinct_computes(i for i in committed if not i.failed)
    name = part_name(item.id for item in items)  # deferred ids too: see pipeline.io.output
    if out.conditional and out.exists(INDEX, f"part-{name}.parquet"):
        return _committed_summary(out, name, deferred, metrics, computes)  # a retried task whose first try committed
    attempt = new_attempt() if out.conditional else ""
    stem = f"{name}-{attempt}" if attempt else name
    ok = sorted((i for i in committed if not i.failed), key=lambda i: sample_key(i.id))
    failed = [i for i in committed if i.failed]

    samples = []
    for item in ok:
        key = sample_key(item.id)
        members = dict(item.members)
        members["json"] = sample_json(item, key, config)
        samples.append((key, item, members))
    groups = _group_by_bytes(samples, config.max_shard_bytes)
    shard_names = [f"shard-{stem}.tar"] if len(groups) == 1 else [f"shard-{stem}-{k:03d}.tar" for k in range(len(groups))]

    index_rows: list[dict[str, Any]] = []
    total_bytes = 0
    for shard, group in zip(shard_names, groups, strict=True):
        total_bytes += _write_tar(out, shard, group)
        for key, item, _members in group:
            row = {"id": item.id, "key": key, "shard": f"{SHARDS}/{shard}", "row": item.row}
            row.update(item.index)
            index_rows.append(row)

    error_rows = [
        {"id": i.id, "row": i.row, "stage": i.error.stage, "error": i.error.error, "message": i.error.message}
        for i in failed
        if i.error is not None
    ]
    errors_name = f"part-{stem}.parquet"
    out.write_atomic(ERRORS, errors_name, _parquet_bytes(pa.Table.from_pylist(error_rows, schema=ERRORS_SCHEMA)))
    index_table = pa.Table.from_pylist(index_rows, schema=config.index_schema)
    if not out.conditional:
        out.write_atomic(INDEX, f"part-{name}.parquet", _parquet_bytes(index_table))  # the commit point
    else:
        index_table = index_table.replace_schema_metadata({**(index_table.schema.metadata or {}), ATTEMPT_KEY: attempt.encode("ascii")})
        _check_fence(out, config)  # again, as late as possible: the shards took a while
        if not out.commit_index(name, _parquet_bytes(index_table), attempt):  # the commit point
            for path in [out.path(SHARDS, s) for s in shard_names[: len(groups)]] + [out.path(ERRORS, errors_name)]:
                out.fs.delete_file(path)  # this attempt's own names: nobody else's file
            return _committed_summary(out, name, deferred, metrics, computes)

    return PartSummary(
        part=name,
        samples=len(index_rows),
        errors=len(error_rows),
        shards=[f"{SHARDS}/{s}" for s in shard_names] if groups else [],
        bytes=total_bytes,
        seconds_in=float(sum(r.get("source_duration") or 0.0 for r in index_rows)),
        seconds_out=float(sum(r.get("duration") or 0.0 for r in index_rows)),
        deferred=len(deferred),
        deferred_ids=deferred[:MAX_DEFERRED_IDS],
        stage_metrics=metrics,
        compute=computes,
    )


def _check_fence(out: OutputDir, config: SinkConfig) -> None:
    problem = out.writer_problem(config.run_id)
    if problem is not None:
        raise StaleRunError(f"{problem}; not committing")


def _committed_summary(out: OutputDir, name: str, deferred: list[str], metrics: dict[str, dict[str, int]],
                       computes: list[dict[str, Any]]) -> PartSummary:
    """What an already committed part holds (another attempt of this task wrote it), read from its index part."""
    with out.fs.open_input_file(out.path(INDEX, f"part-{name}.parquet")) as handle:
        index = pq.read_table(handle, columns=["shard", "duration", "source_duration"]).to_pylist()
    errors = [f for f in out.part_files(ERRORS) if f.startswith(f"part-{name}")]
    failed = 0
    for errors_name in errors:
        with out.fs.open_input_file(out.path(ERRORS, errors_name)) as handle:
            failed += pq.read_metadata(handle).num_rows
    return PartSummary(
        part=name,
        samples=len(index),
        errors=failed,
        shards=sorted({r["shard"] for r in index}),
        bytes=0,
        seconds_in=float(sum(r.get("source_duration") or 0.0 for r in index)),
        seconds_out=float(sum(r.get("duration") or 0.0 for r in index)),
        deferred=len(deferred),
        deferred_ids=deferred[:MAX_DEFERRED_IDS],
        stage_metrics=metrics,
        compute=computes,
    )


def merge_stage_metrics(parts: Iterable[dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    """Sum {stage: {counter: n}} mappings (items' or parts' stage metrics)."""
    total: dict[str, dict[str, int]] = {}
    for part in parts:
        for stage, counters in part.items():
            into = total.setdefault(stage, {})
            for counter, n in counters.items():
                into[counter] = into.get(counter, 0) + int(n)
    return total
