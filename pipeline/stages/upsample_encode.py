"""Upsample's encode: FLAC at the model's rate, with the model's provenance."""

from __future__ import annotations

from pipeline.engine.item import Item
from pipeline.engine.stage import Resources
from pipeline.stages.encode import EncodeFlacStage


class UpsampleEncodeStage(EncodeFlacStage):
    """FLAC at the model's rate, plus the model's provenance (variant, checkpoint path and sha256)."""

    def __init__(self, model_record: dict[str, str], *, bits: int = 16, resources: Resources | None = None):
        super().__init__(bits=bits, resources=resources)
        self.model_record = model_record

    def process_item(self, item: Item) -> None:
        super().process_item(item)
        item.meta["model"] = self.model_record
        item.index["model_variant"] = self.model_record["variant"]

