"""Filesystems for remote URIs (s3://, gs://, ...): one place that opens them, through fsspec.

Every remote read and write of the pipeline (manifests, audio, tar input, job outputs) gets its
filesystem here, so credentials and endpoints work the same everywhere:

- the usual environment of the store's library (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
  ``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, ... for s3fs; ``GOOGLE_APPLICATION_CREDENTIALS`` for gcsfs);
- fsspec storage options as JSON (``hsp ... --storage-options '{"endpoint_url": "http://..."}'``),
  carried to Ray workers in the ``HSP_STORAGE_OPTIONS`` environment variable. A JSON object of
  options for every scheme, or ``{"s3": {...}, "gs": {...}}`` keyed by scheme.

The store libraries (s3fs, gcsfs) are the ``[cloud]`` extra and are imported only when a remote URI
is opened: local paths never import them. Code that speaks pyarrow's filesystem API gets the same
fsspec filesystem wrapped by `arrow_filesystem`.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

from pipeline.errors import ConfigError, InputError

STORAGE_OPTIONS_ENV = "HSP_STORAGE_OPTIONS"
# scheme -> the package that implements it and the extra that installs it
STORE_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs"}


class StorageError(InputError):
    """A remote URI cannot be opened: its filesystem package is missing, or the storage options are invalid."""


def parse_storage_options(text: str) -> dict[str, Any]:
    """The JSON of ``--storage-options`` as a dict; ConfigError naming the problem otherwise."""
    try:
        options = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"--storage-options is not valid JSON ({exc}); pass e.g. '{{\"endpoint_url\": \"http://127.0.0.1:9000\"}}'") from exc
    if not isinstance(options, dict):
        raise ConfigError(f"--storage-options must be a JSON object of fsspec options, got {type(options).__name__}")
    return options


def use_storage_options(options: dict[str, Any] | None) -> None:
    """Make `options` the storage options of this process and of the Ray workers it starts (environment).

    Filesystems opened before are dropped, so the next one reads the environment (AWS_*) afresh.
    """
    if options:
        os.environ[STORAGE_OPTIONS_ENV] = json.dumps(options, sort_keys=True)
    else:
        os.environ.pop(STORAGE_OPTIONS_ENV, None)
    _filesystem.cache_clear()


def storage_options(scheme: str) -> dict[str, Any]:
    """The fsspec options for `scheme` from ``HSP_STORAGE_OPTIONS`` (empty when unset)."""
    raw = os.environ.get(STORAGE_OPTIONS_ENV, "")
    if not raw:
        return {}
    options = parse_storage_options(raw)
    if any(isinstance(v, dict) and k in (*STORE_PACKAGES, "file", "memory", "hdfs", "http", "https") for k, v in options.items()):
        scoped = options.get(scheme, {})
        return dict(scoped) if isinstance(scoped, dict) else {}
    return options


def scheme_of(uri: str) -> str:
    return uri.split("://", 1)[0].lower()


def fsspec_filesystem(uri: str) -> tuple[Any, str]:
    """(fsspec filesystem, path inside it) for a remote URI, with this process's storage options."""
    scheme = scheme_of(uri)
    fs = _filesystem(scheme, os.environ.get(STORAGE_OPTIONS_ENV, ""))
    return fs, fs._strip_protocol(uri)


@functools.lru_cache(maxsize=16)
def _filesystem(scheme: str, _options_json: str) -> Any:
    import fsspec

    options = storage_options(scheme)
    # other processes (Ray workers, another driver) write the same prefixes: a cached listing would
    # hide their parts from this one
    options.setdefault("use_listings_cache", False)
    try:
        return fsspec.filesystem(scheme, skip_instance_cache=True, **options)  # cached above, per options
    except ImportError as exc:
        package = STORE_PACKAGES.get(scheme, "the fsspec implementation")
        raise StorageError(
            f"{scheme}:// needs {package}, which is not installed: pip install 'hierspeech-pipeline[cloud]'"
        ) from exc
    except ValueError as exc:
        raise StorageError(f"cannot open {scheme}:// URIs: {exc}") from exc
    except TypeError as exc:
        raise ConfigError(f"--storage-options do not fit {scheme}:// ({exc}); see the fsspec docs of {STORE_PACKAGES.get(scheme, scheme)}") from exc


def arrow_filesystem(uri: str) -> tuple[Any, str]:
    """(pyarrow FileSystem, path inside it) for a remote URI: the fsspec filesystem behind pyarrow's API."""
    from pyarrow import fs as pafs

    fs, path = fsspec_filesystem(uri)
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path
