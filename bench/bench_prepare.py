"""Throughput of `hsp prepare` on the bundled examples (repeated to a measurable volume).

Prints a table: rows, audio seconds, wall seconds (with and without Ray start-up), throughput in
seconds of audio per second, real-time factor, and the driver's peak RSS. Each configuration runs
in its own subprocess so start-up and memory are measured as a user would see them.

    python bench/bench_prepare.py --repeat 40 --num-cpus 4
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "pipeline" / "examples" / "examples.parquet"


def make_manifest(folder: Path, repeat: int) -> Path:
    base = pq.read_table(EXAMPLES)
    audio = [str((EXAMPLES.parent / a).resolve()) for a in base.column("audio").to_pylist()]
    ids, paths = [], []
    for r in range(repeat):
        for sample_id, path in zip(base.column("id").to_pylist(), audio, strict=True):
            ids.append(f"r{r:04d}/{sample_id}")
            paths.append(path)
    manifest = folder / "bench.parquet"
    pq.write_table(pa.table({"id": ids, "audio": paths}), manifest)
    return manifest


def run_once(manifest: Path, out: Path, num_cpus: int, rows_per_shard: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), RAY_AUTH_MODE=os.environ.get("RAY_AUTH_MODE", "disabled"))
    command = [sys.executable, "-m", "pipeline.cli", "prepare", str(manifest), "-o", str(out),
               "--num-cpus", str(num_cpus), "--rows-per-shard", str(rows_per_shard), "--no-progress"]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    summary = json.loads((out / "summary.json").read_text())
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"summary": summary, "wall": wall, "peak_mib": peak_mib}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=40, help="copies of the 7 example files")
    parser.add_argument("--num-cpus", type=int, nargs="+", default=[4])
    parser.add_argument("--rows-per-shard", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = make_manifest(Path(tmp), args.repeat)
        rows = []
        for cpus in args.num_cpus:
            result = run_once(manifest, Path(tmp) / f"out{cpus}", cpus, args.rows_per_shard)
            s = result["summary"]
            audio = s["audio_hours_in"] * 3600
            job_wall = s["wall_seconds"]
            rows.append((cpus, s["rows_in"], audio, result["wall"], job_wall, audio / job_wall, job_wall / audio, result["peak_mib"]))
    print(f"hsp prepare on the bundled examples x{args.repeat} (machine: {os.cpu_count()} cores)")
    print("| logical CPUs | rows | audio s | process wall s | job wall s | audio s per s | RTF | peak RSS MiB (driver) |")
    print("|---|---|---|---|---|---|---|---|")
    for cpus, n, audio, wall, job_wall, speed, rtf, peak in rows:
        print(f"| {cpus} | {n} | {audio:.1f} | {wall:.1f} | {job_wall:.1f} | {speed:.1f} | {rtf:.4f} | {peak:.0f} |")
    print("job wall = from manifest read to summary, including the local Ray start-up (~5-10 s).")


if __name__ == "__main__":
    main()
