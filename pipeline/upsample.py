"""`hsp upsample`: 16 kHz speech -> 24 or 48 kHz FLAC with the official SpeechSR weights.

Stages: decode (any rate, first channel; resampled to 16 kHz as upstream; from a manifest or from tar
members read by offset) -> SpeechSR (actor pool, exact batched/windowed inference) -> level
normalization -> FLAC at the target rate -> shards. Tar input keeps every non-audio member of the
sample byte for byte. See docs/upsample.md.
"""

from __future__ import annotations

import os

import pyarrow as pa

from pipeline.engine.job import Job
from pipeline.engine.stage import Resources, Stage
from pipeline.errors import ConfigError
from pipeline.io.audio import ChannelPolicy
from pipeline.io.manifest import Column, ManifestNotFoundError
from pipeline.io.output import STATE, OutputDir
from pipeline.io.tar_source import TarSourceError, build_tar_manifest, is_tar_input
from pipeline.stages.decode import TRUNCATED_FIELD
from pipeline.stages.mirror_encode import MirrorEncodeStage
from pipeline.stages.model_checks import CheckpointError, WeightsUnavailableError, check_checkpoints
from pipeline.stages.normalize import DEFAULT_NORMALIZE, NORMALIZE_MODES, NormalizeStage
from pipeline.stages.speechsr import SpeechSRStage
from pipeline.stages.upsample_decode import UpsampleDecodeStage
from pipeline.stages.upsample_encode import UpsampleEncodeStage

INPUT_MANIFEST = "input_manifest.parquet"

# Internal: only the manifest that tar input builds (OUT/_state/input_manifest.parquet) may hold them; a
# user's manifest with them is refused (they make the decode copy byte ranges of the `audio` file).
UPSAMPLE_COLUMNS: tuple[Column, ...] = (
    Column("tar_key", "string", internal=True, doc="tar input: the sample's WebDataset key"),
    Column("tar_member", "string", internal=True, doc="tar input: extension of the audio member"),
    Column("tar_members", "string", internal=True, doc="tar input: json {ext: [offset, size]} of every member"),
)

UPSAMPLE_INDEX_FIELDS = [
    pa.field("sample_rate", pa.int64()),
    pa.field("source_sample_rate", pa.int64()),
    pa.field("source_channels", pa.int64()),
    pa.field("model_variant", pa.string()),
    pa.field("normalize", pa.string()),
    pa.field("gain", pa.float64()),
    pa.field("source_peak", pa.float64()),
    pa.field("peak", pa.float64()),
    pa.field("narrowband_source", pa.bool_()),
    pa.field("clipped_source", pa.bool_()),
    pa.field("silent_source", pa.bool_()),
    pa.field("source_shard", pa.string()),
    pa.field("source_key", pa.string()),
    pa.field("text", pa.string()),
    pa.field("speaker", pa.string()),
    pa.field("language", pa.string()),
    TRUNCATED_FIELD,
]
# The mirror layout (one output tar per input tar): one index row per sample; the scalar columns
# describe its first upsampled member, `member_facts` every member ({written ext: facts}).
MIRROR_INDEX_FIELDS = [
    *UPSAMPLE_INDEX_FIELDS,
    pa.field("audio_members", pa.list_(pa.string())),
    pa.field("member_facts", pa.string()),
]
LAYOUTS = ("shards", "mirror")


def upsample_job(
    sample_rate: int = 48000,
    *,
    normalize: str = DEFAULT_NORMALIZE,
    bits: int = 16,
    checkpoint: str | None = None,
    actors: int = 1,
    gpus_per_actor: float = 1.0,
    cpus_per_actor: float = 1.0,
    batch_seconds: float | None = None,
    window: int | None = None,
    channel_policy: ChannelPolicy = "first",
    max_seconds: float | None = 3600.0,
    cpus_per_task: float = 1.0,
    download_timeout: float = 60.0,
    layout: str = "shards",
    audio_ext: str | None = None,
    audio_member: str | None = None,
) -> Job:
    """Resolve the SpeechSR weights now (download, or `WeightsUnavailableError` on the driver), then build the job.

    layout: ``shards`` (our WebDataset shards, keys from ids) or ``mirror`` (one tar per input tar,
    run by `pipeline.engine.mirror_runner.run_mirror_job`); audio_ext / audio_member: mirror only,
    the extension written for upsampled members (None keeps each one's) and the one member to upsample.
    """
    from hierspeech.checkpoint import sha256_file
    from hierspeech.speechsr import SpeechSR, SpeechSRConfig
    from hierspeech.weights import WeightsError, resolve_speechsr_checkpoint

    variant = {48000: "48k", 24000: "24k"}.get(int(sample_rate))
    if variant is None:
        raise ConfigError(f"SpeechSR outputs 24000 or 48000 Hz, not {sample_rate}")
    if normalize not in NORMALIZE_MODES:
        raise ConfigError(f"unknown normalization {normalize!r}; use one of {NORMALIZE_MODES}")
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}; use one of {LAYOUTS}")
    if layout != "mirror" and (audio_ext or audio_member):
        raise ConfigError("--audio-ext and --audio-member apply to --layout mirror only")
    try:
        path = resolve_speechsr_checkpoint(variant, checkpoint, timeout=download_timeout)
    except WeightsError as exc:
        raise WeightsUnavailableError(str(exc)) from exc
    config_rate = SpeechSRConfig.from_json(path.with_name("config.json")).sampling_rate
    if config_rate != int(sample_rate):
        raise CheckpointError(f"{path} is a {config_rate} Hz SpeechSR (its config.json), not {sample_rate} Hz; "
                              "pass the matching --checkpoint or --sr")

    check_checkpoints("upsample", [("--checkpoint" if checkpoint else "SpeechSR", SpeechSR, str(path))])
    sha = sha256_file(path)
    model_record = {"name": "SpeechSR", "variant": variant, "checkpoint": str(path), "checkpoint_sha256": sha,
                    "config": str(path.with_name("config.json"))}

    def build() -> list[Stage]:
        return [
            UpsampleDecodeStage(channel_policy=channel_policy, max_seconds=max_seconds,
                                resources=Resources(num_cpus=cpus_per_task)),
            SpeechSRStage(variant, checkpoint=str(path), expected_sha256=sha, batch_seconds=batch_seconds,
                          window=window,
                          resources=Resources(num_cpus=cpus_per_actor, num_gpus=gpus_per_actor, actors=actors)),
            NormalizeStage(normalize, resources=Resources(num_cpus=cpus_per_task)),
            MirrorEncodeStage(model_record, bits=bits, resources=Resources(num_cpus=cpus_per_task)) if layout == "mirror"
            else UpsampleEncodeStage(model_record, bits=bits, resources=Resources(num_cpus=cpus_per_task)),
        ]

    options = {"sample_rate": int(sample_rate), "normalize": normalize, "bits": bits, "channel_policy": channel_policy,
               "max_seconds": max_seconds, "checkpoint_sha256": sha}
    if layout == "mirror":  # only then: a shards output of an earlier version resumes with the same record
        options.update({"layout": layout, "audio_ext": audio_ext, "audio_member": audio_member})

    return Job(
        name="upsample",
        build_stages=build,
        index_fields=MIRROR_INDEX_FIELDS if layout == "mirror" else UPSAMPLE_INDEX_FIELDS,
        extra_columns=UPSAMPLE_COLUMNS,
        internal_manifest=INPUT_MANIFEST,
        output_options=options,
    )


def input_manifest(spec: str, out_root: str) -> str:
    """The manifest to run on: `spec` itself, or for tar input the internal manifest written to OUT/_state."""
    if not is_tar_input(spec):
        if "://" not in spec and not os.path.exists(spec):
            raise ManifestNotFoundError(f"input not found: {spec} (a Parquet manifest, or tar shards: folder, glob, brace pattern)")
        return spec
    table = build_tar_manifest(spec)
    out = OutputDir(str(out_root))
    shards_dir = out.path("shards") + "/"
    if any(str(p).startswith(shards_dir) for p in table.column("audio").to_pylist()):
        raise TarSourceError(f"the input shards are inside the output folder {out_root}; write to another folder")
    out.ensure_layout()
    sink = pa.BufferOutputStream()
    import pyarrow.parquet as pq

    pq.write_table(table, sink)
    out.write_atomic(STATE, INPUT_MANIFEST, sink.getvalue().to_pybytes())
    if "://" in str(out_root):
        return f"{str(out_root).rstrip('/')}/{STATE}/{INPUT_MANIFEST}"
    return out.path(STATE, INPUT_MANIFEST)
