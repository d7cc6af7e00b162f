"""Local paths, ``file://`` URIs and remote URIs: the one place that tells them apart and resolves them.

Rules (used by manifests, audio decoding, tar input and job YAML alike):

- a remote URI is ``scheme://...`` with any scheme but ``file`` (s3://, gs://, hdfs://...); it is
  passed to pyarrow's filesystem layer as it is;
- a ``file://`` URI names a local file: ``file:///abs/sub%20dir/a.wav`` is ``/abs/sub dir/a.wav``
  (percent-decoded; ``file://localhost/...`` too). A host other than localhost is not a local file
  and is left as written, so opening it fails with a message naming it;
- a relative path in a manifest is relative to the manifest's folder: a local folder, the decoded
  folder of a ``file://`` manifest, or the parent "folder" of a remote manifest URI.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from urllib.parse import unquote

FILE_SCHEME = "file://"
LOCAL_HOSTS = ("", "localhost")


def is_file_uri(value: str) -> bool:
    """True for ``file://...`` (any case of the scheme)."""
    return value[: len(FILE_SCHEME)].lower() == FILE_SCHEME


def is_uri(value: str) -> bool:
    """True for a remote URI (``scheme://...`` other than ``file://``)."""
    return "://" in value and not is_file_uri(value)


def file_uri_host(value: str) -> str:
    """The host part of a ``file://`` URI ('' for ``file:///...``)."""
    return value[len(FILE_SCHEME) :].split("/", 1)[0]


def local_path(value: str) -> str:
    """The local path a plain path or a ``file://`` URI names (percent-decoded); anything else unchanged.

    A ``file://`` URI with a foreign host (``file://server/x.wav``) is returned unchanged: it is
    not a local file, and the caller's open reports it.
    """
    if not is_file_uri(value):
        return value
    host = file_uri_host(value)
    if host.lower() not in LOCAL_HOSTS:
        return value
    return unquote(value[len(FILE_SCHEME) + len(host) :])


def resolve(value: str, base: str | Path | None) -> str:
    """`value` as an absolute local path or a URI; relative paths are joined to `base` (a manifest's folder).

    `base` is a local folder or a remote folder URI (see `manifest_base`); None leaves relative
    paths as they are (relative to the working directory).
    """
    if is_uri(value):
        return value
    path = local_path(value)
    if is_file_uri(path) or os.path.isabs(path) or base is None:
        return path
    base = str(base)
    if is_uri(base):
        return f"{base.rstrip('/')}/{posixpath.normpath(path)}"
    return str((Path(base) / path).resolve())


def manifest_base(manifest: str | Path) -> str:
    """The folder relative paths in `manifest` resolve against: local, decoded ``file://``, or a remote URI."""
    manifest = str(manifest)
    if is_uri(manifest):
        scheme, rest = manifest.split("://", 1)
        parent = posixpath.dirname(rest.rstrip("/"))
        return f"{scheme}://{parent}"
    return str(Path(local_path(manifest)).resolve().parent)


def same_location(a: str, b: str) -> bool:
    """True when two local paths (or file:// URIs) name the same file, or two URIs are the same object."""
    if is_uri(a) or is_uri(b):
        strip = lambda v: v.split("://", 1)[-1].rstrip("/")  # noqa: E731
        return strip(a) == strip(b)
    return os.path.realpath(local_path(a)) == os.path.realpath(local_path(b))


def resolve_local(path: str, *bases: Path) -> Path | None:
    """An existing local file for `path` (absolute, or relative to the cwd or one of `bases`)."""
    candidate = Path(path)
    if candidate.is_absolute():
        return candidate if candidate.is_file() else None
    for base in (Path.cwd(), *bases):
        if (base / candidate).is_file():
            return base / candidate
    return None
