"""Decode stage: manifest audio path -> mono float32 at the job's sample rate."""

from __future__ import annotations

import pyarrow as pa

from pipeline.engine.item import Item
from pipeline.engine.stage import Resources, Stage
from pipeline.io.audio import AudioError, ChannelPolicy, DecodedAudio, decode_audio
from pipeline.stages.min_length import ANY, MinLength

PASSTHROUGH = ("text", "speaker", "language")
# Index column of every job that decodes audio: the header declared more frames than the file held
# (the audio read is kept; see DecodedAudio.declared_frames).
TRUNCATED_FIELD = pa.field("truncated", pa.bool_())


def truncation_record(decoded: DecodedAudio) -> dict:
    """The sample json's view of a cut-short source: always `truncated`, and the declared length when it is."""
    record: dict = {"truncated": decoded.truncated}
    if decoded.truncated:
        record["source_declared_frames"] = decoded.declared_frames
        record["source_declared_duration"] = decoded.declared_frames / decoded.source_sample_rate
    return record


class DecodeStage(Stage):
    """Reads `fields[column]`, decodes and resamples it into `data['audio']` (+ provenance in meta).

    `min_length` (at 16 kHz) is the shortest audio the job's later stages take: shorter audio is an
    error row here, with the length and the minimum, instead of an exception deep inside a model.
    """

    name = "decode"
    batch_size = 8
    outputs = ("audio", "sample_rate")

    def __init__(
        self,
        sample_rate: int,
        *,
        column: str = "audio",
        channel_policy: ChannelPolicy = "first",
        max_seconds: float | None = None,
        min_length: MinLength = ANY,
        resources: Resources | None = None,
    ):
        super().__init__(resources)
        self.sample_rate = sample_rate
        self.column = column
        self.field_inputs = (column,)
        self.channel_policy = channel_policy
        self.max_seconds = max_seconds
        self.min_length = min_length

    def check_length(self, decoded: DecodedAudio, label: str) -> None:
        """Refuse audio shorter than `min_length` (counted at 16 kHz)."""
        at_16k = round(len(decoded.samples) * 16000 / decoded.sample_rate)
        if (problem := self.min_length.problem(at_16k, f"audio {label}")) is not None:
            raise AudioError(problem)

    def process_item(self, item: Item) -> None:
        path = item.fields.get(self.column)
        if not path:
            raise ValueError(f"column '{self.column}' is empty for id {item.id!r}")
        decoded = decode_audio(
            path, target_sample_rate=self.sample_rate, channel_policy=self.channel_policy, max_seconds=self.max_seconds
        )
        self.check_length(decoded, path)
        item.data["audio"] = decoded.samples
        item.data["sample_rate"] = decoded.sample_rate
        source_duration = decoded.source_frames / decoded.source_sample_rate
        item.meta.update(
            {
                "source": path,
                "source_sample_rate": decoded.source_sample_rate,
                "source_channels": decoded.source_channels,
                "source_format": decoded.source_format,
                "source_duration": source_duration,
                "channel_policy": self.channel_policy if decoded.source_channels > 1 else "mono",
                **truncation_record(decoded),
            }
        )
        for name in PASSTHROUGH:
            if item.fields.get(name) is not None:
                item.meta[name] = item.fields[name]
                item.index[name] = item.fields[name]
        item.index.update(
            {
                "source_duration": source_duration,
                "source_sample_rate": decoded.source_sample_rate,
                "source_channels": decoded.source_channels,
                "truncated": decoded.truncated,
            }
        )
