"""Running a job in the mirror layout: one output tar per input tar, same names, keys and order.

Plan every input tar from its headers (`pipeline.io.tar_plan`), skip the tars whose commit exists,
stream the audio members of the others through the job's stages, stage the results
(`pipeline.engine.mirror_sink`), and commit each tar as soon as all its members are back
(`pipeline.engine.mirror_commit`, a Ray task per tar). Exactly-once and resume are per input tar:
a killed run leaves its unfinished tars uncommitted, and the next run of the same command redoes
only those. The job record fingerprints every plan, so changed input tars refuse a resume.

Output layout::

    OUT/<input tar, relative to the inputs' common folder>   the mirrored tars
    OUT/index.parquet/part-<tar part>.parquet                one row per written sample (the commit)
    OUT/errors.parquet/part-<tar part>.parquet               one row per refused or failed sample
    OUT/job.json, OUT/summary.json, OUT/_state/              as every job
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline.engine.item import Item
from pipeline.engine.job import Job, RunOptions
from pipeline.engine.mirror_commit import commit_tar, sample_id
from pipeline.engine.mirror_sink import STAGING, MirrorConfig, MirrorStagingSink
from pipeline.engine.runner import RunTotals, _check_resume, record_compute, run_on_ray, stream_through_stages
from pipeline.engine.summary import format_summary, summarize, versions
from pipeline.errors import ConfigError
from pipeline.io.output import ERRORS, INDEX, SCHEMA_VERSION, STATE, TMP_PREFIX, OutputDir, index_schema
from pipeline.io.tar_lists import mirror_names
from pipeline.io.tar_plan import TarPlan, plan_tar
from pipeline.io.tar_source import TarSourceError, expand_tar_spec
from pipeline.io.uri import is_uri

STAGE_BATCH_ROWS = 32  # members per staging file: the sink's memory, not the output's layout
RESERVED = (INDEX, ERRORS, STATE, "job.json", "summary.json")


def _inside(tar: str, out: OutputDir) -> bool:
    if is_uri(tar) or not out.is_local:
        return tar.startswith(out.root.rstrip("/") + "/")
    return Path(tar).resolve().is_relative_to(Path(out.base))


def plan_inputs(spec: str, out: OutputDir, *, audio_member: str | None, audio_ext: str | None, progress: bool) -> list[TarPlan]:
    """The plans of the tars `spec` names, leaving out tars inside the output (a mirror from an earlier run)."""
    found = expand_tar_spec(spec)
    tars = [tar for tar in found if not _inside(tar, out)]
    if not tars:
        raise TarSourceError(f"every tar {spec!r} names is inside the output folder {out.root}; write to another folder")
    names = mirror_names(tars)
    for tar, name in names.items():
        if name.split("/", 1)[0] in RESERVED or posixpath.basename(name).startswith(TMP_PREFIX):
            raise TarSourceError(f"{tar} would be mirrored as {name}, a name the output's own files use; rename that tar")
    return [plan_tar(tar, names[tar], audio_member=audio_member, audio_ext=audio_ext)
            for tar in tqdm(tars, unit="tar", desc="scan", disable=not progress or len(tars) < 20, file=sys.stderr)]


def _job_record(job: Job, spec: str, plans: list[TarPlan]) -> dict[str, Any]:
    digest = hashlib.sha256("\n".join(p.fingerprint() for p in plans).encode("utf-8")).hexdigest()
    return {
        "job": job.name,
        "layout": "mirror",
        "schema_version": SCHEMA_VERSION,
        "options": job.output_options,
        "manifest": {"path": spec, "rows": sum(len(p.samples) for p in plans), "tars": len(plans), "sha256": digest},
        "versions": versions(),
    }


def _cleanup(out: OutputDir, plans: list[TarPlan], committed: set[str]) -> list[str]:
    """Delete staging of earlier runs, temporary tars, and mirrored tars whose commit is missing."""
    from pyarrow import fs as pafs

    removed = []
    if out.exists(STATE, STAGING):
        out.fs.delete_dir(out.path(STATE, STAGING))
        removed.append(f"{STATE}/{STAGING}/")
    for folder in sorted({posixpath.dirname(p.name) for p in plans}):
        selector = pafs.FileSelector(out.path(folder), allow_not_found=True)
        for info in out.fs.get_file_info(selector):
            if info.type == pafs.FileType.File and info.base_name.startswith(TMP_PREFIX):
                out.fs.delete_file(info.path)
                removed.append(posixpath.join(folder, info.base_name))
    for plan in plans:
        if plan.part not in committed and out.exists(plan.name):
            out.fs.delete_file(out.path(plan.name))
            removed.append(plan.name)
    return removed


@dataclass
class MirrorTotals(RunTotals):
    """RunTotals plus the tars this run committed."""

    tars: list[dict[str, Any]] = field(default_factory=list)


def run_mirror_job(job: Job, spec: str, out_root: str | Path, options: RunOptions) -> dict[str, Any]:
    """Run `job` over the tars `spec` names into `out_root` in the mirror layout; returns (and writes) the summary.

    The job's `output_options` say which members to upsample (`audio_member`) and under which
    extension (`audio_ext`); see `pipeline.io.tar_plan`.
    """
    started = time.time()
    out = OutputDir(str(out_root))
    if not out.is_local:
        raise ConfigError(
            f"--layout mirror writes to a local or mounted filesystem for now, not {out.root}: "
            "write the mirror locally and copy it, or use the default shard layout on the object store"
        )
    plans = plan_inputs(spec, out, audio_member=job.output_options.get("audio_member"),
                        audio_ext=job.output_options.get("audio_ext"), progress=options.progress)
    for sub in (INDEX, ERRORS, STATE):
        with out.writing(out.path(sub)):
            out.fs.create_dir(out.path(sub), recursive=True)
    with out.locked():
        record = _job_record(job, spec, plans)
        _check_resume(out, record)
        committed = out.committed_parts()
        removed = out.cleanup_uncommitted() + _cleanup(out, plans, committed)
        todo = [plan for plan in plans if plan.part not in committed]
        members = sum(plan.upsample_count for plan in todo)
        print(
            f"[{job.name}] {len(plans)} input tar(s), {record['manifest']['rows']} samples; {len(plans) - len(todo)} tar(s) "
            f"already done, {len(todo)} to do ({members} audio member(s) to upsample)"
            + (f"; removed {len(removed)} unfinished file(s) of a previous run" if removed else ""),
            file=sys.stderr,
        )
        run_id = out.start_run()
        totals = MirrorTotals()
        if todo:
            totals = run_on_ray(job.name, out, options, lambda: _execute(job, todo, out, run_id, options))
        wall = time.time() - started
        record["compute"] = record_compute(out, totals)
        out.append_run_history({"run_id": run_id, "started": started, "wall_seconds": wall, "rows": members,
                                "tars": len(todo), "command": options.command})
        summary = summarize(out, record)
        summary.update(_mirror_facts(out, plans))
        summary.update({
            "command": options.command or sys.argv,
            "wall_seconds": wall,
            "tars_this_run": len(totals.tars),
            "audio_seconds_this_run": totals.seconds_in,
            "output_audio_seconds_this_run": totals.seconds_out,
            "rows_this_run": sum(len(plan.samples) for plan in todo),  # samples of the tars redone
            "members_this_run": members,  # audio members upsampled
            "rows_deferred_this_run": totals.deferred,
            "deferred_ids": totals.deferred_ids,
            "stage_metrics": totals.stage_metrics,
            "throughput_audio_s_per_s": totals.seconds_in / wall if wall > 0 else 0.0,
        })
        out.write_json("summary.json", summary)
    print(format_summary(summary), file=sys.stderr)
    print(f"  tars         {summary['tars_done']} of {summary['tars_in']} mirrored ({summary['tars_this_run']} this run); "
          f"{summary['samples_without_audio']} sample(s) without audio passed through", file=sys.stderr)
    return summary


def _mirror_facts(out: OutputDir, plans: list[TarPlan]) -> dict[str, Any]:
    """Counts of the mirror layout, from what is committed (so a resumed job's summary covers every run)."""
    committed = out.committed_parts()
    index = out.read_parts(INDEX, columns=["audio_members"])
    members = index.column("audio_members").to_pylist() if index.num_rows else []
    return {
        "layout": "mirror",
        "tars_in": len(plans),
        "tars_done": sum(1 for p in plans if p.part in committed),
        "shards": sum(1 for p in plans if p.part in committed),
        "samples_without_audio": sum(1 for m in members if not m),
        "audio_members_out": sum(len(m) for m in members if m),
        "dropped_members": sum(len(p.dropped_members) for p in plans),
    }


def _items(todo: list[TarPlan]) -> list[Item]:
    items = []
    for plan in todo:
        for sample in plan.samples:
            if sample.problem is not None:
                continue
            for ext in sample.audio:
                member_id = f"{sample_id(plan, sample.key)}.{ext}"
                fields = {"id": member_id, "audio": plan.tar, "tar_key": sample.key, "tar_member": ext,
                          "tar_members": json.dumps({ext: list(sample.members[ext])}),
                          "mirror_part": plan.part, "mirror_ext": sample.out_exts[ext]}
                items.append(Item(id=member_id, row=len(items), fields=fields))
    return items


def _execute(job: Job, todo: list[TarPlan], out: OutputDir, run_id: str, options: RunOptions) -> MirrorTotals:
    """Upsample the members of the unfinished tars; commit each tar once all its members are staged."""
    import ray

    from pipeline.engine.ray_stages import _named

    config = MirrorConfig(out=out.root if "://" in out.root else out.base, run_id=run_id, job=job.name,
                          index_schema=index_schema(job.index_fields))
    commit = ray.remote(num_cpus=0.5, max_retries=3)(commit_tar)
    expected = {plan.part: plan.upsample_count for plan in todo}
    by_part = {plan.part: plan for plan in todo}
    pending = [commit.remote(plan, config) for plan in todo if expected[plan.part] == 0]
    items = _items(todo)
    totals = MirrorTotals()
    if items:
        line = (f"  {'stage_members':<14} {'tasks':<16} then one commit task per tar: {len(todo)} mirrored tar(s), "
                f"{len(items)} member(s) to upsample")
        ds, totals.planned = stream_through_stages(job, items, options, out, sink_line=line)
        ds = ds.map_batches(_named(MirrorStagingSink, "stage_members")(config), batch_size=STAGE_BATCH_ROWS,
                            batch_format="pyarrow", num_cpus=0.5)
        staged = dict.fromkeys(expected, 0)
        deferred = dict.fromkeys(expected, 0)
        with tqdm(total=len(items), unit="member", desc=job.name, disable=not options.progress, file=sys.stderr) as bar:
            for row in ds.iter_rows():
                bar.update(row["members"])
                totals.add(row)
                part = row["part"]
                staged[part] += row["members"]
                deferred[part] += row["deferred"]
                if staged[part] == expected[part] and not deferred[part]:
                    pending.append(commit.remote(by_part[part], config))
    totals.tars = list(ray.get(pending))
    if out.exists(STATE, STAGING, run_id):
        out.fs.delete_dir(out.path(STATE, STAGING, run_id))  # a tar left for a later run (deferred rows) is redone from its start
    return totals
