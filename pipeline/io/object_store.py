"""Conditional writes on an object store: exclusive create and compare-and-swap, and a probe for both.

The commit protocol on object stores (docs/object-storage.md) needs two primitives that a plain
PUT does not give:

- `create`: write an object only if no object has that name (S3 ``If-None-Match: *`` on PutObject,
  sent by s3fs ``pipe_file(..., mode="create")``); the loser of a race, or a retry, is refused;
- `replace`: overwrite an object only if it is still the version that was read (S3 ``If-Match`` on
  its ETag); a writer holding a stale copy is refused.

Some S3-compatible stores accept these headers and ignore them. `probe` finds out before a job
writes anything: it creates one probe object twice (the second create must be refused) and
replaces it with a wrong ETag (must be refused too).

Implemented for S3 (s3fs). gcsfs exposes exclusive create (``ifGenerationMatch=0``) but not a
generation-matched overwrite, so gs:// outputs cannot hold a lease yet: `open_store` refuses them
with a message naming the way out.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

from pipeline.errors import OutputError
from pipeline.io.output import PROBE_PREFIX
from pipeline.io.storage import fsspec_filesystem, scheme_of

UNSAFE_OPTION = "--unsafe-object-store-commit"
CONFLICT_RETRIES = 5  # 409 answers to one conditional write before giving up


class ConditionalWritesError(OutputError):
    """The output's object store does not honour conditional writes, so exactly-once cannot be promised there."""


@dataclass(frozen=True)
class Versioned:
    """An object's bytes and the version (ETag) they were read at."""

    data: bytes
    version: str


class S3ConditionalStore:
    """Exclusive create and compare-and-swap on S3 through s3fs (paths are "bucket/key")."""

    def __init__(self, fs: Any) -> None:
        self.fs = fs

    def create(self, path: str, data: bytes) -> str | None:
        """Write `path` only if it does not exist: its ETag, or None when an object of that name exists.

        S3 answers 409 ConditionalRequestConflict while another conditional write of the same key is
        in flight: that one is retried after a pause, and decided then.
        """
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                response = self.fs.pipe_file(path, data, mode="create")
            except FileExistsError:
                return None
            except OSError as exc:
                if not _is_conflict(exc) or attempt == CONFLICT_RETRIES:
                    raise
                time.sleep(0.2 * (attempt + 1))
                continue
            return _etag(response) or self._head_etag(path)
        return None

    def read(self, path: str) -> Versioned | None:
        """The object and its ETag; None when missing.

        The ETag is read first (HEAD), the body second: a `replace` conditioned on that ETag then
        succeeds only if the object did not change since the HEAD, i.e. only if the body read is
        the one the ETag names.
        """
        bucket, key, _ = self.fs.split_path(path)
        try:
            head = self.fs.call_s3("head_object", Bucket=bucket, Key=key)
        except FileNotFoundError:
            return None
        try:
            data = self.fs.cat_file(path)
        except FileNotFoundError:
            return None
        return Versioned(data, head["ETag"])

    def replace(self, path: str, data: bytes, version: str) -> str | None:
        """Overwrite `path` only if its ETag is still `version`: the new ETag, or None when it changed or is gone."""
        bucket, key, _ = self.fs.split_path(path)
        try:
            response = self.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, IfMatch=version)
        except OSError as exc:
            if _is_precondition_failure(exc):
                return None
            raise
        finally:
            self.fs.invalidate_cache(path)
        return _etag(response) or self._head_etag(path)

    def _head_etag(self, path: str) -> str:
        bucket, key, _ = self.fs.split_path(path)
        return self.fs.call_s3("head_object", Bucket=bucket, Key=key)["ETag"]

    def delete(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(path)


def _etag(response: Any) -> str | None:
    return response.get("ETag") if isinstance(response, dict) else None


def _error_code(exc: BaseException) -> tuple[str, int | None]:
    response = getattr(exc.__cause__, "response", None) or {}
    return str(response.get("Error", {}).get("Code", "")), response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _is_conflict(exc: BaseException) -> bool:
    code, status = _error_code(exc)
    return code == "ConditionalRequestConflict" or status == 409


def _is_precondition_failure(exc: BaseException) -> bool:
    """True for a refused condition: 412 PreconditionFailed, 409 ConditionalRequestConflict, or a missing key."""
    if isinstance(exc, FileNotFoundError):
        return True
    code, status = _error_code(exc)
    return code in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412", "409") or status in (409, 412)


def open_store(root: str) -> S3ConditionalStore:
    """The conditional-write store of an output URI; ConditionalWritesError for schemes without one."""
    scheme = scheme_of(root)
    if scheme in ("s3", "s3a"):
        fs, _ = fsspec_filesystem(root)
        return S3ConditionalStore(fs)
    raise ConditionalWritesError(
        f"exactly-once output on {scheme}:// is not supported (it needs exclusive create and compare-and-swap, "
        f"implemented for s3://); pass {UNSAFE_OPTION} to write with the rename protocol and never run two jobs on {root} at once"
    )


def probe(store: S3ConditionalStore, folder: str, root: str) -> None:
    """Refuse (ConditionalWritesError) a store that ignores exclusive create or compare-and-swap.

    Costs four requests: create, a second create, a replace with a wrong ETag, delete.
    """
    path = f"{folder.rstrip('/')}/{PROBE_PREFIX}{uuid.uuid4().hex}"
    try:
        if not store.create(path, b"1"):
            raise ConditionalWritesError(f"cannot create a probe object in {root}: an object of its random name exists")
        second_refused = not store.create(path, b"2")
        wrong_version_refused = second_refused and not store.replace(path, b"3", '"00000000000000000000000000000000"')
    finally:
        with contextlib.suppress(OSError):
            store.delete(path)
    if not second_refused or not wrong_version_refused:
        what = "If-None-Match: * (a second exclusive create of one object succeeded)" if not second_refused else "If-Match (an overwrite with a wrong ETag succeeded)"
        raise ConditionalWritesError(
            f"the object store of {root} ignores conditional writes ({what}), so two runs or a retried task could "
            f"duplicate rows there; use a store that honours them (AWS S3, recent MinIO) or pass {UNSAFE_OPTION} "
            "to write with the rename protocol and never run two jobs on this output at once"
        )
