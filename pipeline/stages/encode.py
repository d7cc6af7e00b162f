"""Encode stage: `data['audio']` -> a FLAC member of the output sample."""

from __future__ import annotations

from pipeline.engine.item import Item
from pipeline.engine.stage import Resources, Stage
from pipeline.io.audio import encode_flac


class EncodeFlacStage(Stage):
    """Writes `data[source]` at `data['sample_rate']` as the `flac` member (16 or 24 bit)."""

    name = "encode_flac"
    batch_size = 8
    inputs = ("audio", "sample_rate")

    def __init__(self, *, bits: int = 16, source: str = "audio", member: str = "flac", resources: Resources | None = None):
        super().__init__(resources)
        self.bits = bits
        self.source = source
        self.inputs = (source, "sample_rate")
        self.member = member

    def process_item(self, item: Item) -> None:
        samples = item.data[self.source]
        rate = int(item.data.get(f"{self.source}_sample_rate", item.data["sample_rate"]))
        item.members[self.member] = encode_flac(samples, rate, self.bits)
        duration = len(samples) / rate
        item.meta.update({"sample_rate": rate, "duration": duration, "num_samples": len(samples), "bits": self.bits})
        item.index.update({"duration": duration, "sample_rate": rate})
