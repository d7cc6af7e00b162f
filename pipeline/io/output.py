"""The output directory of a job: layout, atomic commits, and what is already done.

Layout::

    OUT/shards/shard-<part>[-NN].tar     WebDataset shards
    OUT/index.parquet/part-<part>.parquet   one row per written sample (the commit record)
    OUT/errors.parquet/part-<part>.parquet  one row per failed manifest row
    OUT/job.json                           job name, options, manifest fingerprint
    OUT/summary.json                       written at the end of every run
    OUT/_state/                            run fence, run history, lock

A part is committed when its index part file exists: tars and the errors part are renamed into
place first, the index part last. On start, files of uncommitted parts and temporary files are
deleted, and the ids of committed parts are skipped, so a killed job re-run finishes the rest
exactly once without touching finished shards. Part names are a hash of every id the sink's
batch holds, deferred rows included, so a Ray task retried after a worker crash rewrites the same
part instead of adding a duplicate, even when the retry defers other rows than the first try did
(an out-of-memory retry is not deterministic). A batch whose rows were all deferred writes no part;
any other batch holds a committed row, so a later run (whose rows are all uncommitted) can never
form the same id set again.

On object stores (s3://) the protocol is the conditional one (docs/object-storage.md): tars and
the errors part are written under names carrying a random attempt token
(``shard-<part>-<attempt>.tar``, ``errors.parquet/part-<part>-<attempt>.parquet``), so no write
ever replaces another; the index part ``part-<part>.parquet`` is created exclusively (the commit)
and records its attempt in its Parquet metadata, which names the winning files when a retried or
concurrent attempt left others behind. The run lock is a lease object (`pipeline.io.lease`).
`protocol="rename"` keeps the local protocol on an object store (for stores that ignore
conditional writes; no lock there).

A write that fails for a reason on the user's side (full disk, read-only filesystem, a file where
the output folder should be, no permission) raises `OutputWriteError` with one line saying what to
do; its temporary file is deleted, so freeing space is not undone by our own leftovers.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from pipeline.errors import OutputError
from pipeline.io.uri import is_file_uri

SCHEMA_VERSION = 1
SHARDS = "shards"
INDEX = "index.parquet"
ERRORS = "errors.parquet"
STATE = "_state"
TMP_PREFIX = ".tmp-"
RUN_RECORD = "run.json"
PROBE_PREFIX = ".probe-"  # the start probe's objects (pipeline.io.object_store): left only by a kill mid-probe
ATTEMPT_KEY = b"hsp.attempt"  # index part metadata: the attempt whose tars and errors part it commits
ATTEMPT_LENGTH = 8  # hex characters of an attempt token
RENAME, CONDITIONAL = "rename", "conditional"

BASE_INDEX_FIELDS = [
    pa.field("id", pa.string()),
    pa.field("key", pa.string()),
    pa.field("shard", pa.string()),
    pa.field("row", pa.int64()),
    pa.field("duration", pa.float64()),  # seconds of output audio, when the job writes audio
    pa.field("source_duration", pa.float64()),  # seconds of input audio
]
ERRORS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("row", pa.int64()),
        pa.field("stage", pa.string()),
        pa.field("error", pa.string()),
        pa.field("message", pa.string()),
    ]
)


class OutputConflictError(OutputError):
    """OUT holds another job's output or is in use by another run."""


class OutputWriteError(OutputError):
    """Writing to OUT failed for a reason the user must fix: full disk, read-only filesystem, not a folder."""


class NotAnOutputError(OutputError, FileNotFoundError):
    """The folder given as a job output has no job.json: it is not (yet) the output of an hsp job."""


class OutputVersionError(OutputError):
    """The output (job.json, a sample's json) was written with a schema version this version cannot read."""


def check_schema_version(record: dict[str, Any], where: str) -> None:
    """Refuse a record stamped with a schema version newer than SCHEMA_VERSION (or not a version at all).

    Records without a stamp are read as version 1 (the stamp was there from the first release on).
    """
    version = record.get("schema_version", 1)
    if isinstance(version, int) and not isinstance(version, bool) and 1 <= version <= SCHEMA_VERSION:
        return
    from hierspeech import __version__

    raise OutputVersionError(
        f"{where} was written with output schema version {version!r}; hierspeech-pipeline {__version__} reads "
        f"versions up to {SCHEMA_VERSION}: upgrade hierspeech-pipeline to read it (or write to a new output folder)"
    )


def describe_write_failure(exc: OSError, root: str, path: str) -> str | None:
    """One line saying what happened to a failed write of `path` under output `root` and what to do; None if unknown."""
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        what = "no space left" if code == errno.ENOSPC else "the disk quota is used up"
        return (
            f"{what} on the disk of the output {root} (writing {path}): free space there and re-run the same "
            "command; finished shards are kept and the job resumes where it stopped"
        )
    if code == errno.EROFS:
        return f"the output {root} is on a read-only filesystem (writing {path}); pass -o a folder on a writable disk"
    if code in (errno.ENOTDIR, errno.EEXIST):
        if "://" not in root and Path(root).is_file():
            return f"the output {root} is a file, not a folder; pass -o a new folder (or the folder of an earlier run, to resume it)"
        return f"cannot create {path}: part of that path is a file, not a folder; pass -o a folder path"
    if code in (errno.EACCES, errno.EPERM):
        return f"no permission to write {path}; pass -o a folder you can write to"
    return None


def index_schema(job_fields: Iterable[pa.Field]) -> pa.Schema:
    return pa.schema(BASE_INDEX_FIELDS + list(job_fields))


def part_name(ids: Iterable[str]) -> str:
    """Deterministic name for a part from the ids it contains."""
    digest = hashlib.sha1("\n".join(sorted(ids)).encode("utf-8")).hexdigest()
    return digest[:20]


def new_attempt() -> str:
    """A random token naming one attempt's files of a part (conditional protocol)."""
    return uuid.uuid4().hex[:ATTEMPT_LENGTH]


def shard_part(name: str) -> tuple[str, str]:
    """(part, attempt) of a shard name: shard-<part>[-<attempt>][-NNN].tar; attempt "" for the rename protocol."""
    segments = name[len("shard-") :].split(".", 1)[0].split("-")
    attempt = segments[1] if len(segments) > 1 and len(segments[1]) == ATTEMPT_LENGTH else ""
    return segments[0], attempt


def part_file_part(name: str) -> tuple[str, str]:
    """(part, attempt) of an index/errors part file name: part-<part>[-<attempt>].parquet."""
    part, _, attempt = name[len("part-") : -len(".parquet")].partition("-")
    return part, attempt


@dataclass
class OutputDir:
    """An output root, a local folder or a URI (s3://, gs://, ...; see `pipeline.io.storage`).

    `protocol`: how parts are committed and runs locked, "rename" (local filesystems) or
    "conditional" (object stores; the default for every URI but file://).
    """

    root: str
    protocol: str | None = None

    def __post_init__(self) -> None:
        if "://" in self.root and not is_file_uri(self.root):
            from pipeline.io.storage import arrow_filesystem

            self.fs, self.base = arrow_filesystem(self.root)
        elif "://" in self.root:
            self.fs, self.base = pafs.FileSystem.from_uri(self.root)
        else:
            self.fs, self.base = pafs.LocalFileSystem(), str(Path(self.root).resolve())
        self.is_local = isinstance(self.fs, pafs.LocalFileSystem)
        if self.protocol is None:
            self.protocol = RENAME if self.is_local else CONDITIONAL
        if self.protocol not in (RENAME, CONDITIONAL) or (self.is_local and self.protocol == CONDITIONAL):
            raise ValueError(f"commit protocol {self.protocol!r} does not fit {self.root}")
        self._store = None
        self._lease = None
        self._run_id: str | None = None

    @property
    def conditional(self) -> bool:
        """True when parts commit by exclusive create and runs hold a lease (object stores)."""
        return self.protocol == CONDITIONAL

    @property
    def store(self):
        """The conditional-write store of this output (`pipeline.io.object_store`); conditional protocol only."""
        if self._store is None:
            from pipeline.io.object_store import open_store

            self._store = open_store(self.root)
        return self._store

    # -- paths -------------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return "/".join([self.base.rstrip("/"), *(p for p in parts if p)])

    def ensure_layout(self) -> None:
        if not self.is_local:
            return  # object stores have no folders to create: a key's prefix exists with the key
        for sub in (SHARDS, INDEX, ERRORS, STATE):
            with self.writing(self.path(sub)):
                self.fs.create_dir(self.path(sub), recursive=True)

    @contextlib.contextmanager
    def writing(self, path: str, tmp: str | None = None) -> Iterator[None]:
        """Turn a user-side write failure of `path` into `OutputWriteError`; delete `tmp` on any failure."""
        try:
            yield
        except BaseException as exc:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    self.fs.delete_file(tmp)
            if isinstance(exc, OSError) and not isinstance(exc, OutputWriteError):
                message = describe_write_failure(exc, self.root, path)
                if message is not None:
                    raise OutputWriteError(message) from exc
            raise

    def list_names(self, sub: str) -> list[str]:
        selector = pafs.FileSelector(self.path(sub), allow_not_found=True)
        return sorted(info.base_name for info in self.fs.get_file_info(selector) if info.type == pafs.FileType.File)

    def exists(self, *parts: str) -> bool:
        return self.fs.get_file_info(self.path(*parts)).type != pafs.FileType.NotFound

    # -- atomic writes ------------------------------------------------------------------------
    def write_atomic(self, sub: str, name: str, data: bytes) -> None:
        """Write to a temporary name in the same folder, then rename (atomic on local/POSIX); sub "" = root.

        Conditional protocol: one PUT to the final name (an object appears whole or not at all; a
        rename there would be a copy plus a delete).
        """
        if self.conditional:
            with self.writing(self.path(sub, name)), self.fs.open_output_stream(self.path(sub, name)) as stream:
                stream.write(data)
            return
        tmp = self.path(sub, f"{TMP_PREFIX}{uuid.uuid4().hex}-{name}")
        with self.writing(self.path(sub, name), tmp=tmp):
            with self.fs.open_output_stream(tmp) as stream:
                stream.write(data)
            self.fs.move(tmp, self.path(sub, name))

    def read_bytes(self, *parts: str) -> bytes:
        with self.fs.open_input_stream(self.path(*parts)) as stream:
            return stream.read()

    def write_json(self, name: str, payload: dict[str, Any], sub: str = "") -> None:
        data = json.dumps(payload, indent=2, sort_keys=True, default=str).encode("utf-8")
        self.write_atomic(sub, name, data)

    def read_json(self, *parts: str) -> dict[str, Any] | None:
        if not self.exists(*parts):
            return None
        return json.loads(self.read_bytes(*parts))

    def read_job(self, *, required: bool = True) -> dict[str, Any] | None:
        """job.json, checked: NotAnOutputError when missing (None if not `required`), OutputVersionError when too new."""
        try:
            job = self.read_json("job.json")
        except (OSError, ValueError) as exc:
            raise NotAnOutputError(f"cannot read {self.root}/job.json ({exc}); is {self.root} a job output?") from exc
        if job is None:
            if not required:
                return None
            raise NotAnOutputError(f"{self.root} is not a job output (no job.json); pass the -o folder of an hsp job")
        if not isinstance(job, dict):
            raise NotAnOutputError(f"{self.root}/job.json is not a job record (a JSON object); is {self.root} a job output?")
        check_schema_version(job, self.root)
        return job

    # -- runs -----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock for the run: `flock` on local filesystems, a lease on object stores.

        Conditional protocol: probes the store's conditional writes first (refused with one line
        when it ignores them), then holds ``_state/lease.json`` (see `pipeline.io.lease`) until the
        block ends. The rename protocol on an object store has no lock (see docs).
        """
        if self.conditional:
            with self._leased():
                yield
            return
        if not self.is_local:
            yield
            return
        lock_path = self.path(STATE, "lock")
        with self.writing(lock_path):
            handle = open(lock_path, "a+")  # noqa: SIM115 -- closed by the with-block below
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise OutputConflictError(
                    f"another run is writing to {self.root} right now; wait for it or use another output directory"
                ) from exc
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _leased(self) -> Iterator[None]:
        from pipeline.io.lease import LEASE_NAME, RunLease
        from pipeline.io.object_store import probe

        probe(self.store, self.path(STATE), self.root)
        self._run_id = uuid.uuid4().hex
        lease = RunLease(self.store, self.path(STATE, LEASE_NAME), self.root, self._run_id)
        lease.acquire()
        lease.start_renewing()
        self._lease = lease
        try:
            yield
        finally:
            lease.release()
            self._lease = None
        lease.check()

    def check_lease(self) -> None:
        """Raise `LeaseLostError` when this driver's lease was taken over (conditional protocol; else a no-op)."""
        if self._lease is not None:
            self._lease.check()

    def start_run(self) -> str:
        """Write a new run id: writers of an older (killed) run see it and refuse to commit.

        Conditional protocol: the run id is the lease's, and ``run.json`` is replaced by
        compare-and-swap on the ETag read just before (created exclusively the first time), so a
        stale driver cannot put its own run back.
        """
        run_id = self._run_id or uuid.uuid4().hex
        record = {"run_id": run_id, "started": time.time(), "pid": os.getpid()}
        if not self.conditional:
            self.write_json(RUN_RECORD, record, sub=STATE)
            return run_id
        self.check_lease()
        data = json.dumps(record, indent=2, sort_keys=True).encode("utf-8")
        path = self.path(STATE, RUN_RECORD)
        current = self.store.read(path)
        written = self.store.create(path, data) if current is None else self.store.replace(path, data, current.version)
        if not written:
            raise OutputConflictError(f"another run replaced {self.root}/{STATE}/{RUN_RECORD} while this one started; wait for it to finish")
        return run_id

    def current_run_id(self) -> str | None:
        record = self.read_json(STATE, RUN_RECORD)
        return record["run_id"] if record else None

    def writer_problem(self, run_id: str) -> str | None:
        """Why a writer of `run_id` must not commit now (a newer run, a lost or expiring lease); None if it may."""
        current = self.current_run_id()
        if current != run_id:
            return f"run {run_id} is no longer the current run of {self.root}"
        if self.conditional:
            from pipeline.io.lease import LEASE_NAME, read_lease, writer_problem

            problem = writer_problem(read_lease(self.store, self.path(STATE, LEASE_NAME)), run_id)
            if problem is not None:
                return f"{problem} ({self.root}, run {run_id})"
        return None

    def append_run_history(self, record: dict[str, Any]) -> None:
        history = self.run_history()
        history.append(record)
        self.write_atomic(STATE, "runs.json", json.dumps(history, indent=1, default=str).encode("utf-8"))

    def run_history(self) -> list[dict[str, Any]]:
        data = self.read_json(STATE, "runs.json")
        return list(data) if data else []

    # -- parts ------------------------------------------------------------------------------------
    def committed_parts(self) -> set[str]:
        return {n[len("part-") : -len(".parquet")] for n in self.list_names(INDEX) if n.startswith("part-")}

    def index_attempt(self, part: str) -> str:
        """The attempt token a committed index part records ("" for parts of the rename protocol)."""
        with self.fs.open_input_file(self.path(INDEX, f"part-{part}.parquet")) as handle:
            metadata = pq.read_schema(handle).metadata or {}
        return metadata.get(ATTEMPT_KEY, b"").decode("ascii")

    def _winners(self, files: dict[str, set[str]]) -> dict[str, str]:
        """part -> its committed attempt, for committed parts whose files carry more than one attempt."""
        return {part: self.index_attempt(part) for part, attempts in files.items() if len(attempts) > 1}

    def commit_index(self, part: str, data: bytes, attempt: str) -> bool:
        """Create the index part exclusively (the commit, conditional protocol); False when another attempt won.

        A refused create whose index part records `attempt` is this attempt's own create, retried
        by the client after its answer was lost: committed.
        """
        path = self.path(INDEX, f"part-{part}.parquet")
        with self.writing(path):
            if self.store.create(path, data):
                return True
        return self.index_attempt(part) == attempt

    def cleanup_uncommitted(self) -> list[str]:
        """Delete temporary files, the shards/errors of parts without an index part, and losing attempts' files."""
        committed = self.committed_parts()
        listing = {sub: self.list_names(sub) for sub in (SHARDS, INDEX, ERRORS, STATE, "")}
        attempts: dict[str, set[str]] = {}
        for sub, split in ((SHARDS, shard_part), (ERRORS, part_file_part)):
            for name in listing[sub]:
                if name.startswith(("shard-", "part-")) and (part := split(name))[0] in committed:
                    attempts.setdefault(part[0], set()).add(part[1])
        winners = self._winners(attempts)
        removed: list[str] = []
        for sub, names in listing.items():
            for name in names:
                orphan = name.startswith(TMP_PREFIX) or (sub == STATE and name.startswith(PROBE_PREFIX))
                if (sub == SHARDS and name.startswith("shard-")) or (sub == ERRORS and name.startswith("part-")):
                    part, attempt = (shard_part if sub == SHARDS else part_file_part)(name)
                    orphan = orphan or part not in committed or winners.get(part, attempt) != attempt
                if orphan:
                    self.fs.delete_file(self.path(sub, name))
                    removed.append(f"{sub}/{name}" if sub else name)
        return removed

    def part_files(self, sub: str) -> list[str]:
        """Names of the committed part files in `index.parquet` or `errors.parquet` (one per committed part)."""
        committed = self.committed_parts()
        names = [n for n in self.list_names(sub) if n.startswith("part-") and n.endswith(".parquet") and part_file_part(n)[0] in committed]
        if sub == INDEX:
            return names
        attempts: dict[str, set[str]] = {}
        for name in names:
            part, attempt = part_file_part(name)
            attempts.setdefault(part, set()).add(attempt)
        winners = self._winners(attempts)
        return [n for n in names if winners.get(part_file_part(n)[0], part_file_part(n)[1]) == part_file_part(n)[1]]

    def read_parts(self, sub: str, schema: pa.Schema | None = None, columns: list[str] | None = None) -> pa.Table:
        """Read all committed part files of `index.parquet` or `errors.parquet` as one table."""
        tables = []
        for name in self.part_files(sub):
            with self.fs.open_input_file(self.path(sub, name)) as handle:
                tables.append(pq.read_table(handle, columns=columns))
        if not tables:
            return schema.empty_table() if schema is not None else pa.table({})
        return pa.concat_tables(tables, promote_options="default")

    def done_ids(self) -> set[str]:
        """Ids already accounted for by committed parts (written or failed)."""
        index = self.read_parts(INDEX, columns=["id"])
        errors = self.read_parts(ERRORS, columns=["id"])
        done: set[str] = set()
        for table in (index, errors):
            if table.num_columns:
                done.update(table.column("id").to_pylist())
        return done

