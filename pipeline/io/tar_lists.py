"""Tar shards named by a list file, and the name each input tar keeps in a mirrored output.

List files: webdataset users often keep their shard URLs in a text file. A local file ending in
``.txt``, ``.lst``, ``.list`` or ``.urls`` is read as one tar per line (a path, a ``file://`` or a
remote URI, or a brace/glob pattern of them); blank lines and lines starting with ``#`` are
skipped; relative paths are relative to the list file's folder.

Mirror names: each input tar keeps its path relative to the folder all inputs share
(``data/a/x.tar`` and ``data/b/x.tar`` become ``a/x.tar`` and ``b/x.tar``; a single tar or tars of
one folder keep their file name), so two inputs can never map to one output.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from pipeline.errors import InputError
from pipeline.io.uri import is_uri, local_path

LIST_SUFFIXES = (".txt", ".lst", ".list", ".urls")


def is_list_file(spec: str) -> bool:
    """True when `spec` is a local list file of tar URLs (see the module docstring)."""
    if is_uri(spec) or "{" in spec:
        return False
    path = Path(local_path(spec))
    return path.suffix.lower() in LIST_SUFFIXES and path.is_file()


def read_list_file(spec: str) -> list[str]:
    """The tar specs a list file holds, in its order; relative entries joined to the file's folder."""
    path = Path(local_path(spec))
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the list of tars {spec}: {exc}; pass a UTF-8 text file, one tar path or URL per line") from exc
    entries = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not (line.endswith(".tar") or "{" in line or "*" in line or "?" in line or line.endswith("/")):
            raise InputError(f"{spec} line {number}: {line!r} is not a .tar path, URL or pattern; list one tar per line")
        entries.append(line if is_uri(line) or line.startswith("file://") or Path(line).is_absolute() else str(path.parent / line))
    if not entries:
        raise InputError(f"the list of tars {spec} names no tar; write one tar path or URL per line")
    return entries


def _split(location: str) -> tuple[str, str]:
    """(scheme, path) of a tar location: ("", absolute local path) or ("s3", "bucket/dir/x.tar")."""
    if is_uri(location):
        scheme, rest = location.split("://", 1)
        return scheme, rest
    return "", str(Path(local_path(location)).resolve())


def mirror_names(tars: list[str]) -> dict[str, str]:
    """tar location -> its relative name in a mirrored output (see the module docstring)."""
    if not tars:
        return {}
    split = {tar: _split(tar) for tar in tars}
    schemes = {scheme for scheme, _ in split.values()}
    if len(schemes) > 1:
        raise InputError(
            f"the input mixes local tars and URIs of several kinds ({', '.join(sorted(s or 'local' for s in schemes))}); "
            "a mirrored output needs them under one root: run one job per storage"
        )
    parents = [posixpath.dirname(path) for _, path in split.values()]
    try:
        root = posixpath.commonpath(parents) if all(parents) else ""
    except ValueError:
        root = ""
    names = {tar: posixpath.relpath(path, root) if root else path.lstrip("/") for tar, (_, path) in split.items()}
    seen: dict[str, str] = {}
    for tar, name in names.items():
        if name in seen:
            raise InputError(f"{seen[name]} and {tar} would both be written as {name}; pass each tar once")
        seen[name] = tar
    return names
