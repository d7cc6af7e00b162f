"""Upsample's decode: a manifest row or a tar sample -> 16 kHz mono audio, its level, and its provenance.

Tar input: the primary audio member is decoded; the json member becomes ``source_meta``; every other
member is kept as it is, to be written again unchanged.
"""

from __future__ import annotations

import json

import numpy as np

from hierspeech.speechsr import INPUT_SAMPLING_RATE as MODEL_INPUT_RATE
from pipeline.engine.item import Item
from pipeline.engine.stage import Resources
from pipeline.io.audio import ChannelPolicy, decode_audio
from pipeline.io.tar_source import sample_members
from pipeline.stages.decode import PASSTHROUGH, DecodeStage, truncation_record
from pipeline.stages.normalize import SILENCE_PEAK

CLIP_LEVEL = 0.999
CLIPPED_MIN_SAMPLES = 3


# -- stages ---------------------------------------------------------------------------------------
class _SourceLevel:
    """Peak and clipped-sample count of the source, accumulated over decode blocks (native rate, mono)."""

    def __init__(self) -> None:
        self.peak = 0.0
        self.clipped = 0

    def add(self, block: np.ndarray) -> None:
        magnitude = np.abs(block)
        self.peak = max(self.peak, float(magnitude.max()))
        self.clipped += int(np.count_nonzero(magnitude >= CLIP_LEVEL))


class UpsampleDecodeStage(DecodeStage):
    """Manifest row or tar sample -> 16 kHz mono `data['audio']`, source level facts and provenance.

    Tar input: the primary audio member is decoded; the json member becomes ``source_meta``; every
    other member is kept as it is, to be written again unchanged.
    """

    outputs = ("audio", "sample_rate", "source_peak")

    def __init__(self, *, channel_policy: ChannelPolicy = "first", max_seconds: float | None = None,
                 resources: Resources | None = None):
        super().__init__(MODEL_INPUT_RATE, channel_policy=channel_policy, max_seconds=max_seconds, resources=resources)

    def process_item(self, item: Item) -> None:
        fields = item.fields
        if fields.get("tar_members"):
            source, label = self._tar_sample(item)
        else:
            source = label = fields.get(self.column)
            if not source:
                raise ValueError(f"column '{self.column}' is empty for id {item.id!r}")
            for name in PASSTHROUGH:
                if fields.get(name) is not None:
                    item.meta[name] = item.index[name] = fields[name]
            item.meta["source"] = source
        level = _SourceLevel()
        decoded = decode_audio(source, target_sample_rate=MODEL_INPUT_RATE, channel_policy=self.channel_policy,
                               max_seconds=self.max_seconds, name=label, on_block=level.add)
        self.check_length(decoded, label)
        source_peak, clipped = level.peak, level.clipped
        item.data["audio"] = decoded.samples
        item.data["sample_rate"] = MODEL_INPUT_RATE
        item.data["source_peak"] = source_peak
        flags = {
            "narrowband_source": decoded.source_sample_rate < MODEL_INPUT_RATE,
            "clipped_source": clipped >= CLIPPED_MIN_SAMPLES,
            "silent_source": source_peak < SILENCE_PEAK,
        }
        source_duration = decoded.source_frames / decoded.source_sample_rate
        item.meta.update(
            {
                "source_sample_rate": decoded.source_sample_rate,
                "source_channels": decoded.source_channels,
                "source_format": decoded.source_format,
                "source_duration": source_duration,
                "source_peak": source_peak,
                "source_clipped_samples": clipped,
                "channel_policy": self.channel_policy if decoded.source_channels > 1 else "mono",
                "model_input_sample_rate": MODEL_INPUT_RATE,
                "resampled_to_16k": decoded.source_sample_rate != MODEL_INPUT_RATE,
                "flags": sorted(name for name, on in flags.items() if on),
                **truncation_record(decoded),
            }
        )
        item.index.update(
            {
                "source_duration": source_duration,
                "source_sample_rate": decoded.source_sample_rate,
                "source_channels": decoded.source_channels,
                "source_peak": source_peak,
                "truncated": decoded.truncated,
                **flags,
            }
        )

    def _tar_sample(self, item: Item) -> tuple[bytes, str]:
        fields = item.fields
        shard, key, ext = fields[self.column], fields["tar_key"], fields.get("tar_member")
        members = sample_members(fields)
        if not ext:
            raise ValueError(f"sample {key!r} of {shard} has no audio member (members: {sorted(members)})")
        audio = members.pop(ext)
        raw_json = members.pop("json", None)
        if raw_json is not None:
            try:
                source_meta = json.loads(raw_json)
            except ValueError:
                source_meta = {"unparsed_json": raw_json.decode("utf-8", "replace")}
            item.meta["source_meta"] = source_meta
            if isinstance(source_meta, dict):
                for name in PASSTHROUGH:
                    if isinstance(source_meta.get(name), str):
                        item.meta[name] = item.index[name] = source_meta[name]
        item.members.update(members)  # pass-through, byte for byte
        item.meta.update({"source": shard, "source_shard": shard, "source_key": key, "source_member": ext,
                          "passthrough_members": sorted(members)})
        item.index.update({"source_shard": shard, "source_key": key})
        return audio, f"{shard}:{key}.{ext}"

