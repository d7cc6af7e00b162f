"""Upsample's encode for a mirrored archive: the new audio in the format of the member it replaces.

A ``wav`` member comes back as WAV, a ``flac`` member as FLAC (16 or 24 bit, ``--bits``); ``mp3``,
``ogg`` (Vorbis) and ``opus`` are re-encoded lossily at the new rate. ``--audio-ext flac`` writes
FLAC whatever the source was. Every encoded member is opened again before it is kept, so no member
that does not decode is ever written.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from pipeline.engine.item import Item
from pipeline.engine.stage import Resources, Stage
from pipeline.io.audio import AudioError, encode_flac

# extension -> (libsndfile format, subtype by bit depth or None for a lossy codec)
WRITABLE_FORMATS: dict[str, tuple[str, dict[int, str] | None]] = {
    "flac": ("FLAC", {16: "PCM_16", 24: "PCM_24"}),
    "wav": ("WAV", {16: "PCM_16", 24: "PCM_24"}),
    "mp3": ("MP3", None),
    "ogg": ("OGG", None),
    "opus": ("OGG", None),
}
_LOSSY_SUBTYPES = {"mp3": "MPEG_LAYER_III", "ogg": "VORBIS", "opus": "OPUS"}


def encode_member(samples: np.ndarray, sample_rate: int, ext: str, bits: int = 16) -> bytes:
    """Mono float samples as the bytes of a ``.<ext>`` member; checked to decode at `sample_rate`.

    Raises:
        AudioError: the extension has no encoder here, or the encoded bytes do not decode.
    """
    if ext == "flac":
        return encode_flac(samples, sample_rate, bits)
    if ext not in WRITABLE_FORMATS:
        raise AudioError(f"cannot write .{ext} audio; pass --audio-ext flac to write FLAC members instead")
    if samples.ndim != 1 or samples.size == 0:
        raise AudioError(f"cannot encode {samples.shape} samples as mono .{ext}: need at least one sample")
    fmt, subtypes = WRITABLE_FORMATS[ext]
    subtype = subtypes[bits] if subtypes else _LOSSY_SUBTYPES[ext]
    buffer = io.BytesIO()
    try:
        sf.write(buffer, np.clip(samples, -1.0, 1.0), sample_rate, format=fmt, subtype=subtype)
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise AudioError(f"cannot encode .{ext} at {sample_rate} Hz: {exc}; pass --audio-ext flac") from exc
    data = buffer.getvalue()
    try:
        decoded, rate = sf.read(io.BytesIO(data), dtype="float32")
    except Exception as exc:
        raise AudioError(f"encoded .{ext} ({len(data)} bytes) does not decode: {exc}") from exc
    lossless = subtypes is not None
    if rate != sample_rate or decoded.shape[0] == 0 or (lossless and decoded.shape[0] != samples.size):
        raise AudioError(f"encoded .{ext} decodes to {decoded.shape[0]} frames at {rate} Hz; expected {samples.size} at {sample_rate} Hz")
    return data


class MirrorEncodeStage(Stage):
    """`data['audio']` -> the member `fields['mirror_ext']`, at the model's rate, plus the model's provenance."""

    name = "encode_member"
    batch_size = 8
    inputs = ("audio", "sample_rate")
    field_inputs = ("mirror_ext",)

    def __init__(self, model_record: dict[str, str], *, bits: int = 16, resources: Resources | None = None):
        super().__init__(resources)
        self.model_record = model_record
        self.bits = bits

    def process_item(self, item: Item) -> None:
        samples = item.data["audio"]
        rate = int(item.data["sample_rate"])
        ext = item.fields["mirror_ext"]
        data = encode_member(samples, rate, ext, self.bits)
        duration = len(samples) / rate
        item.members[ext] = data
        item.index.update({"duration": duration, "sample_rate": rate, "model_variant": self.model_record["variant"]})
