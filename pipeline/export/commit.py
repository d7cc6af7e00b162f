"""A destination folder that exports write only by rename.

Every file is first written complete under its final name inside a staging folder
(``DIR/.tmp-<run>/``), then renamed into place: a reader, or a killed export, never sees a
half-written file. gzip headers are stamped with mtime 0 (RFC 1952: "no time stamp") and the
staging folder keeps final names, so compressed files are the same bytes on every run.

A run starts by removing staging folders of killed runs and the previous ``export.json``; it ends
by removing files of an earlier export that this run did not write again (a re-run with fewer
shards) and committing ``export.json`` last, listing every file: ``export.json`` exists only while
the folder holds a complete export. A re-run of a killed export rewrites the same bytes under the
same names. One run at a time per folder (a lock file).

The lock, the staging folder and ``export.json`` live in DIR, except for Shar, whose reader takes
every file of DIR as a field: there they live in the hidden sidecar folder ``.<DIR name>.export``
beside DIR.
"""

from __future__ import annotations

import fcntl
import fnmatch
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from pipeline.export.errors import ExportError

STAGING_PREFIX = ".tmp-"
LOCK_NAME = ".export.lock"
REPORT_NAME = "export.json"
EXPORT_SCHEMA_VERSION = 1


def _rename(src: Path, dst: Path) -> None:
    """The commit point of one file (atomic within one filesystem)."""
    os.replace(src, dst)


def zero_gzip_mtime(path: Path) -> None:
    """Set the MTIME field of a gzip member header to 0, so identical content gives identical bytes."""
    with open(path, "r+b") as handle:
        header = handle.read(8)
        if len(header) == 8 and header[:2] == b"\x1f\x8b":
            handle.seek(4)
            handle.write(b"\0\0\0\0")


class ExportDir:
    """The folder an export writes. Use as a context manager; stage files, commit them, then `finish`."""

    def __init__(self, path: str | Path, kind: str, *, sidecar: bool = False):
        self.path = Path(path).resolve()
        self.kind = kind
        # where the lock, the staging folder and export.json live: DIR itself, or beside it for
        # formats whose readers take every file of DIR as data (Shar)
        self.state = self.path.parent / f".{self.path.name}.export" if sidecar else self.path
        self.committed: list[str] = []  # listed files (manifests, shards): a few per shard
        self.bulk_files = 0  # per-sample files (audio/), counted, not listed: memory stays flat
        self._staging: Path | None = None
        self._started_ns = 0
        self._lock_handle: Any = None

    @property
    def report_path(self) -> Path:
        return self.state / REPORT_NAME

    def __enter__(self) -> ExportDir:
        if self.path.exists() and not self.path.is_dir():
            raise ExportError(f"--to {self.path} is a file; give a folder for the export")
        self.path.mkdir(parents=True, exist_ok=True)
        self.state.mkdir(parents=True, exist_ok=True)
        self._lock()
        previous = self.read_report()
        if previous is not None and previous.get("format") != self.kind:
            self._unlock()
            raise ExportError(
                f"{self.path} holds a {previous.get('format')!r} export; write the {self.kind!r} export to another folder"
            )
        self.report_path.unlink(missing_ok=True)  # present again only once this run completes
        for leftover in self.state.glob(f"{STAGING_PREFIX}*"):  # staging of killed runs
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        self._staging = self.state / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
        self._staging.mkdir()
        self._started_ns = self._staging.stat().st_mtime_ns  # the filesystem's clock, as files' mtimes
        return self

    def __exit__(self, *exc: object) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
        self._unlock()

    def _lock(self) -> None:
        self._lock_handle = open(self.state / LOCK_NAME, "a+")  # noqa: SIM115 - held for the run
        try:
            fcntl.flock(self._lock_handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock_handle.close()
            self._lock_handle = None
            raise ExportError(f"another export is writing to {self.path} right now; wait for it or use another folder") from exc

    def _unlock(self) -> None:
        if self._lock_handle is not None:
            fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
            self._lock_handle.close()
            self._lock_handle = None

    @property
    def staging(self) -> Path:
        if self._staging is None:
            raise RuntimeError("ExportDir is used outside its `with` block")
        return self._staging

    def staged(self, name: str) -> Path:
        """Where to write `name` (a relative path) before committing it; its folder exists."""
        path = self.staging / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def final(self, name: str) -> Path:
        """Where `name` lives once committed."""
        return self.path / name

    def commit(self, name: str, *, listed: bool = True) -> Path:
        """Rename the staged `name` into place; returns its final path.

        listed=False for per-sample files (one per sample, millions in a corpus): they are counted,
        and files of an earlier run in their folder are found by age in `finish`, not by a list.
        """
        staged, final = self.staging / name, self.path / name
        if name.endswith(".gz"):
            zero_gzip_mtime(staged)
        final.parent.mkdir(parents=True, exist_ok=True)
        _rename(staged, final)
        if listed:
            self.committed.append(name)
        else:
            self.bulk_files += 1
        return final

    def read_report(self) -> dict[str, Any] | None:
        if not self.report_path.is_file():
            return None
        try:
            return json.loads(self.report_path.read_text(encoding="utf-8"))
        except ValueError:
            return None

    def finish(self, report: dict[str, Any], patterns: tuple[str, ...], bulk_dirs: tuple[str, ...] = ()) -> None:
        """Remove what an earlier export left and this run did not write, then commit the report.

        patterns: top-level names of listed files (``cuts.*.jsonl.gz``); bulk_dirs: folders of
        unlisted per-sample files, where a file older than this run was not written again.
        """
        written = set(self.committed)
        for entry in os.scandir(self.path):
            if entry.is_file() and entry.name not in written and any(fnmatch.fnmatch(entry.name, p) for p in patterns):
                os.unlink(entry.path)
        for folder in bulk_dirs:
            if (self.path / folder).is_dir():
                for entry in os.scandir(self.path / folder):
                    if entry.is_file() and entry.stat().st_mtime_ns < self._started_ns:
                        os.unlink(entry.path)
        files = sorted(written) + [f"{folder}/" for folder in bulk_dirs]
        record = {"format": self.kind, "export_schema_version": EXPORT_SCHEMA_VERSION, **report, "files": files, "bulk_files": self.bulk_files}
        staged = self.staged(REPORT_NAME)
        staged.write_text(json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
        _rename(staged, self.report_path)
