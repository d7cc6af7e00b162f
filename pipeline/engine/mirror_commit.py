"""Committing one mirrored tar: its tar, its errors part, then its index part (the commit point).

A tar is the unit of exactly-once in the mirror layout: its index part
``OUT/index.parquet/part-<tar part>.parquet`` exists exactly when the mirrored tar is finished.
The tar is renamed into place first, then the errors part, then the index part; a run killed
anywhere before the index part leaves the tar unfinished, and the next run writes it again from
the start. A finished tar is never opened for writing again: the next run skips it.

Every sample of the input tar ends in exactly one of the two parts: written (index row) or refused
(its plan's reason, or the first failed audio member's error: errors row).
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
from pyarrow import fs as pafs

from pipeline.engine.mirror_sink import MirrorConfig, StagedMembers, staging_dir
from pipeline.engine.sink import StaleRunError, _parquet_bytes
from pipeline.io.mirror_writer import write_mirror_tar
from pipeline.io.output import ERRORS, ERRORS_SCHEMA, INDEX, OutputDir
from pipeline.io.tar_plan import MirrorSample, TarPlan

PLAN_STAGE = "mirror"  # the stage named in error rows of samples refused by the plan
MEMBER_FACTS = ("sample_rate", "duration", "source_sample_rate", "source_duration", "source_channels", "gain",
                "peak", "source_peak", "narrowband_source", "clipped_source", "silent_source", "truncated")


def sample_id(plan: TarPlan, key: str) -> str:
    """The id of a sample in the index and errors tables: the mirrored tar's name, then the key."""
    return f"{plan.name}/{key}"


def _error_row(plan: TarPlan, sample: MirrorSample, stage: str, error: str, message: str) -> dict[str, Any]:
    return {"id": sample_id(plan, sample.key), "row": sample.position, "stage": stage, "error": error, "message": message}


def _index_row(plan: TarPlan, sample: MirrorSample, staged: StagedMembers) -> dict[str, Any]:
    facts = [staged.facts[(sample.key, ext)]["index"] for ext in sample.audio]
    row: dict[str, Any] = dict(facts[0]) if facts else {}
    row.update({
        "id": sample_id(plan, sample.key),
        "key": sample.key,
        "shard": plan.name,
        "row": sample.position,
        "source_shard": plan.tar,
        "source_key": sample.key,
        "audio_members": [sample.out_exts[ext] for ext in sample.audio],
        "duration": sum(f.get("duration") or 0.0 for f in facts) if facts else None,
        "source_duration": sum(f.get("source_duration") or 0.0 for f in facts) if facts else None,
        "member_facts": json.dumps({sample.out_exts[ext]: {k: f.get(k) for k in MEMBER_FACTS}
                                    for ext, f in zip(sample.audio, facts, strict=True)}, sort_keys=True),
    })
    return row


def commit_tar(plan: TarPlan, config: MirrorConfig) -> dict[str, Any]:
    """Write and commit the mirror of `plan.tar` from this run's staged members; returns its counts."""
    out = OutputDir(config.out)
    if out.current_run_id() != config.run_id:
        raise StaleRunError(f"run {config.run_id} is no longer the current run of {config.out}; not committing {plan.name}")
    index_rows: list[dict[str, Any]] = []
    error_rows: list[dict[str, Any]] = []
    with StagedMembers(out, config.run_id, plan.part) as staged:
        for sample in plan.samples:
            if sample.problem is not None:
                error_rows.append(_error_row(plan, sample, PLAN_STAGE, *sample.problem))
                continue
            missing = [ext for ext in sample.audio if (sample.key, ext) not in staged.facts]
            if missing:
                raise RuntimeError(f"{plan.name}: member(s) {missing} of {sample.key!r} were never staged; re-run to redo this tar")
            failed = next((staged.facts[(sample.key, ext)] for ext in sample.audio if staged.facts[(sample.key, ext)]["error"]), None)
            if failed is not None:
                message = f"member .{failed['ext']}: {failed['message']}"
                error_rows.append(_error_row(plan, sample, failed["stage"], failed["error"], message))
                continue
            index_rows.append(_index_row(plan, sample, staged))
        written_keys = {row["key"] for row in index_rows}
        written = write_mirror_tar(plan, out, written_keys, staged.data)
    out.write_atomic(ERRORS, f"part-{plan.part}.parquet", _parquet_bytes(pa.Table.from_pylist(error_rows, schema=ERRORS_SCHEMA)))
    out.write_atomic(INDEX, f"part-{plan.part}.parquet", _parquet_bytes(pa.Table.from_pylist(index_rows, schema=config.index_schema)))
    staged_folder = staging_dir(out, config.run_id, plan.part)
    if out.fs.get_file_info(staged_folder).type != pafs.FileType.NotFound:
        out.fs.delete_dir(staged_folder)
    return {
        "part": plan.part,
        "name": plan.name,
        "samples": len(index_rows),
        "errors": len(error_rows),
        "without_audio": sum(1 for row in index_rows if not row["audio_members"]),
        "bytes": written,
    }
