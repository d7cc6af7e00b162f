"""Every export's options and their defaults, in one place (CLI commands read defaults from here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from pipeline.export.errors import ExportError


@dataclass(frozen=True)
class ExportOptions:
    """What every export takes.

    include_failed: also export samples whose index row failed a quality gate (`gates_passed` False).
    audio_member: the tar member holding the audio to export (``flac``; ``denoised.flac`` for an
    extract output run with the denoiser).
    """

    include_failed: bool = False
    audio_member: str = "flac"

    def __post_init__(self) -> None:
        if not self.audio_member or "/" in self.audio_member:
            raise ExportError(f"audio member must be a member extension such as 'flac', got {self.audio_member!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SharOptions(ExportOptions):
    """Lhotse Shar: `shard_size` cuts per ``cuts.NNNNNN.jsonl.gz`` / ``recording.NNNNNN.tar`` pair.

    audio_format: how lhotse's writer stores the audio (it decodes and re-encodes it, 16-bit).
    """

    shard_size: int = 1000
    audio_format: Literal["flac", "wav"] = "flac"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.shard_size < 1:
            raise ExportError(f"shard size must be >= 1 cut, got {self.shard_size}")
        if self.audio_format not in ("flac", "wav"):
            raise ExportError(f"Shar audio format must be 'flac' or 'wav', got {self.audio_format!r}")


@dataclass(frozen=True)
class LhotseManifestOptions(ExportOptions):
    """Lhotse manifests (recordings, supervisions, cuts) over audio files copied out of the shards."""


@dataclass(frozen=True)
class NemoOptions(ExportOptions):
    """NeMo: a JSONL manifest over audio files (default), or the tarred layout with `num_shards` tars."""

    tarred: bool = False
    num_shards: int = 8  # tarred only; NeMo wants it divisible by the number of GPUs

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_shards < 1:
            raise ExportError(f"number of shards must be >= 1, got {self.num_shards}")


@dataclass(frozen=True)
class HuggingFaceOptions(ExportOptions):
    """Hugging Face Parquet: files of at most `max_shard_bytes` of audio + metadata, one split."""

    max_shard_bytes: int = 500 * 1024 * 1024  # the Hub's own default shard size
    split: str = "train"
    rows_per_group: int = 100  # Parquet row group: what a streaming reader holds at once

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_shard_bytes < 1:
            raise ExportError(f"max shard bytes must be positive, got {self.max_shard_bytes}")
        if self.rows_per_group < 1:
            raise ExportError(f"rows per group must be >= 1, got {self.rows_per_group}")
        if not self.split or not self.split.replace("_", "").isalnum():
            raise ExportError(f"split must be a name such as 'train' (letters, digits, '_'), got {self.split!r}")
