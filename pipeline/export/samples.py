"""A job output's committed samples as one stream, for every export.

The index is read one committed part at a time (a part lists at most `rows_per_shard` samples),
and each of its shards is streamed once, in tar order, keeping only the members an export needs.
Memory is one index part plus one sample, whatever the size of the corpus. The order is fixed
(parts by name, shards by name, samples in tar order), so two exports of one output write the
same files.

Which samples: those whose index row did not fail a quality gate (`gates_passed` is not False:
synthesize, augment and, later, score write it; prepare, extract and upsample have no gates),
or all with ``include_failed``. Every index column a job writes, including ones this module does
not know yet (score columns), travels with the sample (`ExportSample.provenance`).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

from pipeline.errors import OutputError
from pipeline.export.errors import ExportError
from pipeline.io.output import INDEX, OutputDir, check_schema_version
from pipeline.io.shards import iter_samples

LAYOUT_COLUMNS = ("key", "shard", "row")  # where a sample is stored, not what it is
GATE_COLUMN = "gates_passed"


def passes_gates(row: dict[str, Any]) -> bool:
    """The one selection rule: a sample is kept unless a gate marked it failed."""
    return row.get(GATE_COLUMN) is not False


def json_safe(value: Any) -> Any:
    """`value` with non-finite floats as None, so every format's JSON is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


@dataclass(frozen=True)
class ExportSample:
    """One committed sample: its index row, its json member and its audio member as stored."""

    id: str
    key: str
    index: dict[str, Any]
    meta: dict[str, Any]
    audio: bytes
    audio_ext: str  # file-format suffix of the audio member ("flac")
    sample_rate: int
    num_samples: int
    channels: int
    subtype: str  # the audio header's sample format, e.g. PCM_16

    @property
    def duration(self) -> float:
        """Seconds, exact: samples / rate from the audio header."""
        return self.num_samples / self.sample_rate

    @property
    def member_name(self) -> str:
        """``<key>.<ext>``: the name the audio has in every export (keys are safe names)."""
        return f"{self.key}.{self.audio_ext}"

    @property
    def text(self) -> str | None:
        return self.index.get("text") or self.meta.get("text")

    @property
    def speaker(self) -> str | None:
        return self.index.get("speaker") or self.meta.get("speaker")

    @property
    def language(self) -> str | None:
        tokens = self.meta.get("tokens")
        fallback = tokens.get("language") if isinstance(tokens, dict) else None
        return self.index.get("language") or self.meta.get("language") or fallback

    @property
    def bits(self) -> int | None:
        """Bits per sample of integer PCM audio (from the header); None for float or compressed formats."""
        digits = "".join(c for c in self.subtype if c.isdigit())
        return int(digits) if self.subtype.startswith("PCM") and digits else None

    def provenance(self) -> dict[str, Any]:
        """Index columns (all of them but the storage layout) plus the producing job, JSON-safe."""
        fields = {name: value for name, value in self.index.items() if name not in LAYOUT_COLUMNS}
        fields["job"] = self.meta.get("job")
        return json_safe(fields)

    def meta_json(self) -> str:
        """The sample's json member, re-serialized as strict compact JSON."""
        return json.dumps(json_safe(self.meta), sort_keys=True, ensure_ascii=False, allow_nan=False)


class SampleSource:
    """The exportable samples of a job output (local path or pyarrow URI), iterable more than once."""

    def __init__(self, output: str | Path, *, include_failed: bool = False, audio_member: str = "flac"):
        self.root = str(output)
        self.out = OutputDir(self.root)
        self.include_failed = include_failed
        self.audio_member = audio_member
        self.job = self._read_job()
        self.parts = sorted(self.out.committed_parts())

    def _read_job(self) -> dict[str, Any]:
        try:
            return self.out.read_job()
        except OutputError as exc:  # not an output, or too new: the export's own error, same message
            raise ExportError(str(exc)) from exc

    @property
    def job_name(self) -> str:
        return str(self.job.get("job", "unknown"))

    def _part_path(self, part: str) -> str:
        return self.out.path(INDEX, f"part-{part}.parquet")

    def index_schema(self) -> pa.Schema:
        """The index columns of all committed parts (metadata only; parts of one job agree)."""
        schemas = []
        for part in self.parts:
            with self.out.fs.open_input_file(self._part_path(part)) as handle:
                schemas.append(pq.read_schema(handle))
        if not schemas:
            return pa.schema([])
        return pa.unify_schemas(schemas, promote_options="permissive")

    def _read_part(self, part: str, columns: list[str] | None = None) -> list[dict[str, Any]]:
        with self.out.fs.open_input_file(self._part_path(part)) as handle:
            if columns is not None:
                present = set(pq.read_schema(handle).names)
                columns = [c for c in columns if c in present]
                handle.seek(0)
            return pq.read_table(handle, columns=columns).to_pylist()

    def count(self) -> tuple[int, int]:
        """(samples to export, samples left out because a gate failed), from the index alone."""
        kept = dropped = 0
        for part in self.parts:
            for row in self._read_part(part, ["id", GATE_COLUMN]):
                if self.include_failed or passes_gates(row):
                    kept += 1
                else:
                    dropped += 1
        return kept, dropped

    def __iter__(self) -> Iterator[ExportSample]:
        for part in self.parts:
            rows = [r for r in self._read_part(part) if self.include_failed or passes_gates(r)]
            by_shard: dict[str, dict[str, dict[str, Any]]] = {}
            for row in rows:
                by_shard.setdefault(row["shard"], {})[row["key"]] = row
            for shard in sorted(by_shard):
                yield from self._shard_samples(shard, by_shard[shard])

    def _shard_samples(self, shard: str, wanted: dict[str, dict[str, Any]]) -> Iterator[ExportSample]:
        seen: set[str] = set()
        for key, members in iter_samples(self.out.path(shard), fs=self.out.fs, exts=(self.audio_member, "json"), keys=wanted):
            row = wanted[key]
            seen.add(key)
            yield self._sample(shard, row, members)
        if len(seen) != len(wanted):
            missing = sorted(set(wanted) - seen)
            raise ExportError(
                f"{self.root}/{shard} lacks {len(missing)} sample(s) its index lists (e.g. {missing[:3]}); "
                "the output is damaged: re-run the job into a new folder"
            )

    def _sample(self, shard: str, row: dict[str, Any], members: dict[str, bytes]) -> ExportSample:
        label = f"sample {row['id']!r} ({self.root}/{shard})"
        audio = members.get(self.audio_member)
        if audio is None:
            raise ExportError(f"{label} has no {self.audio_member!r} member (it has {sorted(members)}); choose the audio member to export")
        try:
            info = sf.info(io.BytesIO(audio))
        except (RuntimeError, sf.LibsndfileError) as exc:
            raise ExportError(f"{label}: the {self.audio_member!r} member is not readable audio ({exc})") from exc
        meta: dict[str, Any] = {}
        if "json" in members:
            try:
                meta = json.loads(members["json"])
                check_schema_version(meta, label)
            except OutputError as exc:
                raise ExportError(str(exc)) from exc
            except ValueError as exc:
                raise ExportError(f"{label}: its json member is not valid JSON ({exc})") from exc
        return ExportSample(
            id=row["id"],
            key=row["key"],
            index=row,
            meta=meta,
            audio=audio,
            audio_ext=self.audio_member.rsplit(".", 1)[-1],
            sample_rate=int(info.samplerate),
            num_samples=int(info.frames),
            channels=int(info.channels),
            subtype=str(info.subtype),
        )

