"""Audio decoding, checks, resampling and FLAC encoding for pipeline stages.

Decoding goes through soundfile (libsndfile: wav, flac, ogg/vorbis/opus, mp3), opened by
`pipeline.io.audio_source` (regular files only, remote URIs buffered, bytes from memory). It reads in
blocks of `DECODE_BLOCK_FRAMES`: each block is reduced to mono (first channel or mean) and, when a
rate is asked for, fed to a streaming soxr resampler, so a decode holds its output plus a block,
not the whole file several times over (bench/bench_decode_memory.py). The result equals a one-shot
decode: bit-equal without resampling, and soxr's stream gives the same samples as `soxr.resample`
(tests/pipeline/io/test_audio.py checks both). What is read is bounded: by the header's length, and
for a header without one (a streamed FLAC) by `max_seconds`.

Every failure raises `AudioError` with a message that names the file and what to do, so the stage
records an error row instead of writing silence.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import soundfile as sf
import soxr

from pipeline.io.audio_source import AudioError, OpenedAudio, open_audio, read_all, wav_declared_frames
from pipeline.io.uri import is_uri

__all__ = [
    "AudioError",
    "ChannelPolicy",
    "DecodedAudio",
    "decode_audio",
    "encode_flac",
    "is_uri",
    "read_bytes",
    "resample",
]

ChannelPolicy = Literal["first", "mean"]
CHANNEL_POLICIES: tuple[str, ...] = ("first", "mean")
FLAC_SUBTYPES = {16: "PCM_16", 24: "PCM_24"}
DECODE_BLOCK_FRAMES = 1 << 16  # 64 Ki frames: 512 KiB of float32 stereo per read
UNKNOWN_FRAMES = (1 << 63) - 1  # libsndfile's frame count for a header without a length (SF_COUNT_MAX)
RESAMPLE_QUALITY = "HQ"
FLAC_CHECK_TAIL_FRAMES = 4096  # frames decoded at the end of every encoded FLAC before it is returned


@dataclass(frozen=True)
class DecodedAudio:
    """Mono float32 samples plus what the source looked like (for provenance).

    `declared_frames`: what the header said the file holds, when that is more than could be read
    (a WAV or FLAC cut short); None otherwise. Such audio is kept and flagged `truncated`.
    """

    samples: np.ndarray  # (T,) float32
    sample_rate: int
    source_sample_rate: int
    source_channels: int
    source_format: str
    source_frames: int
    declared_frames: int | None = None

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def truncated(self) -> bool:
        return self.declared_frames is not None and self.declared_frames > self.source_frames


def read_bytes(path: str) -> bytes:
    """Read a local regular file, ``file://`` URI or filesystem URI pyarrow understands (e.g. a job YAML).

    Raises:
        OSError: missing (FileNotFoundError), not a regular file, or unreadable; the message names the path.
    """
    try:
        return read_all(path)
    except AudioError as exc:
        message = str(exc).removeprefix("audio ")
        raise (FileNotFoundError(message) if "not found" in message else OSError(message)) from exc


class _Output:
    """The mono output, written in place when its length is known (no final concatenation), else in pieces."""

    def __init__(self, capacity: int | None):
        self.array = np.empty(capacity, dtype=np.float32) if capacity else None
        self.filled = 0
        self.pieces: list[np.ndarray] = []

    def add(self, samples: np.ndarray) -> None:
        if not samples.size:
            return
        if self.array is not None and self.filled + samples.size <= self.array.size:
            self.array[self.filled : self.filled + samples.size] = samples
            self.filled += samples.size
            return
        if self.array is not None:  # longer than the header said: go on in pieces
            self.pieces.append(self.array[: self.filled])
            self.array = None
        self.pieces.append(np.array(samples, dtype=np.float32, copy=True))

    def result(self) -> np.ndarray:
        if self.array is None:
            return np.concatenate(self.pieces) if self.pieces else np.zeros(0, dtype=np.float32)
        if self.filled >= self.array.size - 16:
            return self.array[: self.filled]  # at most a few samples of slack (resampler rounding)
        return self.array[: self.filled].copy()  # far fewer than declared: do not keep the big buffer


def _reason(exc: Exception) -> str:
    """libsndfile's own words, without soundfile's "Error opening <file object ...>: " prefix."""
    return getattr(exc, "error_string", None) or str(exc)


def _reader(handle: sf.SoundFile, *, known_length: bool) -> Callable[[np.ndarray], np.ndarray]:
    """A function filling a (frames, channels) float32 buffer with the next frames; returns the filled part.

    soundfile's `read` asks libsndfile for the position before and after every read, and libsndfile
    cannot seek in a FLAC whose header has no length (written to a pipe), so such streams are read
    with libsndfile's sequential `sf_readf_float` directly; it returns 0 at the end of the stream.
    """
    if known_length:
        return lambda out: handle.read(out.shape[0], dtype="float32", always_2d=True, out=out)
    from soundfile import _ffi, _snd  # soundfile's own cffi binding of libsndfile

    def read_sequential(out: np.ndarray) -> np.ndarray:
        pointer = _ffi.cast("float *", out.__array_interface__["data"][0])
        count = _snd.sf_readf_float(handle._file, pointer, out.shape[0])
        code = _snd.sf_error(handle._file)
        if code:
            raise sf.LibsndfileError(code)
        return out[:count]

    return read_sequential


def decode_audio(
    source: str | bytes,
    *,
    target_sample_rate: int | None = None,
    channel_policy: ChannelPolicy = "first",
    max_seconds: float | None = None,
    name: str | None = None,
    on_block: Callable[[np.ndarray], None] | None = None,
) -> DecodedAudio:
    """Decode `source` (a path, URI or encoded bytes) to mono float32, optionally resampled.

    `channel_policy`: "first" keeps channel 0 as upstream HierSpeech++ does; "mean" averages.
    `max_seconds` rejects longer files: from the header before decoding, or while reading when the
    header has no length. `on_block` sees each block of mono samples at the source rate (before
    resampling; the array is reused, valid during the call only), for statistics of the source (e.g.
    its peak) without holding it whole.

    Raises:
        AudioError: not found, not a regular file, empty, undecodable, over `max_seconds`, NaN/inf
            samples, or so short that it resamples to no sample at all.
    """
    if channel_policy not in CHANNEL_POLICIES:
        raise ValueError(f"channel policy must be 'first' or 'mean', got {channel_policy!r}")
    label = name or (source if isinstance(source, str) else "<bytes>")
    with open_audio(source) as opened:
        if opened.size == 0:
            raise AudioError(f"audio file is empty (0 bytes): {label}")
        return _decode(opened, label, target_sample_rate, channel_policy, max_seconds, on_block)


def _decode(
    opened: OpenedAudio,
    label: str,
    target_rate: int | None,
    channel_policy: ChannelPolicy,
    max_seconds: float | None,
    on_block: Callable[[np.ndarray], None] | None,
) -> DecodedAudio:
    wav_frames = wav_declared_frames(opened)
    try:
        handle = sf.SoundFile(opened.fd if opened.fd is not None else opened.file, closefd=False)
    except Exception as exc:  # libsndfile raises LibsndfileError/RuntimeError for corrupt data
        raise AudioError(f"cannot decode audio {label}: {_reason(exc)} (corrupt or unsupported file)") from exc
    with handle:
        rate, channels, fmt = handle.samplerate, handle.channels, str(handle.format)
        header_frames = handle.frames if 0 <= handle.frames < UNKNOWN_FRAMES else None
        if max_seconds is not None and header_frames and header_frames / rate > max_seconds:
            raise AudioError(
                f"audio is {header_frames / rate:.1f} s long, over the limit of {max_seconds:g} s: {label} "
                "(raise --max-seconds or split the file)"
            )
        limit = None if max_seconds is None else math.floor(max_seconds * rate)
        resampling = target_rate is not None and target_rate != rate
        out_rate = target_rate if resampling else rate
        capacity = None
        if header_frames:
            capacity = round(header_frames * out_rate / rate) + 1 if resampling else header_frames
        output = _Output(capacity)
        stream = soxr.ResampleStream(rate, out_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY) if resampling else None
        buffer = np.empty((DECODE_BLOCK_FRAMES, channels), dtype=np.float32)
        frames = bad = 0
        read = _reader(handle, known_length=header_frames is not None)
        while True:
            want = DECODE_BLOCK_FRAMES if limit is None else max(1, min(DECODE_BLOCK_FRAMES, limit + 1 - frames))
            try:
                block = read(buffer[:want])
            except Exception as exc:
                raise AudioError(
                    f"cannot decode audio {label} after {frames / rate:.2f} s: {_reason(exc)} (corrupt or cut short)"
                ) from exc
            if block.shape[0] == 0:
                break
            frames += block.shape[0]
            if limit is not None and frames > limit:
                raise AudioError(
                    f"audio is over the limit of {max_seconds:g} s: {label} (its header gives no length; decoding "
                    "stopped there; raise --max-seconds or split the file)"
                )
            mono = block[:, 0] if channel_policy == "first" or channels == 1 else block.mean(axis=1)
            finite = np.isfinite(mono)
            if bad or not finite.all():
                bad += int(np.count_nonzero(~finite))
                continue  # keep counting for the message; nothing more is kept
            mono = np.ascontiguousarray(mono, dtype=np.float32)
            if on_block is not None:
                on_block(mono)
            output.add(stream.resample_chunk(mono) if stream is not None else mono)
    if frames == 0:
        raise AudioError(f"audio has no samples: {label}")
    if bad:
        raise AudioError(f"audio contains {bad} NaN/inf samples: {label}")
    if stream is not None:
        output.add(stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    samples = output.result()
    if samples.size == 0:
        raise AudioError(
            f"audio is {frames} sample(s) at {rate} Hz ({1000 * frames / rate:.3f} ms), which resample(s) to no "
            f"sample at {out_rate} Hz: too short to use: {label}"
        )
    declared = wav_frames if wav_frames is not None else (header_frames if fmt == "FLAC" else None)
    return DecodedAudio(samples, out_rate, rate, channels, fmt, frames, declared if declared and declared > frames else None)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """High-quality resampling with soxr (float32 in, float32 out); the same samples as decode_audio's stream."""
    if from_rate == to_rate:
        return samples
    return soxr.resample(samples, from_rate, to_rate, quality=RESAMPLE_QUALITY).astype(np.float32, copy=False)


def encode_flac(samples: np.ndarray, sample_rate: int, bits: int = 16) -> bytes:
    """Encode mono float samples as FLAC bytes (16- or 24-bit); values are clipped to [-1, 1).

    The result is checked before it is returned (`_check_flac`): it must declare exactly
    ``len(samples)`` frames at `sample_rate` and its last frames must decode, so no member that
    does not decode (such as the 0-byte FLAC of an empty input) is ever written.

    Raises:
        AudioError: no samples to encode, or the encoded stream does not decode to them.
    """
    if bits not in FLAC_SUBTYPES:
        raise ValueError(f"FLAC bit depth must be 16 or 24, got {bits}")
    if samples.ndim != 1 or samples.size == 0:
        raise AudioError(f"cannot encode {samples.shape} samples as mono FLAC: need at least one sample")
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1.0, 1.0), sample_rate, format="FLAC", subtype=FLAC_SUBTYPES[bits])
    data = buffer.getvalue()
    _check_flac(data, samples.size, sample_rate)
    return data


def encode_pcm16_flac(pcm: np.ndarray, sample_rate: int) -> bytes:
    """Encode mono int16 samples (already scaled, as the synthesis output is) as 16-bit FLAC, checked as `encode_flac` is.

    Raises:
        AudioError: no samples to encode, or the encoded stream does not decode to them.
    """
    if pcm.ndim != 1 or pcm.size == 0:
        raise AudioError(f"cannot encode {pcm.shape} samples as mono FLAC: need at least one sample")
    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(pcm, dtype=np.int16), sample_rate, format="FLAC", subtype="PCM_16")
    data = buffer.getvalue()
    _check_flac(data, pcm.size, sample_rate)
    return data


def _check_flac(data: bytes, frames: int, sample_rate: int) -> None:
    """Open FLAC `data`, compare its header's frame count and rate, and decode its last frames to the end.

    About 1 ms whatever the length (a full decode would add ~40% to the encode): the stream parses,
    declares `frames`, and its final frames decode and end exactly there. The middle of a stream
    libsndfile just encoded in memory is not where it fails; an empty or short stream is.
    """
    try:
        with sf.SoundFile(io.BytesIO(data)) as handle:
            if handle.samplerate != sample_rate or handle.channels != 1 or handle.frames != frames:
                raise AudioError(
                    f"encoded FLAC declares {handle.frames} frames, {handle.channels} ch at {handle.samplerate} Hz; "
                    f"expected {frames} frames, 1 ch at {sample_rate} Hz"
                )
            tail = min(frames, FLAC_CHECK_TAIL_FRAMES)
            handle.seek(frames - tail)
            decoded = handle.read(tail + 1, dtype="float32").shape[0]
    except AudioError:
        raise
    except Exception as exc:
        raise AudioError(f"encoded FLAC ({len(data)} bytes) does not decode: {_reason(exc)}") from exc
    if decoded != tail:
        raise AudioError(f"encoded FLAC ends after {frames - tail + decoded} frames, expected {frames}")
