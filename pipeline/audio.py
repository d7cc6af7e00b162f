"""Audio decoding, checks, resampling and FLAC encoding for pipeline stages.

Decoding goes through soundfile (libsndfile: wav, flac, ogg/vorbis/opus, mp3). Local paths
are read directly; URIs (s3://, gs://, ...) through pyarrow's filesystem layer. Every failure
raises `AudioError` with a message that names the file and what to do, so the stage can record
it as an error row instead of writing silence.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import soxr

ChannelPolicy = Literal["first", "mean"]
FLAC_SUBTYPES = {16: "PCM_16", 24: "PCM_24"}


class AudioError(ValueError):
    """Audio that cannot be used: unreadable, empty, non-finite or too long."""


@dataclass(frozen=True)
class DecodedAudio:
    """Mono float32 samples plus what the source looked like (for provenance)."""

    samples: np.ndarray  # (T,) float32
    sample_rate: int
    source_sample_rate: int
    source_channels: int
    source_format: str
    source_frames: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


def is_uri(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def read_bytes(path: str) -> bytes:
    """Read a local path or a filesystem URI pyarrow understands."""
    if is_uri(path):
        from pyarrow import fs as pafs

        filesystem, inner = pafs.FileSystem.from_uri(path)
        with filesystem.open_input_stream(inner) as stream:
            return stream.read()
    local = path[len("file://") :] if path.startswith("file://") else path
    return Path(local).read_bytes()


def decode_audio(
    source: str | bytes,
    *,
    target_sample_rate: int | None = None,
    channel_policy: ChannelPolicy = "first",
    max_seconds: float | None = None,
    name: str | None = None,
) -> DecodedAudio:
    """Decode `source` (a path, URI or encoded bytes) to mono float32, optionally resampled.

    `channel_policy`: "first" keeps channel 0 as upstream HierSpeech++ does; "mean" averages.
    `max_seconds` rejects absurdly long files before they are decoded (read from the header).
    """
    label = name or (source if isinstance(source, str) else "<bytes>")
    try:
        raw = read_bytes(source) if isinstance(source, str) else source
    except FileNotFoundError as exc:
        raise AudioError(f"audio file not found: {label}") from exc
    except OSError as exc:
        raise AudioError(f"cannot read audio {label}: {exc}") from exc
    if len(raw) == 0:
        raise AudioError(f"audio file is empty (0 bytes): {label}")
    try:
        with sf.SoundFile(io.BytesIO(raw)) as handle:
            frames, rate, channels, fmt = handle.frames, handle.samplerate, handle.channels, handle.format
            if max_seconds is not None and frames > 0 and frames / rate > max_seconds:
                raise AudioError(
                    f"audio is {frames / rate:.1f} s long, over the limit of {max_seconds:g} s: {label} "
                    "(raise --max-seconds or split the file)"
                )
            data = handle.read(dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as exc:  # libsndfile raises LibsndfileError/RuntimeError for corrupt data
        reason = str(exc).split(">: ", 1)[-1]  # drop libsndfile's "Error opening <BytesIO ...>: "
        raise AudioError(f"cannot decode audio {label}: {reason} (corrupt or unsupported file)") from exc
    if data.shape[0] == 0:
        raise AudioError(f"audio has no samples: {label}")
    if max_seconds is not None and data.shape[0] / rate > max_seconds:
        raise AudioError(f"audio is {data.shape[0] / rate:.1f} s long, over the limit of {max_seconds:g} s: {label}")
    mono = data[:, 0] if channel_policy == "first" else data.mean(axis=1)
    if not np.all(np.isfinite(mono)):
        bad = int(np.count_nonzero(~np.isfinite(mono)))
        raise AudioError(f"audio contains {bad} NaN/inf samples: {label}")
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    out_rate = rate
    if target_sample_rate is not None and target_sample_rate != rate:
        mono = resample(mono, rate, target_sample_rate)
        out_rate = target_sample_rate
    return DecodedAudio(mono, out_rate, rate, channels, str(fmt), int(data.shape[0]))


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """High-quality resampling with soxr (float32 in, float32 out)."""
    if from_rate == to_rate:
        return samples
    return soxr.resample(samples, from_rate, to_rate, quality="HQ").astype(np.float32, copy=False)


def encode_flac(samples: np.ndarray, sample_rate: int, bits: int = 16) -> bytes:
    """Encode mono float samples as FLAC bytes (16- or 24-bit); values are clipped to [-1, 1)."""
    if bits not in FLAC_SUBTYPES:
        raise ValueError(f"FLAC bit depth must be 16 or 24, got {bits}")
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1.0, 1.0), sample_rate, format="FLAC", subtype=FLAC_SUBTYPES[bits])
    return buffer.getvalue()
