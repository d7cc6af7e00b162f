"""Turning manifest ids into safe WebDataset sample keys.

A WebDataset key is the part of a tar member name before the first dot, so ids with dots,
slashes, `..` or control characters cannot be used as they are: they would split samples
or escape the shard's namespace. Safe ids are kept verbatim; anything else becomes an ASCII
slug plus a short hash of the original id, so distinct ids always get distinct keys.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,120}$")
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9_-]+")
MAX_SLUG = 80


def id_hash(sample_id: str, length: int = 12) -> str:
    """Stable short hex digest of an id (sha1; not for security, for naming)."""
    return hashlib.sha1(sample_id.encode("utf-8")).hexdigest()[:length]


def sample_key(sample_id: str) -> str:
    """Sanitized, deterministic key for `sample_id`: the id itself when it is already safe."""
    if _SAFE_ID.match(sample_id):
        return sample_id
    ascii_form = unicodedata.normalize("NFKD", sample_id).encode("ascii", "ignore").decode("ascii")
    slug = _UNSAFE_RUN.sub("_", ascii_form).strip("_-")[:MAX_SLUG] or "id"
    return f"{slug}-{id_hash(sample_id)}"
