"""The end-of-job summary: counts, audio hours, errors by type, completeness, versions.

Computed from what is committed on disk (not from in-memory counters), so the summary of a
resumed job covers all its runs and `hsp inspect` can recompute it at any time.
"""

from __future__ import annotations

import platform
import sys
from collections import Counter
from typing import Any

import pyarrow.compute as pc

from pipeline.engine.stage import BATCH_COUNTERS
from pipeline.io.output import ERRORS, ERRORS_SCHEMA, INDEX, SCHEMA_VERSION, SHARDS, OutputDir


def versions() -> dict[str, str]:
    """Versions of what produced the output (package, schema, Python and key libraries)."""
    from importlib import metadata

    found = {"package": _version("hierspeech-pipeline"), "schema": str(SCHEMA_VERSION), "python": platform.python_version()}
    for dist in ("torch", "ray", "pyarrow", "numpy", "soundfile", "soxr", "webdataset"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        from hierspeech import __version__

        return __version__


def summarize(out: OutputDir, job: dict[str, Any] | None = None) -> dict[str, Any]:
    """Summary of everything committed under `out` (job: the job.json record, if known)."""
    job = job if job is not None else (out.read_job(required=False) or {})
    index = out.read_parts(INDEX, columns=["id", "duration", "source_duration"])  # bounded: not the features
    errors = out.read_parts(ERRORS, schema=ERRORS_SCHEMA)
    ids = index.column("id").to_pylist() if index.num_rows else []
    error_ids = errors.column("id").to_pylist() if errors.num_rows else []
    seen = Counter(ids) + Counter(error_ids)
    duplicates = sorted(i for i, n in seen.items() if n > 1)
    rows_in = int(job.get("manifest", {}).get("rows", 0))
    seconds_out = _sum(index, "duration")
    seconds_in = _sum(index, "source_duration")
    history = out.run_history()
    by_type = Counter(f"{s}: {e}" for s, e in zip(errors.column("stage").to_pylist(), errors.column("error").to_pylist(), strict=True))
    return {
        "job": job.get("job"),
        "schema_version": SCHEMA_VERSION,
        "rows_in": rows_in,
        "samples_out": len(ids),
        "errors": len(error_ids),
        "rows_done": len(seen),
        "rows_missing": max(0, rows_in - len(seen)),
        "duplicates": duplicates[:100],
        "complete": rows_in > 0 and len(seen) == rows_in and not duplicates,
        "errors_by_type": dict(by_type.most_common()),
        "audio_hours_in": seconds_in / 3600.0,
        "audio_hours_out": seconds_out / 3600.0,
        "shards": len([n for n in out.list_names(SHARDS) if n.endswith(".tar")]),
        "runs": len(history),
        "wall_seconds_total": float(sum(r.get("wall_seconds", 0.0) for r in history)),
        "compute": job.get("compute"),  # job.json's: what the runs so far computed on (pipeline.engine.compute)
        "versions": versions(),
        "platform": {"python": sys.version.split()[0], "machine": platform.machine()},
    }


def _sum(table: Any, column: str) -> float:
    if table.num_rows == 0 or column not in table.column_names:
        return 0.0
    value = pc.sum(table.column(column)).as_py()
    return float(value or 0.0)


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"job {summary.get('job')}: {'COMPLETE' if summary['complete'] else 'INCOMPLETE'}",
        f"  rows in      {summary['rows_in']}",
        f"  samples out  {summary['samples_out']}",
        f"  errors       {summary['errors']}",
    ]
    if summary.get("rows_deferred_this_run"):
        lines.append(
            f"  deferred     {summary['rows_deferred_this_run']} row(s) ran out of device memory even alone "
            f"(e.g. {', '.join(map(repr, summary.get('deferred_ids', [])[:3]))}); re-running the same command retries them"
        )
    if summary.get("rows_missing"):
        lines.append(f"  not done yet {summary['rows_missing']} (re-run the same command to finish)")
    if summary.get("duplicates"):
        lines.append(f"  DUPLICATES   {len(summary['duplicates'])}: {summary['duplicates'][:5]}")
    lines.append(f"  audio in     {summary['audio_hours_in']:.4f} h")
    lines.append(f"  audio out    {summary['audio_hours_out']:.4f} h")
    if "wall_seconds" in summary:
        lines.append(f"  wall time    {summary['wall_seconds']:.1f} s this run, {summary['wall_seconds_total']:.1f} s over {summary['runs']} run(s)")
        if summary["wall_seconds"] > 0 and summary.get("audio_seconds_this_run"):
            lines.append(f"  throughput   {summary['audio_seconds_this_run'] / summary['wall_seconds']:.2f} s of input audio per second (this run)")
        if summary["wall_seconds"] > 0 and summary.get("output_audio_seconds_this_run"):
            lines.append(f"  generated    {summary['output_audio_seconds_this_run'] / summary['wall_seconds']:.2f} s of output audio per second (this run)")
    if voices := summary.get("prompt_speakers"):
        top = ", ".join(f"{speaker or '?'} {count}" for speaker, count in voices["most_used"][:5])
        lines.append(f"  voices       {voices['rows_with_prompt']} rows from {voices['speakers']} prompt speakers, "
                     f"{voices['min_rows_per_speaker']}-{voices['max_rows_per_speaker']} rows each (most used: {top})")
    compute = summary.get("compute") or {}
    if compute.get("device") not in (None, "cpu"):
        gpus = f" ({', '.join(compute['gpus'])})" if compute.get("gpus") else ""
        lines.append(f"  compute      {compute['device']}{gpus}, precision {compute.get('precision')}")
    if compute.get("cpu_fallback"):
        lines.append(f"  CPU FALLBACK stage(s) {', '.join(compute['cpu_fallback'])} held a GPU but ran on CPU: the torch there "
                     "cannot see CUDA (install a CUDA build of torch, or run with --device cpu)")
    for kind, count in list(summary.get("errors_by_type", {}).items())[:10]:
        lines.append(f"  error        {count} x {kind}")
    for stage, counters in sorted(summary.get("stage_metrics", {}).items()):
        counts = ", ".join(f"{name} {counters.get(name, 0)}" for name in BATCH_COUNTERS)
        lines.append(f"  batches      {stage}: {counts}")
    return "\n".join(lines)
