"""Running a job over a manifest: validate, plan, resume, stream through Ray Data, summarize.

Exactly-once comes from `pipeline.io.output`: committed parts are skipped, uncommitted leftovers
are deleted, writers of a previous run are fenced out. Ray Data's own `CheckpointConfig` was
not used: it needs >= 4 logical CPUs locally and works with Ray's writers, and
`write_webdataset` cannot bound rows per shard nor commit tars atomically.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
from tqdm import tqdm

from pipeline.engine.compute import (
    DeviceRun,
    check_mixed_devices,
    driver_device_notes,
    merge_compute,
    planned_compute,
    run_compute,
)
from pipeline.engine.fusion import StageGroup
from pipeline.engine.item import Item, items_to_batch
from pipeline.engine.job import Job, RunOptions
from pipeline.engine.sink import MAX_DEFERRED_IDS, SinkConfig, merge_stage_metrics
from pipeline.engine.stage import Stage
from pipeline.engine.summary import format_summary, summarize, versions
from pipeline.errors import JobFailedError, PipelineError
from pipeline.io.manifest import (
    ManifestError,
    manifest_fingerprint,
    read_manifest,
    validate_table,
)
from pipeline.io.output import RENAME, SCHEMA_VERSION, OutputConflictError, OutputDir, index_schema
from pipeline.io.uri import manifest_base

log = logging.getLogger(__name__)
T = TypeVar("T")


def _job_record(job: Job, manifest_path: str, table: pa.Table) -> dict[str, Any]:
    return {
        "job": job.name,
        "schema_version": SCHEMA_VERSION,
        "options": job.output_options,
        "manifest": {"path": str(manifest_path), "rows": table.num_rows, "sha256": manifest_fingerprint(table)},
        "versions": versions(),
    }


def _check_resume(out: OutputDir, record: dict[str, Any]) -> None:
    previous = out.read_job(required=False)  # an output of a newer version is refused, not resumed
    if previous is None:
        out.write_json("job.json", record)
        return
    for field_name in ("job", "options"):
        if previous.get(field_name) != record[field_name]:
            raise OutputConflictError(
                f"{out.root} holds output of {field_name} {previous.get(field_name)!r}, not {record[field_name]!r}; "
                "re-run with the original settings to resume, or write to a new output directory"
            )
    if previous["manifest"]["sha256"] != record["manifest"]["sha256"]:
        raise OutputConflictError(
            f"{out.root} was produced from a different manifest ({previous['manifest']['path']}, "
            f"{previous['manifest']['rows']} rows); use a new output directory for a changed manifest"
        )


_ERROR_LINE = re.compile(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception)): (.+)$")
_RAY_WRAPPERS = ("RayTaskError", "ActorDiedError", "SystemException", "RaySystemError", "ray.exceptions")


def _exception_chain(exc: BaseException) -> list[BaseException]:
    """`exc` and what it wraps, outermost first: Ray's `cause`, then `__cause__`/`__context__` (cycles cut)."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = getattr(current, "cause", None) or current.__cause__ or current.__context__
    return chain


def _root_cause(exc: BaseException) -> str:
    """The user's own error line: Ray wraps task/actor errors several levels deep."""
    chain = _exception_chain(exc)
    lines = [m for e in chain for line in str(e).splitlines() if (m := _ERROR_LINE.match(line))]
    for match in reversed(lines):
        if not match.group(1).startswith(_RAY_WRAPPERS):
            return f"{match.group(1)}: {match.group(2).strip()}"
    innermost = chain[-1]
    return f"{type(innermost).__name__}: {str(innermost).strip() or repr(exc)}"


def _pipeline_error_in(exc: BaseException) -> PipelineError | None:
    """The `PipelineError` a Ray task raised (a full disk in a shard writer, ...), rebuilt from under Ray's wrappers.

    Ray Data re-raises a task's exception as a `UserCodeException` that keeps only the remote
    traceback's text, whose last line names the class and its one-line message; plain Ray tasks keep
    the original as `cause`. Only our own (`pipeline.`) classes are rebuilt from text.
    """
    import importlib

    import ray.exceptions

    chain = _exception_chain(exc)
    for error in reversed(chain):
        if isinstance(error, PipelineError) and not isinstance(error, ray.exceptions.RayError):
            return error
    lines = [m for e in chain for line in str(e).splitlines() if (m := _ERROR_LINE.match(line))]
    for match in reversed(lines):
        module_name, _, class_name = match.group(1).rpartition(".")
        if not module_name.startswith("pipeline."):
            continue
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):
            continue
        if isinstance(cls, type) and issubclass(cls, PipelineError):
            return _rebuilt(cls, match.group(2).strip())
    return None


def _rebuilt(error: PipelineError | type[PipelineError], message: str) -> PipelineError:
    """An error of `error`'s class with `message` (a class whose constructor takes more gets the base)."""
    cls = error if isinstance(error, type) else type(error)
    try:
        return cls(message)
    except TypeError:
        return PipelineError(message)


def run_job(job: Job, manifest_path: str | Path, out_root: str | Path, options: RunOptions) -> dict[str, Any]:
    """Run `job` over the manifest into `out_root`; returns (and writes) the summary."""


    started = time.time()
    if options.storage_options:
        from pipeline.io.storage import use_storage_options

        use_storage_options(options.storage_options)  # this process and the Ray workers it starts
    manifest_path = str(manifest_path)
    table = read_manifest(manifest_path)
    base_dir = manifest_base(manifest_path)
    report = validate_table(table, job.columns, base_dir=base_dir, check_files=options.strict,
                            allow_internal=job.allows_internal_columns(manifest_path, str(out_root)))
    if not report.ok or (options.strict and report.row_problems):
        raise ManifestError(manifest_path, report)
    row_problems: dict[int, str] = {}
    for problem in report.row_problems:
        if problem.row is not None:
            row_problems.setdefault(problem.row, f"column '{problem.column}': {problem.message}")

    out = OutputDir(str(out_root), protocol=RENAME if options.unsafe_object_store_commit else None)
    out.ensure_layout()
    with out.locked():
        record = _job_record(job, manifest_path, table)
        _check_resume(out, record)
        removed = out.cleanup_uncommitted()
        done = out.done_ids()
        ids = table.column("id").to_pylist()
        todo = [row for row, sample_id in enumerate(ids) if sample_id not in done]
        print(
            f"[{job.name}] {table.num_rows} rows in manifest, {len(done)} already done, {len(todo)} to do"
            + (f"; removed {len(removed)} unfinished file(s) of a previous run" if removed else ""),
            file=sys.stderr,
        )
        run_id = out.start_run()
        totals = RunTotals()
        if todo:
            totals = run_on_ray(job.name, out, options,
                                lambda: _execute(job, table, todo, base_dir, row_problems, out, run_id, options))
        wall = time.time() - started
        out.check_lease()  # a driver whose lease was taken over leaves the summary to the new run
        record["compute"] = record_compute(out, totals)
        out.append_run_history({"run_id": run_id, "started": started, "wall_seconds": wall, "rows": len(todo), "command": options.command})
        summary = summarize(out, record)
        summary.update(
            {
                "command": options.command or sys.argv,
                "wall_seconds": wall,
                "audio_seconds_this_run": totals.seconds_in,
                "output_audio_seconds_this_run": totals.seconds_out,
                "rows_this_run": len(todo),
                # manifest checks, Ray start and planning: the fixed cost before the first row runs
                "startup_seconds": (totals.streaming_since - started) if totals.streaming_since else wall,
                "rows_deferred_this_run": totals.deferred,
                "deferred_ids": totals.deferred_ids,
                "stage_metrics": totals.stage_metrics,
                "throughput_audio_s_per_s": totals.seconds_in / wall if wall > 0 else 0.0,
                "throughput_output_audio_s_per_s": totals.seconds_out / wall if wall > 0 else 0.0,
            }
        )
        summary["wall_seconds_total"] = summary.get("wall_seconds_total", wall)
        if job.summary_extra is not None:
            summary.update(job.summary_extra(str(out_root)))
        out.write_json("summary.json", summary)
    print(format_summary(summary), file=sys.stderr)
    return summary


def run_on_ray(job_name: str, out: OutputDir, options: RunOptions, body: Callable[[], T]) -> T:
    """`body()` with Ray up (started here unless `options.address` joins a cluster, and shut down after).

    A failure becomes one line without a traceback: a `PipelineError` raised in a task (a full disk
    in a writer) is rebuilt from under Ray's wrappers; anything else is a `JobFailedError` naming
    the root cause and saying that finished output is kept.
    """
    import ray
    from ray.exceptions import RayError

    from pipeline.engine.ray_env import init_ray, release_gpu_request

    started_ray = init_ray(options.address, options.num_cpus)
    try:
        return body()
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        if isinstance(exc, PipelineError) and not isinstance(exc, RayError):
            raise  # the driver's own check (resources, stage contracts): already one line
        if (user_error := _pipeline_error_in(exc)) is not None:
            raise _rebuilt(user_error, f"[{job_name}] {user_error}") from exc  # one line, no traceback
        raise JobFailedError(
            f"[{job_name}] the job stopped: {_root_cause(exc)}\n"
            f"Finished shards in {out.root} are kept; fix the cause and re-run the same command to finish the rest."
        ) from exc
    finally:
        release_gpu_request()  # an autoscaler request for GPUs (--wait-for-gpus) must not outlive the job
        if started_ray:
            ray.shutdown()


@dataclass
class RunTotals:
    """What this run's committed parts report: audio seconds, deferred rows, stage counters."""

    seconds_in: float = 0.0
    seconds_out: float = 0.0
    deferred: int = 0
    deferred_ids: list[str] = field(default_factory=list)
    stage_metrics: dict[str, dict[str, int]] = field(default_factory=dict)
    streaming_since: float | None = None  # time.time() when rows started to flow (Ray up, stages planned)
    planned: PlannedStages | None = None  # the stages' plan (None: nothing was run)
    computes: list[dict[str, Any]] = field(default_factory=list)  # distinct sample `compute` records committed

    def add(self, part: dict[str, Any]) -> None:
        """Add one row of the sink's output (`pipeline.engine.ray_stages.SUMMARY_SCHEMA`)."""
        self.seconds_in += part["seconds_in"]
        self.seconds_out += part["seconds_out"]
        self.deferred += part["deferred"]
        self.deferred_ids.extend(part["deferred_ids"][: max(0, MAX_DEFERRED_IDS - len(self.deferred_ids))])
        self.stage_metrics = merge_stage_metrics([self.stage_metrics, json.loads(part["stage_metrics"])])
        for record in json.loads(part.get("compute") or "[]"):
            if record not in self.computes:
                self.computes.append(record)


def _execute(
    job: Job, table: pa.Table, todo: list[int], base_dir: str | None, row_problems: dict[int, str],
    out: OutputDir, run_id: str, options: RunOptions,
) -> RunTotals:
    """Stream the rows to do through the stages and the sink; returns what the committed parts report."""
    import ray
    import ray.data

    from pipeline.engine.fusion import group_stages
    from pipeline.engine.ray_stages import apply_group, apply_sink, wants_actor_restarts
    from pipeline.engine.rows import row_blocks

    planned = plan_stages(job, options, out)
    stages = planned.stages
    groups = group_stages(stages)
    cluster = ray.cluster_resources()
    rows_per_part = options.rows_per_shard
    if len(groups) == 1 and groups[0].commits:  # a part is a task's whole work: keep every CPU busy
        rows_per_part = parts_rows(len(todo), options.rows_per_shard, cluster.get("CPU", 1.0), groups[0].resources.num_cpus)
    _print_plan(job, groups, len(todo), rows_per_part, options, cluster)

    from hierspeech import __version__

    sink = SinkConfig(
        out=out.root if "://" in out.root else out.base,
        run_id=run_id,
        job=job.name,
        index_schema=index_schema(job.index_fields),
        max_shard_bytes=options.max_shard_bytes,
        package_version=__version__,
        commit_protocol=out.protocol,
    )
    # A job that is one committing group reads blocks of exactly one part each: a task per part.
    block_rows = rows_per_part if len(groups) == 1 and groups[0].commits else max(1, options.block_rows)
    path_columns = [c.name for c in job.columns if c.is_path]
    blocks = row_blocks(table, todo, row_problems, path_columns=path_columns, base_dir=base_dir, rows_per_block=block_rows)
    ds = ray.data.from_arrow(blocks)
    for position, group in enumerate(groups):
        restarts = wants_actor_restarts(group.stages[0], options.address, options.actor_restarts)
        ds = apply_group(ds, group, actor_restarts=restarts, from_rows=position == 0,
                         sink=sink if group.commits else None, rows_per_part=rows_per_part, last=position == len(groups) - 1,
                         device=planned.device)
    if not groups[-1].commits:
        ds = apply_sink(ds, sink, rows_per_part)
    totals = RunTotals(streaming_since=time.time(), planned=planned)
    with tqdm(total=len(todo), unit="row", desc=job.name, disable=not options.progress, file=sys.stderr) as bar:
        for part in ds.iter_rows():
            bar.update(part["rows"])
            totals.add(part)
            bar.set_postfix(samples=part["samples"], errors=part["errors"], refresh=False)
    return totals


def stream_through_stages(job: Job, items: list[Item], options: RunOptions, out: OutputDir,
                          sink_line: str | None = None) -> tuple[Any, PlannedStages]:
    """A Ray Data dataset of `items` run through the job's stages (built, overridden, fitted, planned
    and checked against `out`'s job.json here, see `plan_stages`), and that plan.

    sink_line: how the plan printed at start describes the writer (default: the shard sink's line).
    """
    import ray
    import ray.data

    from pipeline.engine.ray_stages import apply_stage, wants_actor_restarts

    planned = plan_stages(job, options, out)
    groups = [StageGroup([stage]) for stage in planned.stages]  # one operator per stage (no fusion on this path)
    _print_plan(job, groups, len(items), options.rows_per_shard, options, ray.cluster_resources(), sink_line)

    block_rows = max(1, options.block_rows)
    blocks = [items_to_batch(items[i : i + block_rows]) for i in range(0, len(items), block_rows)]
    ds = ray.data.from_arrow(blocks)
    for stage in planned.stages:
        ds = apply_stage(ds, stage, actor_restarts=wants_actor_restarts(stage, options.address, options.actor_restarts),
                         device=planned.device)
    return ds, planned


@dataclass
class PlannedStages:
    """A run's stages as planned on the driver: overridden and fitted, with the device the run means to
    use (`planned`, job.json's compute shape) and what job.json recorded before this run (`before`)."""

    stages: list[Stage]
    device: DeviceRun
    planned: dict[str, Any]
    before: dict[str, Any] | None


def plan_stages(job: Job, options: RunOptions, out: OutputDir) -> PlannedStages:
    """Build the stages, apply the overrides, wait for and fit GPUs, then settle the run's device before any row runs.

    The device notes go to the plan (a local torch that cannot see CUDA: CPU FALLBACK, or refused
    under --device cuda; a precision that does not apply). The device the run means to use is
    checked against what job.json recorded (`check_mixed_devices`) and recorded there, so a run
    killed midway still leaves it. Both runner paths (`_execute`, `stream_through_stages`) go
    through here.
    """
    import ray.data

    from pipeline.engine.ray_env import fit_stage_resources, joins_cluster, wait_for_gpus
    from pipeline.engine.stage_resources import apply_stage_resources

    # Our progress bar, summary and one-line failure (see run_job) replace Ray Data's chatter and its
    # copy of a task's error; -v shows Ray Data's errors again.
    quiet = logging.getLogger().getEffectiveLevel() >= logging.WARNING
    logging.getLogger("ray.data").setLevel(logging.CRITICAL if quiet else logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False

    stages = job.stages()
    notes = apply_stage_resources(stages, options.stage_resources)
    if options.device != "cpu":
        notes += wait_for_gpus(stages, options.wait_for_gpus)
    notes += fit_stage_resources(stages, options.device)
    local = not joins_cluster(options.address)
    notes += driver_device_notes(stages, options.device, options.precision, local=local)
    planned = planned_compute(stages, options.device, options.precision, local=local)
    job_record = out.read_job(required=False) or {}
    before = job_record.get("compute")
    check_mixed_devices(out.root, before, planned, options.allow_mixed_devices)
    if job_record:
        out.write_json("job.json", {**job_record, "compute": merge_compute(before, planned)})
    for note in notes:
        print(f"[{job.name}] {note}", file=sys.stderr)
    return PlannedStages(stages, DeviceRun(options.device, options.precision), planned, before)


def record_compute(out: OutputDir, totals: RunTotals) -> dict[str, Any] | None:
    """Write into job.json what this run really computed on (the records of its committed parts; the
    plan when none), added to what earlier runs recorded. Returns job.json's compute (None: never recorded)."""
    record = out.read_job(required=False) or {}
    if totals.planned is None:  # nothing ran: job.json stays as it is
        return record.get("compute")
    compute = merge_compute(totals.planned.before, run_compute(totals.computes, totals.planned.planned))
    out.write_json("job.json", {**record, "compute": compute})
    return compute


def parts_rows(rows: int, rows_per_shard: int, cluster_cpus: float, cpus_per_task: float) -> int:
    """Rows per part when the whole job is one committing task: `rows_per_shard`, or fewer when that would leave CPUs idle.

    There a part is one task's whole work, so a run with fewer rows than `rows_per_shard` per task
    slot spreads them evenly over the slots: 1,000 rows on 4 CPUs make 4 parts of 250, not one of
    1,000 on one CPU. Parts never exceed `rows_per_shard`.
    """
    slots = max(1, int(cluster_cpus // max(cpus_per_task, 1e-9)))
    return max(1, min(rows_per_shard, math.ceil(rows / slots)))


def _print_plan(
    job: Job, groups, rows: int, rows_per_part: int, options: RunOptions, cluster: dict[str, float], sink_line: str | None = None
) -> None:
    """The final (overridden, fitted) resources of every stage, the operators they run in, and what the cluster has.

    `sink_line` describes another writer than the shard sink (the mirror layout's).
    """
    nodes = sum(1 for key in cluster if key.startswith("node:") and key != "node:__internal_head__")
    lines = [
        f"[{job.name}] plan: {rows} rows"
        + ("" if sink_line else f" -> ~{math.ceil(rows / rows_per_part)} shard(s) of <= {rows_per_part} rows")
        + (f" (--rows-per-shard {options.rows_per_shard}, spread over the CPUs)" if rows_per_part < options.rows_per_shard else ""),
        f"  cluster: {nodes} node(s), {cluster.get('CPU', 0):g} CPUs, {cluster.get('GPU', 0):g} GPUs",
    ]
    for group in groups:
        for stage in group.stages:
            res = stage.resources
            kind = f"actor pool x{res.actors}" if stage.stateful else "tasks"
            memory = f" memory={res.memory / (1 << 30):.2f}G" if res.memory else ""
            lines.append(f"  {stage.name:<14} {kind:<16} cpus={res.num_cpus:g} gpus={res.num_gpus:g}{memory} batch={stage.batch_size}")
    if sink_line:
        lines.append(sink_line)
    elif groups[-1].commits:
        lines.append(f"  {'write_shards':<14} {'tasks':<16} rows/part={rows_per_part} max_bytes={options.max_shard_bytes}")
    else:
        lines.append(f"  {'write_shards':<14} {'tasks':<16} rows/part={rows_per_part} max_bytes={options.max_shard_bytes} cpus=0.5")
    shared = [g for g in groups if len(g.stages) > 1 or g.commits]
    for group in shared:  # stages sharing a task (pipeline.engine.fusion)
        res = group.resources
        memory = f" memory={res.memory / (1 << 30):.2f}G" if res.memory else ""
        lines.append(f"  one task runs {group.name}: cpus={res.num_cpus:g}{memory}")
    print("\n".join(lines), file=sys.stderr)
