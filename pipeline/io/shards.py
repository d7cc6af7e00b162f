"""Read a few samples out of WebDataset tars by key, without reading the rest of the shard.

The tar is opened seekable and only its headers are walked (data blocks are skipped by seeking),
so picking 3 samples out of a 1 GB shard reads a few kilobytes of headers plus those samples'
members. Member names split as WebDataset does: key = name up to the first dot of the last path
component, extension = the rest (``abc.w2v.npy`` -> key ``abc``, ext ``w2v.npy``).
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def split_member(name: str) -> tuple[str, str]:
    """``dir/abc.w2v.npy`` -> (``dir/abc``, ``w2v.npy``), as WebDataset groups members."""
    head, _, last = name.rpartition("/")
    stem, _, ext = last.partition(".")
    return (f"{head}/{stem}" if head else stem), ext


def read_samples(
    path: str,
    keys: Iterable[str],
    exts: Iterable[str] | None = None,
    fs: Any = None,
    limits: dict[str, int] | None = None,
) -> dict[str, dict[str, bytes]]:
    """Members of the samples `keys` in the tar at `path`: key -> {ext: bytes}.

    exts: only these extensions (all when None). limits: ext -> read at most this many bytes of
    that member (e.g. ``{"w2v.npy": 1024}`` for the ``.npy`` header only). fs: a pyarrow filesystem (local when None).
    Keys absent from the tar are absent from the result. Stops reading once every key was seen
    and the tar moved on to another sample (members of a sample are contiguous in our shards).
    """
    wanted = set(keys)
    want_ext = set(exts) if exts is not None else None
    found: dict[str, dict[str, bytes]] = {}
    if not wanted:
        return found
    handle = fs.open_input_file(path) if fs is not None else open(path, "rb")  # noqa: SIM115 - closed below
    try:
        with tarfile.open(fileobj=handle, mode="r:") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                key, ext = split_member(info.name)
                if key not in wanted:
                    if len(found) == len(wanted):
                        break  # every wanted sample seen, and the tar moved on
                    continue
                members = found.setdefault(key, {})
                if want_ext is not None and ext not in want_ext:
                    continue
                stream = tar.extractfile(info)
                if stream is not None:
                    limit = (limits or {}).get(ext)
                    members[ext] = stream.read(limit) if limit else stream.read()
    finally:
        handle.close()
    return found


def resolve_local(path: str, *bases: Path) -> Path | None:
    """An existing local file for `path` (absolute, or relative to the cwd or one of `bases`)."""
    candidate = Path(path)
    if candidate.is_absolute():
        return candidate if candidate.is_file() else None
    for base in (Path.cwd(), *bases):
        if (base / candidate).is_file():
            return base / candidate
    return None
