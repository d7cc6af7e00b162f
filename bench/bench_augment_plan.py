"""Time of `augment_plan` (the `hsp augment` plan) by size and prompt rule, old code beside new.

Synthetic manifests with relative paths (resolved against a base folder, as the CLI does),
150 utterances per speaker on average (LibriSpeech-like: 300k rows, 2,000 speakers). Prints a
table: rows, speakers, rule, implementation, wall seconds, microseconds per plan row.

- `old`: the pre-grouping code (a copy kept in tests/pipeline/test_augment_plan.py), on sizes it
  can finish; `v1`: pipeline/augment.py at plan version 1 (must equal `old`); `v2`: the default
  plan version, whose uniform-row draw is O(K) per row.
- `v1` permutes every candidate of every row (numpy's shuffle, in C): O(pool) per row however the
  candidates are found. At full size it is timed on a slice of the sources against the full pool
  (`--row-slice`), and the table says so; the projection is per-row time x rows.

    PYTHONPATH=$PWD python bench/bench_augment_plan.py
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipeline.augment import AugmentOptions, augment_plan

UTTERANCES_PER_SPEAKER = 150


def corpus(rows: int, speakers: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    speaker = rng.integers(0, speakers, size=rows)
    ids = [f"{s:04d}/{i:07d}" for i, s in enumerate(speaker)]
    return pa.table({"id": ids, "audio": [f"audio/{i}.flac" for i in ids], "text": ["some words"] * rows, "speaker": [f"spk{s:04d}" for s in speaker]})


def timed(fn, *args) -> tuple[tuple[float, float], pa.Table]:
    """(wall s, process CPU s) and the result."""
    started, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return (time.perf_counter() - started, time.process_time() - cpu), result


def main() -> None:
    from tests.pipeline.test_augment_plan import legacy_augment_plan

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old-sizes", type=int, nargs="+", default=[2500, 5000, 10000], help="rows where old and new both run")
    parser.add_argument("--sizes", type=int, nargs="+", default=[30000, 100000, 300000], help="rows for the new code alone")
    parser.add_argument("--row-slice", type=int, default=2000, help="sources timed for uniform-row at sizes above --old-sizes")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="bench_plan_"))
    lines = [
        f"load average at start: {os.getloadavg()[0]:.2f} (wall depends on it; CPU s less so)",
        "",
        "| rows | speakers | rule | code | wall s | CPU s | CPU us / plan row | note |",
        "|---:|---:|---|---|---:|---:|---:|---|",
    ]

    def report(rows: int, speakers: int, rule: str, code: str, seconds: tuple[float, float], plan_rows: int, note: str = "") -> None:
        wall, cpu = seconds
        lines.append(f"| {rows:,} | {speakers:,} | {rule} | {code} | {wall:.2f} | {cpu:.2f} | {cpu / plan_rows * 1e6:.1f} | {note} |")
        print(lines[-1], flush=True)

    print("\n".join(lines), flush=True)
    for rows in args.old_sizes:
        speakers = max(2, rows // UTTERANCES_PER_SPEAKER)
        table = corpus(rows, speakers)
        old_s, old = timed(legacy_augment_plan, table, base, AugmentOptions())
        report(rows, speakers, "uniform-row", "old", old_s, old.num_rows)
        new_s, new = timed(augment_plan, table, base, AugmentOptions(plan_version=1))
        assert new.equals(old), "the version-1 uniform-row plan differs from the old one"
        report(rows, speakers, "uniform-row", "v1", new_s, new.num_rows, f"equal to old; {old_s[1] / new_s[1]:.1f}x less CPU")
        v2_s, v2 = timed(augment_plan, table, base, AugmentOptions())
        report(rows, speakers, "uniform-row", "v2", v2_s, v2.num_rows, f"{old_s[1] / v2_s[1]:.1f}x less CPU than old")
        spk_s, spk = timed(augment_plan, table, base, AugmentOptions(prompt_sampling="uniform-speaker"))
        report(rows, speakers, "uniform-speaker", "v2", spk_s, spk.num_rows)
    for rows in args.sizes:
        speakers = max(2, rows // UTTERANCES_PER_SPEAKER)
        table = corpus(rows, speakers)
        spk_s, spk = timed(augment_plan, table, base, AugmentOptions(prompt_sampling="uniform-speaker"))
        report(rows, speakers, "uniform-speaker", "v2", spk_s, spk.num_rows, "full plan")
        v2_s, v2 = timed(augment_plan, table, base, AugmentOptions())
        report(rows, speakers, "uniform-row", "v2", v2_s, v2.num_rows, "full plan (the default)")
        count = min(rows, args.row_slice)
        sources = table.slice(0, count)
        # the slice's rows against the full pool: what each row of the full plan costs
        row_s, row_plan = timed(augment_plan, sources, base, AugmentOptions(plan_version=1), table, base)
        note = "full plan" if count == rows else f"{count:,} sources x full pool; projected {row_s[1] / count * rows:,.0f} CPU s for all rows"
        report(rows, speakers, "uniform-row", "v1", row_s, row_plan.num_rows, note)
    lines.append(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
