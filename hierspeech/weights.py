"""Where the official weight files come from: an explicit path, a local directory, or a verified download.

Resolution order for `resolve_speechsr_checkpoint`:

1. an explicit checkpoint path (its ``config.json`` must sit beside it);
2. ``$HSP_WEIGHTS_DIR/<speechsr24k|speechsr48k>/G_*.pth`` with ``config.json`` beside it (the layout of
   the upstream repository);
3. a download from the upstream repository into ``$HSP_CACHE_DIR`` (default
   ``~/.cache/hierspeech-pipeline``), verified against the sha256 values below. A file that does not
   match is deleted and an error raised; nothing unverified is ever loaded.

The weights are licensed by their authors for non-commercial use only (CC BY-NC; see the README).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from hierspeech.checkpoint import sha256_file

UPSTREAM_RAW = "https://github.com/sh-lee-prml/HierSpeechpp/raw/main"
ENV_WEIGHTS_DIR = "HSP_WEIGHTS_DIR"
ENV_CACHE_DIR = "HSP_CACHE_DIR"
DEFAULT_CACHE_DIR = Path("~/.cache/hierspeech-pipeline")


@dataclass(frozen=True)
class WeightFile:
    """One released file: its path relative to the upstream repository root and its sha256."""

    relpath: str
    sha256: str


# sha256 of the released files (upstream commit 318c633; equal to the Git-LFS object ids of the
# Hugging Face mirror camenduru/HierSpeech_TTS).
SPEECHSR_FILES: dict[str, tuple[WeightFile, WeightFile]] = {
    "24k": (
        WeightFile("speechsr24k/G_340000.pth", "94bc84b6f8bdb375e2027bc7a3222730d29f9d4c042fd9edce0024806d5c4320"),
        WeightFile("speechsr24k/config.json", "3b4139e5bfd8a43997ef5c33dc6014ca2ba593e8b3224b3f865587835440aeb7"),
    ),
    "48k": (
        WeightFile("speechsr48k/G_100000.pth", "62c70874ac4efeb4dc9c8aa9dc0a611a951e1c36292abeb4c406d7fb91e0eefc"),
        WeightFile("speechsr48k/config.json", "4c67056d578f540ac9c6baf85de08229433643ded4a2e2efb3b053168a367465"),
    ),
}


class WeightsError(RuntimeError):
    """A weight file could not be found, downloaded or verified."""


def _variant(variant: str | int) -> str:
    key = {"24k": "24k", "24000": "24k", "48k": "48k", "48000": "48k"}.get(str(variant).lower())
    if key is None:
        raise ValueError(f"unknown SpeechSR variant {variant!r}; use '24k' or '48k'")
    return key


def verify_sha256(path: Path, expected: str) -> None:
    """Raise `WeightsError` (after deleting the file) when `path`'s sha256 is not `expected`."""
    actual = sha256_file(path)
    if actual != expected:
        path.unlink(missing_ok=True)
        raise WeightsError(
            f"sha256 mismatch for {path}: expected {expected}, got {actual}; the file was deleted "
            "(corrupted or incomplete download, or a different release). Download it again or set "
            f"{ENV_WEIGHTS_DIR} to a directory with the official files."
        )


def _download(url: str, target: Path, expected: str, timeout: float) -> None:
    """Download `url` to `target` atomically, then verify its sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, out)
        verify_sha256(tmp, expected)
        tmp.replace(target)
    except (urllib.error.URLError, OSError) as exc:
        raise WeightsError(
            f"could not download {url} ({type(exc).__name__}: {exc}). Without internet access, download "
            f"the official SpeechSR files elsewhere and set {ENV_WEIGHTS_DIR} to a directory laid out as "
            "speechsr24k/G_340000.pth, speechsr48k/G_100000.pth, each with its config.json beside it."
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)


def cache_dir() -> Path:
    """``$HSP_CACHE_DIR`` or ``~/.cache/hierspeech-pipeline``."""
    return Path(os.environ.get(ENV_CACHE_DIR) or DEFAULT_CACHE_DIR).expanduser()


def resolve_speechsr_checkpoint(variant: str | int, checkpoint: str | Path | None = None,
                                download: bool = True, timeout: float = 60.0) -> Path:
    """Path of the SpeechSR ``G_*.pth`` for `variant` ('24k' or '48k'), with ``config.json`` beside it.

    See the module docstring for the order. Downloaded files are verified by sha256; files found via
    an explicit path or ``$HSP_WEIGHTS_DIR`` are used as they are (strict loading still checks them).
    """
    key = _variant(variant)
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise WeightsError(f"SpeechSR checkpoint not found: {path}")
        if not path.with_name("config.json").is_file():
            raise WeightsError(f"no config.json beside {path}; the official config must sit next to the checkpoint")
        return path
    files = SPEECHSR_FILES[key]
    weights_dir = os.environ.get(ENV_WEIGHTS_DIR)
    if weights_dir:
        missing = [f.relpath for f in files if not (Path(weights_dir).expanduser() / f.relpath).is_file()]
        if missing:
            raise WeightsError(f"{ENV_WEIGHTS_DIR}={weights_dir} lacks {', '.join(missing)}")
        return Path(weights_dir).expanduser() / files[0].relpath
    root = cache_dir()
    for item in files:
        target = root / item.relpath
        if target.is_file():
            verify_sha256(target, item.sha256)
            continue
        if not download:
            raise WeightsError(f"{target} is not cached and download=False; set {ENV_WEIGHTS_DIR}")
        _download(f"{UPSTREAM_RAW}/{item.relpath}", target, item.sha256, timeout)
    return root / files[0].relpath
