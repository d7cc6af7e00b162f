"""`hsp prepare`: any corpus -> 16 kHz mono FLAC WebDataset shards (the usual first step)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pyarrow as pa

from pipeline.engine.job import Job, JobSpec
from pipeline.engine.stage import Resources, Stage
from pipeline.errors import ConfigError
from pipeline.io.audio import CHANNEL_POLICIES, FLAC_SUBTYPES
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
RUN_FIELDS = ("cpus_per_task",)
"""PrepareConfig fields that only say how to run: left out of job.json, free to change on resume."""


@dataclass(frozen=True)
class PrepareConfig:
    """Output rate, downmix rule, length limit and FLAC depth; all but RUN_FIELDS is recorded in job.json."""

    sample_rate: int = 16000
    channel_policy: str = "first"  # first channel, as upstream; or "mean"
    max_seconds: float | None = 3600.0
    bits: int = 16
    cpus_per_task: float = 1.0

    def __post_init__(self) -> None:
        if self.sample_rate < 1000:
            raise ConfigError(f"sample rate must be >= 1000 Hz, got {self.sample_rate}")
        if self.channel_policy not in CHANNEL_POLICIES:
            raise ConfigError(f"channel policy must be one of {', '.join(CHANNEL_POLICIES)}, got {self.channel_policy!r}")
        if self.bits not in FLAC_SUBTYPES:
            raise ConfigError(f"FLAC bit depth must be one of {sorted(FLAC_SUBTYPES)}, got {self.bits}")

    def output_options(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in RUN_FIELDS}


def prepare_job(config: PrepareConfig) -> Job:
    """Decode, downmix (first channel by default, as upstream), resample, encode FLAC."""

    def build() -> list[Stage]:
        return [
            DecodeStage(config.sample_rate, channel_policy=config.channel_policy, max_seconds=config.max_seconds,
                        resources=Resources(num_cpus=config.cpus_per_task)),
            EncodeFlacStage(bits=config.bits, resources=Resources(num_cpus=config.cpus_per_task)),
        ]

    return PREPARE.job(build, config.output_options())


PREPARE = JobSpec(
    name="prepare",
    command=("prepare",),
    config=PrepareConfig,
    build=prepare_job,
    index_fields=tuple(PREPARE_INDEX_FIELDS),
)
