"""Opening the sampled rows: their json and feature members, and the audio to show and play."""

from __future__ import annotations

import io
import json
import struct
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from pipeline.io.output import OutputDir
from pipeline.io.shards import read_samples
from pipeline.io.uri import resolve_local

AUDIO_EXTS = ("flac", "wav", "mp3", "ogg", "opus")
NPY_HEADER_BYTES = 1024
SOURCE_PATH_KEYS = ("source_audio", "source_path", "source")
PROMPT_PATH_KEYS = ("prompt_audio", "prompt_path", "prompt")


@dataclass
class Clip:
    """Audio to plot and play: mono float32 samples, their rate, and playable file bytes."""

    audio: np.ndarray
    rate: int
    data: bytes
    ext: str
    origin: str


@dataclass
class Opened:
    row: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    members: dict[str, bytes] = field(default_factory=dict)


def by_shard(rows: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["shard"]].append(row)
    return groups


def open_rows(out: OutputDir, rows: list[dict[str, Any]], exts: set[str], limits: dict[str, int] | None = None, progress: Any = None) -> list[Opened]:
    """Read `exts` members (json always) of `rows` from their shards, one header scan per shard."""
    opened: dict[str, Opened] = {}
    for shard, group in by_shard(rows).items():
        found = read_samples(out.path(shard), [r["key"] for r in group], exts | {"json"}, fs=out.fs, limits=limits)
        for row in group:
            members = found.get(row["key"], {})
            meta = json.loads(members.pop("json")) if "json" in members else {}
            opened[row["id"]] = Opened(row, meta, members)
        if progress is not None:
            progress.update(1)
    return [opened[r["id"]] for r in rows if r["id"] in opened]


def npy_shape(header: bytes) -> tuple[int, ...] | None:
    """The shape in a ``.npy`` header (the first bytes of the member are enough)."""
    if not header.startswith(b"\x93NUMPY"):
        return None
    major = header[6]
    if major == 1:
        (length,) = struct.unpack("<H", header[8:10])
        start = 10
    else:
        (length,) = struct.unpack("<I", header[8:12])
        start = 12
    try:
        import ast

        info = ast.literal_eval(header[start : start + length].decode("latin1"))
        return tuple(int(n) for n in info["shape"])
    except (ValueError, SyntaxError, KeyError):
        return None


def decode(data: bytes, ext: str, origin: str) -> Clip:
    """A playable clip from audio file bytes (FLAC as is; other formats re-encoded to FLAC)."""
    audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    mono = audio[:, 0]
    if ext != "flac":
        data = to_flac(mono, rate)
    return Clip(mono, int(rate), data, "flac", origin)


def to_flac(audio: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, 1.0), rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def output_clip(opened: Opened) -> Clip | None:
    for ext in AUDIO_EXTS:
        if ext in opened.members:
            return decode(opened.members[ext], ext, f"{opened.row['shard']}#{opened.row['key']}.{ext}")
    return None


def file_clip(path: Path) -> Clip:
    return decode(path.read_bytes(), path.suffix.lstrip(".").lower(), str(path))


def source_clip(opened: Opened, out_root: Path) -> Clip | None:
    """The input an output was made from: a tar sample (source_shard + source_key) or a file path."""
    meta = opened.meta
    bases = (out_root, out_root.parent)
    shard, key = meta.get("source_shard"), meta.get("source_key")
    try:
        if isinstance(shard, str) and isinstance(key, str):
            path = resolve_local(shard, *bases)
            if path is not None:
                members = read_samples(str(path), [key], AUDIO_EXTS).get(key, {})
                for ext in AUDIO_EXTS:
                    if ext in members:
                        return decode(members[ext], ext, f"{shard}#{key}.{ext}")
        return path_clip(meta, SOURCE_PATH_KEYS, bases)
    except (OSError, RuntimeError, ValueError, sf.LibsndfileError):
        return None


def path_clip(meta: dict[str, Any], keys: Iterable[str], bases: tuple[Path, ...]) -> Clip | None:
    """Audio from the first json field of `keys` naming a readable local audio file."""
    for name in keys:
        value = meta.get(name)
        if not isinstance(value, str) or value.endswith(".tar"):
            continue
        path = resolve_local(value, *bases)
        if path is None:
            continue
        try:
            return file_clip(path)
        except (OSError, RuntimeError, ValueError, sf.LibsndfileError):
            continue
    return None
