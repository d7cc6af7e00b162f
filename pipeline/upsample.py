"""`hsp upsample`: 16 kHz speech -> 24 or 48 kHz FLAC with the official SpeechSR weights.

Stages: decode (any rate, first channel; resampled to 16 kHz as upstream; from a manifest or from tar
members read by offset) -> SpeechSR (actor pool, exact batched/windowed inference) -> level
normalization -> FLAC at the target rate -> shards. Tar input keeps every non-audio member of the
sample byte for byte. `layout="mirror"` (tar input) gives the archive back instead: one output tar per
input tar, same names, keys and order, audio replaced in place (`pipeline.engine.mirror_runner`).
See docs/upsample.md.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import pyarrow as pa

from pipeline.engine.job import Job, JobSpec, RunOptions
from pipeline.engine.stage import Resources, Stage
from pipeline.errors import ConfigError
from pipeline.io.audio import CHANNEL_POLICIES, FLAC_SUBTYPES
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
SPEECHSR_VARIANTS = {48000: "48k", 24000: "24k"}  # output rate -> the official SpeechSR checkpoint

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
# Internal fields of the mirror layout's items (`pipeline.engine.mirror_runner` builds them from tar headers).
MIRROR_COLUMNS: tuple[Column, ...] = (
    Column("mirror_part", "string", internal=True, doc="mirror layout: the commit name of the input tar"),
    Column("mirror_ext", "string", internal=True, doc="mirror layout: the extension the upsampled member is written as"),
)
LAYOUTS = ("shards", "mirror")
MIRROR_FIELDS = ("layout", "audio_ext", "audio_member")


RUN_FIELDS = ("checkpoint", "actors", "gpus_per_actor", "cpus_per_actor", "batch_seconds", "window", "cpus_per_task",
              "download_timeout")
"""UpsampleConfig fields left out of job.json: how to run, and the checkpoint path (its sha256 is recorded)."""


@dataclass(frozen=True)
class UpsampleConfig:
    """Which SpeechSR, how to level and store its output, and how to run it."""

    sample_rate: int = 48000  # the SpeechSR 48k or 24k model
    normalize: str = DEFAULT_NORMALIZE
    bits: int = 16
    checkpoint: str | None = None  # G_*.pth with config.json beside; None: $HSP_WEIGHTS_DIR, else a verified download
    actors: int = 1
    gpus_per_actor: float = 1.0
    cpus_per_actor: float = 1.0
    batch_seconds: float | None = None  # output audio per model call; None: one window on CPU, 10 s on GPU
    window: int | None = None
    channel_policy: str = "first"
    max_seconds: float | None = 3600.0
    cpus_per_task: float = 1.0
    download_timeout: float = 60.0
    layout: str = "shards"  # shards: our shards, keys from ids | mirror: tar input given back as the same archive
    audio_ext: str | None = None  # mirror: write upsampled members with this extension; None keeps each one's
    audio_member: str | None = None  # mirror: upsample only this member of each sample; None: every audio member

    def __post_init__(self) -> None:
        if self.sample_rate not in SPEECHSR_VARIANTS:
            raise ConfigError(f"SpeechSR outputs {' or '.join(map(str, sorted(SPEECHSR_VARIANTS)))} Hz, not {self.sample_rate}")
        if self.normalize not in NORMALIZE_MODES:
            raise ConfigError(f"unknown normalization {self.normalize!r}; use one of {NORMALIZE_MODES}")
        if self.bits not in FLAC_SUBTYPES:
            raise ConfigError(f"FLAC bit depth must be one of {sorted(FLAC_SUBTYPES)}, got {self.bits}")
        if self.channel_policy not in CHANNEL_POLICIES:
            raise ConfigError(f"channel policy must be one of {', '.join(CHANNEL_POLICIES)}, got {self.channel_policy!r}")
        if self.layout not in LAYOUTS:
            raise ConfigError(f"unknown layout {self.layout!r}; use one of {', '.join(LAYOUTS)}")
        if self.layout != "mirror" and (self.audio_ext or self.audio_member):
            raise ConfigError("--audio-ext and --audio-member apply to --layout mirror only")

    @property
    def variant(self) -> str:
        return SPEECHSR_VARIANTS[self.sample_rate]

    def output_options(self, checkpoint_sha256: str) -> dict:
        options = {k: v for k, v in asdict(self).items() if k not in RUN_FIELDS}
        options["checkpoint_sha256"] = checkpoint_sha256
        if self.layout != "mirror":  # the shards layout's record stays as before: its outputs resume
            options = {k: v for k, v in options.items() if k not in MIRROR_FIELDS}
        return options


def upsample_job(config: UpsampleConfig) -> Job:
    """Resolve the SpeechSR weights now (download, or `WeightsUnavailableError` on the driver), then build the job."""
    from hierspeech.checkpoint import sha256_file
    from hierspeech.speechsr import SpeechSR, SpeechSRConfig
    from hierspeech.weights import WeightsError, resolve_speechsr_checkpoint

    try:
        path = resolve_speechsr_checkpoint(config.variant, config.checkpoint, timeout=config.download_timeout)
    except WeightsError as exc:
        raise WeightsUnavailableError(str(exc)) from exc
    config_rate = SpeechSRConfig.from_json(path.with_name("config.json")).sampling_rate
    if config_rate != config.sample_rate:
        raise CheckpointError(f"{path} is a {config_rate} Hz SpeechSR (its config.json), not {config.sample_rate} Hz; "
                              "pass the matching --checkpoint or --sr")
    check_checkpoints("upsample", [("--checkpoint" if config.checkpoint else "SpeechSR", SpeechSR, str(path))])
    sha = sha256_file(path)
    model_record = {"name": "SpeechSR", "variant": config.variant, "checkpoint": str(path), "checkpoint_sha256": sha,
                    "config": str(path.with_name("config.json"))}

    def build() -> list[Stage]:
        def cpu() -> Resources:  # one object per stage: `--stage-resources decode=...` changes decode only
            return Resources(num_cpus=config.cpus_per_task)

        return [
            UpsampleDecodeStage(channel_policy=config.channel_policy, max_seconds=config.max_seconds, resources=cpu()),
            SpeechSRStage(config.variant, checkpoint=str(path), expected_sha256=sha, batch_seconds=config.batch_seconds,
                          window=config.window,
                          resources=Resources(num_cpus=config.cpus_per_actor, num_gpus=config.gpus_per_actor, actors=config.actors)),
            NormalizeStage(config.normalize, resources=cpu()),
            MirrorEncodeStage(model_record, bits=config.bits, resources=cpu()) if config.layout == "mirror"
            else UpsampleEncodeStage(model_record, bits=config.bits, resources=cpu()),
        ]

    job = UPSAMPLE.job(build, config.output_options(sha), internal_manifest=INPUT_MANIFEST,
                       extra_columns=UPSAMPLE_COLUMNS + MIRROR_COLUMNS if config.layout == "mirror" else None)
    if config.layout == "mirror":
        job.index_fields = list(MIRROR_INDEX_FIELDS)
    return job


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


def run_upsample(job: Job, config: UpsampleConfig, source: str, output: str, options: RunOptions) -> dict:
    """Run the built job: over a manifest or tar input's internal manifest, or (mirror layout) over the tars."""
    from pipeline.engine.mirror_runner import run_mirror_job
    from pipeline.engine.runner import run_job

    if config.layout != "mirror":
        return run_job(job, input_manifest(source, output), output, options)
    if not is_tar_input(source):
        raise ConfigError(f"--layout mirror mirrors tar shards, and the input {source!r} is a manifest; pass tar shards "
                          "(folder, glob, brace pattern or list file) or use --layout shards")
    return run_mirror_job(job, source, output, options)


UPSAMPLE = JobSpec(
    name="upsample",
    command=("upsample",),
    config=UpsampleConfig,
    build=upsample_job,
    columns=UPSAMPLE_COLUMNS,
    index_fields=tuple(UPSAMPLE_INDEX_FIELDS),
    input_manifest=lambda config, spec, out_root: input_manifest(spec, out_root),
    run=run_upsample,
)
