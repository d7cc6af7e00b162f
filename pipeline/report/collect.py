"""What the report shows, gathered with bounded memory.

The index and errors tables are read one committed part file at a time, and only the columns
the plots need: durations go into a float32 array (4 bytes a row), speakers, rates and channel
counts into counters, and a seeded reservoir keeps `k` rows to open later. Tars are opened only
for the reservoir's samples (see `pipeline.io.shards`).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.io.output import ERRORS, INDEX, OutputDir
from pipeline.report.scores import ScoreStats

# index columns the report uses when a job has them
STAT_COLUMNS = ("duration", "source_duration", "speaker", "source_sample_rate", "source_channels", "sample_rate", "w2v_frames", "f0_frames")
KEEP_COLUMNS = ("id", "key", "shard", "row", "duration", "speaker", "text")
EXAMPLES_PER_ERROR = 3


@dataclass
class ErrorGroup:
    stage: str
    error: str
    count: int = 0
    example_ids: list[str] = field(default_factory=list)
    example_message: str = ""


@dataclass
class IndexStats:
    rows: int = 0
    durations: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    source_durations: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    w2v_frames: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    w2v_durations: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # aligned with w2v_frames
    speakers: Counter = field(default_factory=Counter)
    source_rates: Counter = field(default_factory=Counter)
    source_channels: Counter = field(default_factory=Counter)
    output_rates: Counter = field(default_factory=Counter)
    columns: set[str] = field(default_factory=set)
    sampled: list[dict[str, Any]] = field(default_factory=list)  # the reservoir, in a seeded random order
    scores: ScoreStats = field(default_factory=ScoreStats)  # quality-score distributions and worst rows


def _part_files(out: OutputDir, sub: str) -> list[str]:
    return out.part_files(sub)  # the committed parts' files (on object stores, the winning attempt's)


def scan_index(out: OutputDir, k: int, seed: int, progress: Any = None, worst: int = 3) -> IndexStats:
    """Stream the committed index parts: histograms' inputs, a seeded reservoir of `k` rows, and the
    `worst` rows of each quality score."""
    stats = IndexStats(scores=ScoreStats(worst=worst))
    rng = random.Random(seed)
    chunks: dict[str, list[np.ndarray]] = {"duration": [], "source_duration": [], "w2v_frames": [], "w2v_durations": []}
    for name in _part_files(out, INDEX):
        with out.fs.open_input_file(out.path(INDEX, name)) as handle:
            parquet = pq.ParquetFile(handle)
            present = set(parquet.schema_arrow.names)
            stats.columns |= present
            wanted = [c for c in (*KEEP_COLUMNS, *STAT_COLUMNS, *ScoreStats.columns_in(present)) if c in present]
            table = parquet.read(columns=list(dict.fromkeys(wanted)))
        for column in ("duration", "source_duration"):
            if column in present:
                chunks[column].append(_floats(table, column))
        if "w2v_frames" in present and "duration" in present:
            chunks["w2v_frames"].append(_floats(table, "w2v_frames"))
            chunks["w2v_durations"].append(_floats(table, "duration"))
        for column, counter in (("speaker", stats.speakers), ("source_sample_rate", stats.source_rates),
                                ("source_channels", stats.source_channels), ("sample_rate", stats.output_rates)):
            if column in present:
                counter.update(v for v in table.column(column).to_pylist() if v is not None)
        keep = {c: table.column(c).to_pylist() for c in KEEP_COLUMNS if c in present}
        stats.scores.add(table, keep)
        for i in range(table.num_rows):
            seen = stats.rows + i
            if len(stats.sampled) < k:
                stats.sampled.append({c: v[i] for c, v in keep.items()})
            else:
                j = rng.randrange(seen + 1)
                if j < k:
                    stats.sampled[j] = {c: v[i] for c, v in keep.items()}
        stats.rows += table.num_rows
        if progress is not None:
            progress.update(1)
    if chunks["duration"]:
        stats.durations = _finite(np.concatenate(chunks["duration"]))
    if chunks["source_duration"]:
        stats.source_durations = _finite(np.concatenate(chunks["source_duration"]))
    if chunks["w2v_frames"]:
        frames, durations = np.concatenate(chunks["w2v_frames"]), np.concatenate(chunks["w2v_durations"])
        ok = np.isfinite(frames) & np.isfinite(durations)
        stats.w2v_frames, stats.w2v_durations = frames[ok], durations[ok]
    stats.sampled.sort(key=lambda r: r["id"])  # independent of part order, then a seeded shuffle
    random.Random(seed).shuffle(stats.sampled)
    return stats


def _floats(table: Any, column: str) -> np.ndarray:
    """A column as float32, nulls as NaN."""
    values = table.column(column).cast(pa.float64()).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64).astype(np.float32)


def _finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def scan_errors(out: OutputDir) -> list[ErrorGroup]:
    """Errors grouped by (stage, type), largest group first, with a few example ids each."""
    groups: dict[tuple[str, str], ErrorGroup] = {}
    for name in _part_files(out, ERRORS):
        with out.fs.open_input_file(out.path(ERRORS, name)) as handle:
            table = pq.read_table(handle, columns=["id", "stage", "error", "message"])
        for sample_id, stage, error, message in zip(*(table.column(c).to_pylist() for c in ("id", "stage", "error", "message")), strict=True):
            group = groups.setdefault((stage, error), ErrorGroup(stage, error))
            group.count += 1
            if len(group.example_ids) < EXAMPLES_PER_ERROR:
                group.example_ids.append(sample_id)
                group.example_message = group.example_message or (message or "")
    return sorted(groups.values(), key=lambda g: (-g.count, g.stage, g.error))


def count_parts(out: OutputDir) -> int:
    return len(_part_files(out, INDEX))
