"""`hsp export hf`: Hugging Face Parquet with the `datasets` Audio feature, written by `datasets`.

Layout under DIR: ``<split>-NNNNN.parquet``, each at most `max_shard_bytes` of audio and
metadata (a file holds at least one sample), loadable with
``datasets.load_dataset("parquet", data_dir=DIR)`` or streamed with ``streaming=True``.

Columns: ``id`` (the manifest id), ``key``, ``audio`` (``{bytes, path}``: the stored FLAC bytes,
not decoded, and ``<key>.flac`` so readers know the format), ``duration``, ``sample_rate``,
``text``, ``speaker``, ``language``, then every other index column of the job with its type
(``source_id``, ``prompt_id``, ``mode``, ``seed``, ``gates_passed``, score columns, ...), the
producing ``job`` and the sample's json as a string in ``meta``.

Written with `datasets`' own Parquet writer (`datasets.arrow_writer.ParquetWriter`, what
`Dataset.to_parquet` and the Hub use: the features in the schema metadata, audio bytes stored
uncompressed, content-defined chunking), one row group of `rows_per_group` samples at a time, so
memory holds one row group, not a shard. Rows go in as Arrow data already in the Audio storage
type, so writing needs no audio codec (`datasets` encodes audio with torchcodec only when handed
arrays).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
from datasets import Audio, Features, Value
from datasets.arrow_writer import ParquetWriter

from pipeline.export.options import HuggingFaceOptions
from pipeline.export.run import ExportResult, ExportRun
from pipeline.export.samples import LAYOUT_COLUMNS, ExportSample

ROW_OVERHEAD_BYTES = 256  # per-row bookkeeping beyond the audio and json bytes, for shard sizing


def _fixed_features() -> dict[str, Any]:
    return {
        "id": Value("string"),
        "key": Value("string"),
        "audio": Audio(),
        "duration": Value("float64"),
        "sample_rate": Value("int64"),
        "text": Value("string"),
        "speaker": Value("string"),
        "language": Value("string"),
    }


def hf_features(index_schema: pa.Schema) -> Features:
    """`datasets.Features` of the export: fixed columns, the job's index columns, job, meta."""
    fixed = _fixed_features()
    extra = pa.schema([f for f in index_schema if f.name not in fixed and f.name not in LAYOUT_COLUMNS and f.name not in ("job", "meta")])
    return Features({**fixed, **Features.from_arrow_schema(extra), "job": Value("string"), "meta": Value("string")})


def sample_row(sample: ExportSample, extra_columns: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": sample.id,
        "key": sample.key,
        "audio": {"bytes": sample.audio, "path": sample.member_name},
        "duration": sample.duration,
        "sample_rate": sample.sample_rate,
        "text": sample.text,
        "speaker": sample.speaker,
        "language": sample.language,
    }
    for name in extra_columns:
        row[name] = sample.index.get(name)
    row["job"] = sample.meta.get("job")
    row["meta"] = sample.meta_json()
    return row


def shard_name(split: str, shard: int) -> str:
    return f"{split}-{shard:05d}.parquet"


class _ShardWriter:
    """One Parquet file in the staging folder, written a row group at a time by `datasets`."""

    def __init__(self, run: ExportRun, features: Features, name: str, rows_per_group: int):
        self.run, self.features, self.name, self.rows_per_group = run, features, name, rows_per_group
        self.schema = features.arrow_schema
        self.writer = ParquetWriter(features=features, path=str(run.target.staged(name)))
        self.rows: list[dict[str, Any]] = []
        self.bytes = 0
        self.count = 0

    def add(self, row: dict[str, Any], size: int) -> None:
        self.rows.append(row)
        self.bytes += size
        self.count += 1
        if len(self.rows) >= self.rows_per_group:
            self._flush()

    def _flush(self) -> None:
        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.rows = []

    def commit(self) -> int:
        self._flush()
        self.writer.finalize()
        self.writer.close()
        self.run.target.commit(self.name)
        return self.count


def export_huggingface(
    output: str | Path, to: str | Path, options: HuggingFaceOptions | None = None, *, progress: bool = True
) -> ExportResult:
    """Write the output's samples as Hugging Face Parquet files in `to`; returns what was written."""
    options = options or HuggingFaceOptions()
    with ExportRun("huggingface", output, to, options, progress=progress) as run:
        features = hf_features(run.source.index_schema())
        fixed = set(_fixed_features())
        extra_columns = [name for name in features if name not in fixed and name not in ("job", "meta")]
        current: _ShardWriter | None = None
        sizes: list[int] = []
        for sample in run.samples():
            row = sample_row(sample, extra_columns)
            size = len(sample.audio) + len(row["meta"].encode("utf-8")) + ROW_OVERHEAD_BYTES
            if current is not None and current.count and current.bytes + size > options.max_shard_bytes:
                sizes.append(current.commit())
                current = None
            if current is None:
                current = _ShardWriter(run, features, shard_name(options.split, len(sizes)), options.rows_per_group)
            current.add(row, size)
        if current is not None:
            sizes.append(current.commit())
        details = {
            "split": options.split,
            "shards": len(sizes),
            "rows_per_shard": sizes,
            "columns": list(features),
            "datasets": datasets.__version__,
            "read_with": f"datasets.load_dataset('parquet', data_dir={str(run.to)!r})",
        }
        return run.finish(details, (f"{options.split}-*.parquet",))
