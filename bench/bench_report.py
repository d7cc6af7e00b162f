"""Wall time and peak RSS of `hsp report` on a synthetic output with many samples.

Builds (once, through the real sink) an output of `--parts` parts x `--per-part` samples, each with a
short FLAC, an `f0.npy` and a `w2v.npy` (1024 x frames, float16), then times `build_report` in a fresh
subprocess so its peak RSS is the report's alone. The point: time and memory grow with the number of
index rows only through a few bytes per row, not with the shards' size.

    python bench/bench_report.py --parts 40 --per-part 500
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_output(root: Path, parts: int, per_part: int) -> float:
    import numpy as np
    import soundfile as sf

    from pipeline.engine.item import Item
    from pipeline.engine.sink import SinkConfig, commit_part
    from pipeline.io.output import OutputDir, index_schema
    from pipeline.prepare import PREPARE_INDEX_FIELDS

    def npy(array) -> bytes:
        buffer = io.BytesIO()
        np.save(buffer, array)
        return buffer.getvalue()

    rng = np.random.default_rng(0)
    out = OutputDir(str(root))
    out.ensure_layout()
    run_id = out.start_run()
    out.write_json("job.json", {"job": "extract", "manifest": {"path": "bench.parquet", "rows": parts * per_part}, "options": {}})
    config = SinkConfig(str(root), run_id, "extract", index_schema(PREPARE_INDEX_FIELDS), 1 << 30, "bench")
    seconds = 1.0
    flac = io.BytesIO()
    sf.write(flac, (0.1 * rng.standard_normal(16000)).astype("float32"), 16000, format="FLAC")
    f0 = npy((120 + 40 * rng.random(200)).astype("float32"))
    w2v = npy(np.zeros((1024, 50), dtype="float16"))
    for p in range(parts):
        items = []
        for i in range(per_part):
            item = Item(f"spk{(p * per_part + i) % 300}/utt{p:04d}_{i:05d}", p * per_part + i, {})
            item.members = {"flac": flac.getvalue(), "f0.npy": f0, "w2v.npy": w2v}
            item.index = {"duration": seconds + rng.random(), "source_duration": seconds, "sample_rate": 16000, "source_sample_rate": 16000, "source_channels": 1, "speaker": f"spk{i % 300}"}
            items.append(item)
        commit_part(items, config)
    return sum(f.stat().st_size for f in (root / "shards").iterdir()) / 1e6


def run_report(root: Path, dest: Path, samples: int, stats_samples: int) -> dict:
    from pipeline.report.build import build_report

    started = time.perf_counter()
    result = build_report(str(root), dest, samples=samples, stats_samples=stats_samples)
    wall = time.perf_counter() - started
    return {"wall_s": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "report_mb": result.bytes / 1e6, "rows": result.samples_out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, default=40)
    parser.add_argument("--per-part", type=int, default=500)
    parser.add_argument("--samples", type=int, default=6)
    parser.add_argument("--stats-samples", type=int, default=256)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_report(Path(args.child[0]), Path(args.child[1]), args.samples, args.stats_samples)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "out"
        started = time.perf_counter()
        shard_mb = build_output(root, args.parts, args.per_part)
        print(f"built {args.parts * args.per_part} samples ({shard_mb:.0f} MB of shards) in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(root), str(Path(tmp) / "report"), "--samples", str(args.samples), "--stats-samples", str(args.stats_samples)],
            check=True, capture_output=True, text=True, cwd=ROOT,
        )
        row = json.loads(child.stdout.strip().splitlines()[-1])
    print("| rows | shards MB | samples | stats samples | wall s | peak RSS MB | report MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {row['rows']} | {shard_mb:.0f} | {args.samples} | {args.stats_samples} | {row['wall_s']:.1f} | {row['peak_rss_mb']:.0f} | {row['report_mb']:.1f} |")
    print("(shared machine: indicative numbers)")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
