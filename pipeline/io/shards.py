"""Reading WebDataset tar shards: the one member-name rule and every way the pipeline reads a shard.

Member names split as WebDataset's own `base_plus_ext` does: the key is the name up to the first
dot of its last path component (directories included), the extension is the rest
(``dir/abc.w2v.npy`` -> ``("dir/abc", "w2v.npy")``). A name without an extension, or whose last
component starts with a dot, is not a sample member: every reader here skips it.

Three ways to read, for three access patterns, all over local paths and pyarrow URIs (s3://, ...):

- `iter_samples`: every sample in tar order, streaming (exports read whole shards once; memory is
  one sample). A sample's members are adjacent in the shards our sink writes.
- `read_samples`: a few samples by key from a seekable file, skipping the others' data by seeking
  (the report picks 3 samples out of a 1 GB shard and reads a few kilobytes of headers).
- `scan_tar` + `read_members`: the byte offset and size of every member from the headers alone,
  then members by offset (tar input: the internal manifest records the offsets, stages read them).
"""

from __future__ import annotations

import tarfile
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from pipeline.errors import InputError
from pipeline.io.uri import is_uri, local_path

# Audio member extensions, in the order a sample's primary audio member is chosen.
AUDIO_EXTENSIONS = ("flac", "wav", "mp3", "ogg", "opus")


class ShardReadError(InputError):
    """A shard cannot be read as a tar (missing, truncated, changed since it was indexed)."""


def split_member(name: str) -> tuple[str, str] | None:
    """``"dir/abc.seg.flac"`` -> ``("dir/abc", "seg.flac")``, as WebDataset splits names; None when not a sample member."""
    head, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    if not dot or not stem:
        return None
    return (f"{head}/{stem}" if head else stem), ext


def open_shard(path: str, fs: Any = None, *, stream: bool = False) -> BinaryIO:
    """Open a shard for reading: `fs` (a pyarrow filesystem) and a path in it, else a local path or URI.

    stream: a sequential stream (reads the whole file efficiently on object stores) instead of a
    random-access file.
    """
    if fs is None and is_uri(path):
        from pipeline.io.storage import arrow_filesystem

        fs, path = arrow_filesystem(path)
    if fs is not None:
        return fs.open_input_stream(path) if stream else fs.open_input_file(path)
    return open(local_path(path), "rb")


def _walk(
    tar: tarfile.TarFile,
    exts: Collection[str] | None,
    keys: Collection[str] | None,
    limits: dict[str, int] | None,
) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, members) per run of adjacent members of one key; stops once every wanted key was seen and passed."""
    current: str | None = None
    members: dict[str, bytes] = {}
    seen: set[str] = set()
    for info in tar:
        if not info.isfile() or (split := split_member(info.name)) is None:
            continue
        key, ext = split
        if key != current:
            if current is not None and (keys is None or current in keys):
                yield current, members
            if keys is not None and len(seen) == len(keys) and key not in keys:
                return  # every wanted sample seen, and the tar moved on
            current, members = key, {}
            if keys is not None and key in keys:
                seen.add(key)
        if (keys is not None and key not in keys) or (exts is not None and ext not in exts):
            continue
        handle = tar.extractfile(info)
        if handle is not None:
            limit = (limits or {}).get(ext)
            members[ext] = handle.read(limit) if limit else handle.read()
    if current is not None and (keys is None or current in keys):
        yield current, members


def iter_samples(
    path: str, *, fs: Any = None, exts: Iterable[str] | None = None, keys: Iterable[str] | None = None
) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {ext: bytes}) for each sample of the shard at `path`, in tar order, streaming.

    exts: only members with these extensions are read (all when None); keys: only these samples.
    """
    want_ext = set(exts) if exts is not None else None
    want_key = set(keys) if keys is not None else None
    with open_shard(path, fs, stream=True) as handle, tarfile.open(fileobj=handle, mode="r|") as tar:
        yield from _walk(tar, want_ext, want_key, None)


def read_samples(
    path: str,
    keys: Iterable[str],
    exts: Iterable[str] | None = None,
    fs: Any = None,
    limits: dict[str, int] | None = None,
) -> dict[str, dict[str, bytes]]:
    """Members of the samples `keys` in the tar at `path`: key -> {ext: bytes}, seeking over other data.

    exts: only these extensions (all when None). limits: ext -> read at most this many bytes of
    that member (e.g. ``{"w2v.npy": 1024}`` for the ``.npy`` header only). fs: a pyarrow filesystem.
    Keys absent from the tar are absent from the result.
    """
    wanted = set(keys)
    found: dict[str, dict[str, bytes]] = {}
    if not wanted:
        return found
    with open_shard(path, fs) as handle, tarfile.open(fileobj=handle, mode="r:") as tar:
        for key, members in _walk(tar, set(exts) if exts is not None else None, wanted, limits):
            found.setdefault(key, {}).update(members)
    return found


@dataclass
class TarSample:
    """One sample of a shard: its key and where each member's bytes are (ext -> (offset, size))."""

    shard: str
    key: str
    members: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def audio_member(self) -> str | None:
        return next((ext for ext in AUDIO_EXTENSIONS if ext in self.members), None)


def scan_tar(tar_path: str) -> list[TarSample]:
    """Index a tar's samples from its headers (data is skipped, not read)."""
    samples: dict[str, TarSample] = {}
    try:
        with open_shard(tar_path) as handle, tarfile.open(fileobj=handle, mode="r:") as tar:
            for info in tar:
                if not info.isfile() or (split := split_member(info.name)) is None:
                    continue
                key, ext = split
                sample = samples.setdefault(key, TarSample(tar_path, key))
                if ext in sample.members:
                    raise ShardReadError(f"{tar_path}: member {info.name!r} appears twice")
                sample.members[ext] = (info.offset_data, info.size)
    except (tarfile.TarError, OSError) as exc:
        raise ShardReadError(f"cannot read tar {tar_path}: {exc}") from exc
    return list(samples.values())


def read_member_bytes(handle: BinaryIO, offset: int, size: int) -> bytes:
    """`size` bytes at `offset` of an open shard; a short read means the tar changed since it was scanned."""
    handle.seek(offset)
    data = handle.read(size)
    if len(data) != size:
        raise ShardReadError(f"short read: {len(data)} of {size} bytes at offset {offset} (tar changed or truncated?)")
    return data


def read_members(tar_path: str, spans: dict[str, tuple[int, int]] | dict[str, list[int]]) -> dict[str, bytes]:
    """Read members by offset from one tar: ext -> bytes (one open, one seek per member)."""
    with open_shard(tar_path) as handle:
        return {ext: read_member_bytes(handle, int(off), int(size)) for ext, (off, size) in spans.items()}
