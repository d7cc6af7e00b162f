"""`hsp inspect OUT`: the text view of a job's output, recomputed from what is on disk."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pipeline.engine.summary import summarize
from pipeline.io.output import INDEX, SHARDS, TMP_PREFIX, OutputDir


def inspect_output(root: str) -> dict[str, Any]:
    """Counts, hours, errors by type, shards, and whether the output is complete."""
    out = OutputDir(root)
    job = out.read_job()
    summary = summarize(out, job)
    index = out.read_parts(INDEX, columns=["shard"])
    per_shard = Counter(index.column("shard").to_pylist()) if index.num_rows else Counter()
    if job.get("layout") == "mirror":  # the tars sit where the input's did (pipeline.engine.mirror_runner)
        names = sorted(per_shard)
    else:
        names = [f"{SHARDS}/{n}" for n in out.list_names(SHARDS) if n.endswith(".tar") and not n.startswith(TMP_PREFIX)]
    shards = [{"shard": name, "samples": per_shard.get(name, 0), "bytes": out.fs.get_file_info(out.path(name)).size}
              for name in names]
    leftovers = [n for sub in (SHARDS, INDEX) for n in out.list_names(sub) if n.startswith(TMP_PREFIX)]
    last = out.read_json("summary.json") or {}
    return {
        "root": root,
        "job": job,
        "summary": summary,
        "shards": shards,
        "leftover_temp_files": leftovers,
        "last_run": {k: last.get(k) for k in ("command", "wall_seconds", "throughput_audio_s_per_s") if k in last},
    }


def format_inspection(result: dict[str, Any], max_shards: int = 20) -> str:
    s = result["summary"]
    job = result["job"]
    state = "complete" if s["complete"] else ("partial: re-run the same command to finish" if s["rows_missing"] else "incomplete")
    lines = [
        f"{result['root']}: job '{job['job']}' ({state})",
        f"  manifest      {job['manifest']['path']} ({job['manifest']['rows']} rows)",
        f"  options       {job.get('options')}",
        f"  samples       {s['samples_out']}",
        f"  errors        {s['errors']}",
        f"  not done      {s['rows_missing']}",
        f"  audio         {s['audio_hours_in']:.4f} h in, {s['audio_hours_out']:.4f} h out",
        f"  runs          {s['runs']} ({s['wall_seconds_total']:.1f} s wall in total)",
        f"  shards        {len(result['shards'])} ({sum(x['bytes'] for x in result['shards']) / 1e6:.1f} MB)",
    ]
    if s["duplicates"]:
        lines.append(f"  DUPLICATE IDS {len(s['duplicates'])}: {s['duplicates'][:5]}")
    if result["leftover_temp_files"]:
        lines.append(f"  leftovers     {len(result['leftover_temp_files'])} temporary file(s) of an interrupted run")
    if s["errors_by_type"]:
        lines.append("  errors by type:")
        lines += [f"    {count:>7} {kind}" for kind, count in s["errors_by_type"].items()]
    lines.append("  shards:")
    for shard in result["shards"][:max_shards]:
        lines.append(f"    {shard['shard']}  {shard['samples']:>6} samples  {shard['bytes'] / 1e6:8.2f} MB")
    if len(result["shards"]) > max_shards:
        lines.append(f"    ... {len(result['shards']) - max_shards} more")
    return "\n".join(lines)
