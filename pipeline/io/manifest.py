"""Parquet manifests: the column schema, reading, and validation with row/column-level problems.

Two kinds of problem are told apart:
- structural problems (a missing or mistyped column, a null or duplicate id, an invalid
  per-row parameter) make the manifest invalid: no job starts on it;
- row problems (a null audio path, a file that does not exist) are reported by
  `hsp manifest validate` too, but a job runs anyway and records those rows in its errors
  table, so one missing file among millions does not stop a cluster job (`--strict` refuses).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import InputError
from pipeline.io.audio_source import file_problem
from pipeline.io.keys import sample_key
from pipeline.io.uri import is_uri, local_path, manifest_base, resolve

Kind = Literal["string", "number", "integer", "bool"]
Severity = Literal["error", "row"]


@dataclass(frozen=True)
class Column:
    """One manifest column: its type, whether it must exist, and per-value checks."""

    name: str
    kind: Kind
    required: bool = False
    is_path: bool = False
    # written by the pipeline itself (e.g. tar input's byte offsets): refused in a user's manifest
    internal: bool = False
    doc: str = ""
    check: Callable[[Any], str | None] | None = None  # returns a problem message or None


def positive(value: Any) -> str | None:
    return None if value > 0 else f"must be > 0, got {value}"


def non_negative(value: Any) -> str | None:
    return None if value >= 0 else f"must be >= 0, got {value}"


def in_unit_interval(value: Any) -> str | None:
    return None if 0.0 <= value <= 1.0 else f"must be within [0, 1], got {value}"


BASE_COLUMNS: tuple[Column, ...] = (
    Column("id", "string", required=True, doc="unique sample id; the output key is derived from it"),
    Column("audio", "string", required=True, is_path=True, doc="local path (relative to the manifest) or URI"),
    Column("text", "string", doc="transcript"),
    Column("speaker", "string", doc="speaker label"),
    Column("language", "string", doc="language / espeak voice, e.g. en-us"),
    Column("duration", "number", check=non_negative, doc="seconds (from the header)"),
    Column("sample_rate", "integer", check=positive, doc="Hz (from the header)"),
)


def with_base_columns(extra: Sequence[Column]) -> tuple[Column, ...]:
    """BASE_COLUMNS plus a job's own columns; a job's column of the same name replaces the base one."""
    names = {c.name for c in extra}
    return tuple(c for c in BASE_COLUMNS if c.name not in names) + tuple(extra)


@dataclass(frozen=True)
class Problem:
    """A validation finding, located by 0-based row and column where that applies."""

    severity: Severity
    message: str
    row: int | None = None
    column: str | None = None
    sample_id: str | None = None

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}" + (f" (id {self.sample_id!r})" if self.sample_id is not None else ""))
        if self.column is not None:
            where.append(f"column '{self.column}'")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


@dataclass
class ValidationReport:
    """All problems of one manifest; `ok` is False when any structural problem exists."""

    rows: int
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def row_problems(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "row"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def format(self, limit: int = 50) -> str:
        lines = [f"{self.rows} rows: {len(self.errors)} structural problem(s), {len(self.row_problems)} row problem(s)"]
        ordered = self.errors + self.row_problems
        lines += [f"  [{'invalid' if p.severity == 'error' else 'row'}] {p}" for p in ordered[:limit]]
        if len(ordered) > limit:
            lines.append(f"  ... and {len(ordered) - limit} more")
        return "\n".join(lines)


class ManifestError(InputError):
    """The manifest is invalid; the message lists the problems with rows and columns."""

    def __init__(self, path: str, report: ValidationReport):
        super().__init__(f"invalid manifest {path}:\n{report.format()}\nFix these rows (see `hsp manifest validate`).")
        self.report = report


def is_string_like(arrow_type: pa.DataType) -> bool:
    """string, large_string, string_view, or a dictionary of those (pandas/Polars categoricals)."""
    if pa.types.is_dictionary(arrow_type):
        return is_string_like(arrow_type.value_type)
    return (
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or (hasattr(pa.types, "is_string_view") and pa.types.is_string_view(arrow_type))
    )


def plain_strings(table: pa.Table) -> pa.Table:
    """`table` with dictionary-encoded and view string columns cast to string (large_string kept).

    Every string-like column then reads the same downstream (to_pylist, compute functions, IPC
    fingerprint); large_string stays, so the fingerprint of a manifest accepted before is unchanged.
    """
    fields = []
    for field_ in table.schema:
        kind = field_.type
        if pa.types.is_dictionary(kind) and is_string_like(kind.value_type):
            kind = pa.large_string() if pa.types.is_large_string(kind.value_type) else pa.string()
        elif hasattr(pa.types, "is_string_view") and pa.types.is_string_view(kind):
            kind = pa.string()
        fields.append(field_.with_type(kind))
    schema = pa.schema(fields, metadata=table.schema.metadata)
    return table if schema.equals(table.schema) else table.cast(schema)


class ManifestReadError(InputError):
    """The manifest file cannot be read as Parquet (e.g. a CSV file renamed to .parquet)."""


class ManifestNotFoundError(InputError, FileNotFoundError):
    """The manifest path names nothing."""


def _looks_like(path: str | Path) -> str | None:
    """What a local non-Parquet file seems to be, from its first bytes: 'CSV', 'JSON', 'text' or None."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    first = text.lstrip().split("\n", 1)[0]
    if first.startswith(("{", "[")):
        return "JSON"
    if "," in first or "\t" in first:
        return "CSV"
    return "text" if text.strip() else None


def read_manifest(path: str | Path) -> pa.Table:
    """Read a Parquet manifest (file, directory of parts, ``file://`` or remote URI); string-like columns as strings."""
    path = str(path)
    filesystem, target = None, local_path(path)
    try:
        if is_uri(path):
            from pipeline.io.storage import arrow_filesystem

            filesystem, target = arrow_filesystem(path)
        return plain_strings(pq.read_table(target, filesystem=filesystem))
    except FileNotFoundError as exc:
        raise ManifestNotFoundError(f"manifest not found: {path}") from exc
    except (pa.ArrowInvalid, OSError) as exc:
        kind = None if is_uri(str(path)) or not os.path.isfile(path) else _looks_like(path)
        if kind is not None:
            convert = (
                "convert it: python -c \"import pyarrow.csv as c, pyarrow.parquet as p; "
                f"p.write_table(c.read_csv('{path}'), 'manifest.parquet')\", or "
                if kind == "CSV" else ""
            )
            raise ManifestReadError(
                f"manifest {path} is a {kind} file, not Parquet (whatever its name); "
                f"{convert}build one with `hsp manifest build CORPUS -o manifest.parquet`"
            ) from exc
        reason = " ".join(str(exc).split())
        raise ManifestReadError(f"cannot read manifest {path} as Parquet ({reason}); pass a Parquet file, a folder of Parquet parts or a URI") from exc


def resolve_path(value: str, base_dir: str | Path | None) -> str:
    """A manifest path made usable: relative to the manifest's folder, ``file://`` decoded; URIs pass (see pipeline.io.uri)."""
    return resolve(value, base_dir)


def _type_matches(arrow_type: pa.DataType, kind: Kind) -> bool:
    if pa.types.is_null(arrow_type):
        return True  # an all-null column: values are checked per row
    if kind == "string":
        return is_string_like(arrow_type)
    if kind == "integer":
        return pa.types.is_integer(arrow_type)
    if kind == "number":
        return pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type)
    return pa.types.is_boolean(arrow_type)


def _check_values(table: pa.Table, column: Column, ids: Sequence[str | None], report: ValidationReport) -> None:
    values = table.column(column.name).to_pylist()
    for row, value in enumerate(values):
        if value is None:
            if column.name == "id":
                report.problems.append(Problem("error", "id is null; every row needs an id", row, "id"))
            elif column.required:
                report.problems.append(Problem("row", "required value is null", row, column.name, ids[row]))
            continue
        if isinstance(value, float) and not math.isfinite(value):
            report.problems.append(Problem("error", f"value is {value}", row, column.name, ids[row]))
            continue
        if column.kind == "string" and column.required and value == "":
            severity: Severity = "error" if column.name == "id" else "row"
            report.problems.append(Problem(severity, "value is an empty string", row, column.name, ids[row]))
            continue
        if column.check is not None and (message := column.check(value)):
            report.problems.append(Problem("error", message, row, column.name, ids[row]))


def _check_files(paths: list[tuple[int, str]], column: str, ids: Sequence[str | None], report: ValidationReport) -> None:
    local = [(row, p) for row, p in paths if not is_uri(p)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        problems = list(pool.map(lambda item: file_problem(item[1]), local))
    for (row, _), problem in zip(local, problems, strict=True):
        if problem is not None:
            report.problems.append(Problem("row", problem, row, column, ids[row]))


def validate_table(
    table: pa.Table,
    columns: Iterable[Column] = BASE_COLUMNS,
    *,
    base_dir: str | Path | None = None,
    check_files: bool = True,
    allow_internal: bool = False,
) -> ValidationReport:
    """Check schema, types, nulls, duplicate ids and keys, per-row parameters and (optionally) files.

    Columns marked `internal` are refused unless `allow_internal` (the job's own internal manifest).
    `base_dir`: the manifest's folder (local or URI, see `pipeline.io.uri.manifest_base`).
    """
    columns = list(columns)
    report = ValidationReport(rows=table.num_rows)
    if table.num_rows == 0:
        report.problems.append(Problem("error", "the manifest has no rows"))
        return report
    present = set(table.column_names)
    for column in columns:
        if column.name not in present:
            if column.required:
                report.problems.append(
                    Problem("error", f"required column is missing (columns present: {sorted(present)})", None, column.name)
                )
            continue
        if column.internal and not allow_internal:
            report.problems.append(
                Problem(
                    "error",
                    f"column is internal to the pipeline ({column.doc or 'written by the pipeline itself'}) and not "
                    "accepted in a manifest; remove it (for tar input, give the shards themselves as the input)",
                    None,
                    column.name,
                )
            )
            continue
        arrow_type = table.schema.field(column.name).type
        if not _type_matches(arrow_type, column.kind):
            report.problems.append(Problem("error", f"expected {column.kind} values, found Arrow type {arrow_type}", None, column.name))
    if report.errors:
        return report  # values cannot be checked meaningfully on a broken schema

    ids = table.column("id").to_pylist()
    for column in columns:
        if column.name in present:
            _check_values(table, column, ids, report)

    rows_by_id: dict[str, list[int]] = {}
    for row, sample_id in enumerate(ids):
        if sample_id is not None:
            rows_by_id.setdefault(sample_id, []).append(row)
    for sample_id, rows in rows_by_id.items():
        if len(rows) > 1:
            report.problems.append(Problem("error", f"duplicate id {sample_id!r} in rows {rows}", rows[1], "id", sample_id))
    key_counts = Counter(sample_key(i) for i in rows_by_id)
    for sample_id, rows in rows_by_id.items():
        if key_counts[sample_key(sample_id)] > 1:
            report.problems.append(
                Problem("error", f"id maps to output key {sample_key(sample_id)!r} shared with another id", rows[0], "id", sample_id)
            )

    if check_files:
        base = base_dir if base_dir is not None else Path.cwd()
        for column in columns:
            if column.is_path and column.name in present:
                values = table.column(column.name).to_pylist()
                paths = [(row, resolve_path(v, base)) for row, v in enumerate(values) if v]
                _check_files(paths, column.name, ids, report)
    return report


def validate_manifest(path: str | Path, columns: Iterable[Column] = BASE_COLUMNS, *, check_files: bool = True) -> ValidationReport:
    """Read and validate a manifest file; see `validate_table`."""
    table = read_manifest(path)
    return validate_table(table, columns, base_dir=manifest_base(path), check_files=check_files)


def manifest_fingerprint(table: pa.Table) -> str:
    """sha256 over the manifest's content, to refuse resuming an output with a different manifest."""
    digest = hashlib.sha256()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    digest.update(sink.getvalue().to_pybytes())
    return digest.hexdigest()
