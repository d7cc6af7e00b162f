"""Decode stage: manifest audio path -> mono float32 at the job's sample rate."""

from __future__ import annotations

from pipeline.audio import ChannelPolicy, decode_audio
from pipeline.item import Item
from pipeline.stage import Resources, Stage

PASSTHROUGH = ("text", "speaker", "language")


class DecodeStage(Stage):
    """Reads `fields[column]`, decodes and resamples it into `data['audio']` (+ provenance in meta)."""

    name = "decode"
    batch_size = 8

    def __init__(
        self,
        sample_rate: int,
        *,
        column: str = "audio",
        channel_policy: ChannelPolicy = "first",
        max_seconds: float | None = None,
        resources: Resources | None = None,
    ):
        super().__init__(resources)
        self.sample_rate = sample_rate
        self.column = column
        self.channel_policy = channel_policy
        self.max_seconds = max_seconds

    def process_item(self, item: Item) -> None:
        path = item.fields.get(self.column)
        if not path:
            raise ValueError(f"column '{self.column}' is empty for id {item.id!r}")
        decoded = decode_audio(
            path, target_sample_rate=self.sample_rate, channel_policy=self.channel_policy, max_seconds=self.max_seconds
        )
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
            }
        )
