"""Existing WebDataset tar shards as job input: find the shards, index their samples, read members by offset.

A job over shards runs like a job over a manifest: the shards are scanned once into an internal
manifest (one row per sample: its id, the tar path, and every member's byte offset and size from the
tar headers), and stages read the members they need by offset. Resume and exactly-once therefore
work as for manifests: the same shards give the same manifest, and committed ids are skipped.

Ids: when a shard belongs to one of our own outputs (``OUT/shards/*.tar`` beside ``OUT/index.parquet``)
the id comes from that index, and only committed shards are accepted; otherwise it is the ``id`` of the
sample's json member when there is one, else the WebDataset key. Member names split by the one rule of
`pipeline.io.shards.split_member`, which also scans the headers and reads members by offset.

Input specs: a tar file, a directory (its committed shards if it is one of our outputs, else every
``*.tar`` below it), a glob, a brace pattern (``shards/shard-{a,b}.tar``), or a list file of tar
paths/URLs (`pipeline.io.tar_lists`); several can be joined by braces. URIs (``s3://...``) are accepted for single tar files and directories.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
from braceexpand import braceexpand

from pipeline.errors import InputError
from pipeline.io.output import INDEX, SHARDS, TMP_PREFIX, OutputDir, check_schema_version
from pipeline.io.shards import (
    ShardReadError,
    TarSample,
    open_shard,
    read_member_bytes,
    read_members,
    scan_tar,
)
from pipeline.io.tar_lists import is_list_file, read_list_file
from pipeline.io.uri import is_uri

TAR_MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("audio", pa.string()),  # the tar file, so `hsp manifest validate` checks it exists
        pa.field("tar_key", pa.string()),
        pa.field("tar_member", pa.string()),  # extension of the primary audio member; null if none
        pa.field("tar_members", pa.string()),  # json: {ext: [offset, size]} for every member
    ]
)


class TarSourceError(InputError):
    """The tar input cannot be used (nothing matches, unreadable tar, uncommitted shard...)."""


def sample_members(fields: dict[str, Any]) -> dict[str, bytes]:
    """All members of the sample an internal-manifest row (`build_tar_manifest`) points at."""
    return read_members(fields["audio"], json.loads(fields["tar_members"]))


def _has_glob(spec: str) -> bool:
    return any(ch in spec for ch in "*?[")


def _own_output_root(tar_path: str) -> str | None:
    """``OUT`` when `tar_path` is ``OUT/shards/<name>.tar`` and ``OUT/index.parquet`` exists."""
    if is_uri(tar_path):
        return None
    path = Path(tar_path)
    root = path.parent.parent
    if path.parent.name == SHARDS and (root / INDEX).is_dir():
        return str(root)
    return None


def expand_tar_spec(spec: str) -> list[str]:
    """Tar paths for an input spec (file, directory, glob, brace pattern, list file), sorted, without duplicates."""
    found: list[str] = []
    parts = [p for entry in read_list_file(spec) for p in braceexpand(entry)] if is_list_file(spec) else braceexpand(spec)
    for part in parts:
        if is_uri(part):
            found.extend(_expand_uri(part))
            continue
        if _has_glob(part):
            matches = sorted(glob.glob(part, recursive=True))
            found.extend(str(Path(m).resolve()) for m in matches if m.endswith(".tar") and os.path.isfile(m))
            continue
        path = Path(part)
        if path.is_dir():
            if (path / INDEX).is_dir():
                found.extend(_committed_shards(str(path)))
            elif path.name == SHARDS and (path.parent / INDEX).is_dir():
                found.extend(_committed_shards(str(path.parent)))
            else:
                found.extend(str(p.resolve()) for p in sorted(path.rglob("*.tar")) if not p.name.startswith(TMP_PREFIX))
        elif path.is_file():
            found.append(str(path.resolve()))
        else:
            raise TarSourceError(f"tar input not found: {part}")
    unique = sorted(dict.fromkeys(found))
    if not unique:
        raise TarSourceError(f"no .tar shards match {spec!r}")
    return unique


def _expand_uri(uri: str) -> list[str]:
    from pyarrow import fs as pafs

    from pipeline.io.storage import arrow_filesystem

    if uri.endswith(".tar"):
        return [uri]
    filesystem, inner = arrow_filesystem(uri)
    scheme = uri.split("://", 1)[0]
    infos = filesystem.get_file_info(pafs.FileSelector(inner, recursive=True))
    return sorted(f"{scheme}://{i.path}" for i in infos if i.type == pafs.FileType.File and i.path.endswith(".tar"))


def _committed_shards(root: str) -> list[str]:
    index = OutputDir(root).read_parts(INDEX, columns=["shard"])
    shards = set(index.column("shard").to_pylist()) if index.num_columns else set()
    return [str((Path(root) / s).resolve()) for s in sorted(shards)]


class _OwnIds:
    """key -> id maps of our own outputs' committed shards, read once per output root."""

    def __init__(self) -> None:
        self._by_root: dict[str, dict[str, dict[str, str]]] = {}

    def for_shard(self, tar_path: str) -> dict[str, str] | None:
        root = _own_output_root(tar_path)
        if root is None:
            return None
        if root not in self._by_root:
            OutputDir(root).read_job(required=False)  # an output of a newer version is refused
            table = OutputDir(root).read_parts(INDEX, columns=["id", "key", "shard"])
            by_shard: dict[str, dict[str, str]] = {}
            if table.num_columns:
                for sample_id, key, shard in zip(*(table.column(c).to_pylist() for c in ("id", "key", "shard")), strict=True):
                    by_shard.setdefault(shard, {})[key] = sample_id
            self._by_root[root] = by_shard
        shard = f"{SHARDS}/{Path(tar_path).name}"
        ids = self._by_root[root].get(shard)
        if ids is None:
            raise TarSourceError(
                f"{tar_path} is not a committed shard of {root} (its index does not list it): that output is "
                "partial or the file is a leftover; finish or resume that job first, or copy the tar elsewhere"
            )
        return ids


def _json_id(tar_path: str, sample: TarSample, handle: BinaryIO) -> str | None:
    span = sample.members.get("json")
    if span is None:
        return None
    try:
        meta = json.loads(read_member_bytes(handle, *span))
    except ValueError:  # not JSON, or a short read (ShardReadError)
        return None
    if isinstance(meta, dict) and "job" in meta and "schema_version" in meta:  # a sample json of ours
        check_schema_version(meta, f"{tar_path}: sample {sample.key!r}")
    value = meta.get("id") if isinstance(meta, dict) else None
    return value if isinstance(value, str) and value else None


def build_tar_manifest(spec: str | Iterable[str]) -> pa.Table:
    """The internal manifest of every sample in the shards `spec` names (see the module docstring)."""
    shards = expand_tar_spec(spec) if isinstance(spec, str) else sorted(dict.fromkeys(spec))
    own = _OwnIds()
    rows: dict[str, list[Any]] = {name: [] for name in TAR_MANIFEST_SCHEMA.names}
    for shard in shards:
        try:
            samples = scan_tar(shard)
        except ShardReadError as exc:
            raise TarSourceError(str(exc)) from exc
        ids = own.for_shard(shard)
        with open_shard(shard) as handle:
            for sample in samples:
                sample_id = (ids or {}).get(sample.key) or _json_id(shard, sample, handle) or sample.key
                rows["id"].append(sample_id)
                rows["audio"].append(shard)
                rows["tar_key"].append(sample.key)
                rows["tar_member"].append(sample.audio_member)
                rows["tar_members"].append(json.dumps({ext: list(span) for ext, span in sorted(sample.members.items())}))
    return pa.table(rows, schema=TAR_MANIFEST_SCHEMA)


def is_tar_input(spec: str) -> bool:
    """True when `spec` names tar shards (or a list file of them) rather than a Parquet manifest."""
    if is_list_file(spec):
        return True
    if "{" in spec or _has_glob(spec) or spec.endswith(".tar"):
        return True
    if is_uri(spec):
        return not spec.endswith(".parquet")
    path = Path(spec)
    if path.is_dir():
        if (path / INDEX).is_dir():
            return True
        return any(p for p in path.rglob("*.tar"))
    return False
