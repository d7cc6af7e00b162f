"""`hsp prepare`: any corpus -> 16 kHz mono FLAC WebDataset shards (the usual first step)."""

from __future__ import annotations

import pyarrow as pa

from pipeline.audio import ChannelPolicy
from pipeline.job import Job
from pipeline.stage import Resources
from pipeline.stages.decode import TRUNCATED_FIELD, DecodeStage
from pipeline.stages.encode import EncodeFlacStage

PREPARE_INDEX_FIELDS = [
    pa.field("sample_rate", pa.int64()),
    pa.field("source_sample_rate", pa.int64()),
    pa.field("source_channels", pa.int64()),
    pa.field("text", pa.string()),
    pa.field("speaker", pa.string()),
    pa.field("language", pa.string()),
    TRUNCATED_FIELD,
]


def prepare_job(
    sample_rate: int = 16000,
    *,
    channel_policy: ChannelPolicy = "first",
    max_seconds: float | None = 3600.0,
    bits: int = 16,
    cpus_per_task: float = 1.0,
) -> Job:
    """Decode, downmix (first channel by default, as upstream), resample, encode FLAC."""

    def build():
        return [
            DecodeStage(sample_rate, channel_policy=channel_policy, max_seconds=max_seconds, resources=Resources(num_cpus=cpus_per_task)),
            EncodeFlacStage(bits=bits, resources=Resources(num_cpus=cpus_per_task)),
        ]

    return Job(
        name="prepare",
        build_stages=build,
        index_fields=PREPARE_INDEX_FIELDS,
        output_options={"sample_rate": sample_rate, "channel_policy": channel_policy, "max_seconds": max_seconds, "bits": bits},
    )
