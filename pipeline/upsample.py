"""`hsp upsample`: 16 kHz speech -> 24 or 48 kHz FLAC with the official SpeechSR weights.

Stages: decode (any rate, first channel; resampled to 16 kHz as upstream; from a manifest or from tar
members read by offset) -> SpeechSR (actor pool, exact batched/windowed inference) -> level
normalization -> FLAC at the target rate -> shards. Tar input keeps every non-audio member of the
sample byte for byte. See docs/upsample.md.
"""

from __future__ import annotations

import json
import os
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from pipeline.audio import ChannelPolicy, decode_audio
from pipeline.item import Item
from pipeline.job import Job
from pipeline.manifest import Column
from pipeline.output import STATE, OutputDir
from pipeline.stage import Resources, Stage
from pipeline.stages.decode import PASSTHROUGH, TRUNCATED_FIELD, DecodeStage, truncation_record
from pipeline.stages.encode import EncodeFlacStage
from pipeline.tar_source import build_tar_manifest, is_tar_input, sample_members

NormalizeMode = Literal["source", "peak", "none"]
NORMALIZE_MODES: tuple[str, ...] = ("source", "peak", "none")
DEFAULT_NORMALIZE: NormalizeMode = "source"
MODEL_INPUT_RATE = 16000
PEAK_TARGET = 0.999  # upstream's `/ max * 0.999`
SILENCE_PEAK = 1e-3  # -60 dBFS: below this a source is treated as silent
CLIP_LEVEL = 0.999
CLIPPED_MIN_SAMPLES = 3
# Output audio per model call when none is given: on GPUs ~10 s (working memory ~90 MB per second at
# 48 kHz); on CPU one window per call is fastest (24 s at 48k: 1 window RTF 0.45 / 287 MiB, 29 windows
# RTF 0.83 / 1013 MiB, measured with torch 2.13 on one thread).
DEFAULT_GPU_BATCH_SECONDS = 10.0
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


# -- level ----------------------------------------------------------------------------------------
def normalize_output(output: np.ndarray, source_peak: float, mode: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Scale the model output (T_out,) by `mode`; returns the samples and what was done.

    - ``source``: output peak = the source's peak (capped at 0.999), so levels across a corpus stay.
    - ``peak``: output peak = 0.999, as upstream's ``/ max * 0.999``.
    - ``none``: the raw model output (it is within (-1, 1): the model ends in tanh).
    A silent source (peak below -60 dBFS) gives digital silence in ``source`` and ``peak`` modes
    instead of amplifying the model's near-zero output to full scale.
    """
    if mode not in NORMALIZE_MODES:
        raise ValueError(f"unknown normalization {mode!r}; use one of {NORMALIZE_MODES}")
    model_peak = float(np.max(np.abs(output))) if output.size else 0.0
    silent = source_peak < SILENCE_PEAK
    if mode == "none":
        gain = 1.0
    elif silent or model_peak == 0.0:
        gain = 0.0 if silent else 1.0
    else:
        target = PEAK_TARGET if mode == "peak" else min(source_peak, PEAK_TARGET)
        gain = target / model_peak
    scaled = output if gain == 1.0 else (output * np.float32(gain)).astype(np.float32)
    info = {
        "mode": mode,
        "gain": gain,
        "model_peak": model_peak,
        "source_peak": source_peak,
        "peak": model_peak * gain,
        "silent_source": silent,
    }
    return scaled, info


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


class SpeechSRStage(Stage):
    """Actor pool stage: the SpeechSR model loaded once per actor; exact windowed batches on `self.device`."""

    name = "speechsr"
    stateful = True
    batch_size = 8

    def __init__(self, variant: str, *, checkpoint: str | None = None, expected_sha256: str | None = None,
                 batch_seconds: float | None = None, window: int | None = None,
                 resources: Resources | None = None):
        super().__init__(resources or Resources(num_cpus=1.0, num_gpus=1.0))
        self.variant = variant
        self.checkpoint = checkpoint
        self.expected_sha256 = expected_sha256
        self.batch_seconds = batch_seconds
        self.window = window

    def setup(self) -> None:
        import torch

        from hierspeech.checkpoint import sha256_file
        from hierspeech.speechsr import SpeechSR
        from hierspeech.speechsr_batching import DEFAULT_WINDOW
        from hierspeech.weights import WeightsError, resolve_speechsr_checkpoint

        # the driver's resolved file when this node sees it (shared storage), else this node's own lookup
        here = self.checkpoint if self.checkpoint and os.path.isfile(self.checkpoint) else None
        path = resolve_speechsr_checkpoint(self.variant, here)
        if self.expected_sha256 and sha256_file(path) != self.expected_sha256:
            raise WeightsError(f"{path} on this node is not the checkpoint the job started with "
                               f"(sha256 {self.expected_sha256}); give every node the same weights")
        if self.device == "cpu":
            torch.set_num_threads(max(1, round(self.resources.num_cpus)))
        self.model = SpeechSR.from_pretrained(path).to(self.device).fuse_weight_norm()
        self.window = self.window or DEFAULT_WINDOW
        if self.batch_seconds is None and self.device == "cpu":
            self.windows_per_call = 1
        else:
            per_call = (self.batch_seconds or DEFAULT_GPU_BATCH_SECONDS) * self.model.sampling_rate
            self.windows_per_call = max(1, int(per_call // self.window))

    def process(self, items: list[Item]) -> None:
        self.process_batch_isolating(items, self._run)

    def _run(self, items: list[Item]) -> None:
        import torch

        from hierspeech.speechsr_batching import upsample_batch

        for item in items:
            if item.data["sample_rate"] != MODEL_INPUT_RATE:
                raise ValueError(f"SpeechSR needs {MODEL_INPUT_RATE} Hz input, got {item.data['sample_rate']}")
        waves = [torch.from_numpy(np.ascontiguousarray(item.data["audio"])).to(self.device) for item in items]
        outputs = upsample_batch(self.model, waves, window=self.window, batch_size=self.windows_per_call)
        results = []
        for item, wave, out in zip(items, waves, outputs, strict=True):
            samples = out.float().cpu().numpy()
            if samples.shape[0] != self.model.output_length(wave.shape[0]) or not np.all(np.isfinite(samples)):
                raise RuntimeError(f"SpeechSR produced an invalid output for id {item.id!r}")
            results.append(samples)
        for item, samples in zip(items, results, strict=True):  # the whole batch succeeded: now write
            item.data["audio"] = samples
            item.data["sample_rate"] = self.model.sampling_rate


class NormalizeStage(Stage):
    """Level of the model output (see `normalize_output`); records the gain in meta and index."""

    name = "normalize"
    batch_size = 8

    def __init__(self, mode: str = DEFAULT_NORMALIZE, resources: Resources | None = None):
        super().__init__(resources)
        if mode not in NORMALIZE_MODES:
            raise ValueError(f"unknown normalization {mode!r}; use one of {NORMALIZE_MODES}")
        self.mode = mode

    def process_item(self, item: Item) -> None:
        samples, info = normalize_output(item.data["audio"], item.data["source_peak"], self.mode)
        item.data["audio"] = samples
        item.meta["normalization"] = info
        item.index.update({"normalize": self.mode, "gain": info["gain"], "peak": info["peak"]})


class UpsampleEncodeStage(EncodeFlacStage):
    """FLAC at the model's rate, plus the model's provenance (variant, checkpoint path and sha256)."""

    def __init__(self, model_record: dict[str, str], *, bits: int = 16, resources: Resources | None = None):
        super().__init__(bits=bits, resources=resources)
        self.model_record = model_record

    def process_item(self, item: Item) -> None:
        super().process_item(item)
        item.meta["model"] = self.model_record
        item.index["model_variant"] = self.model_record["variant"]


# -- the job --------------------------------------------------------------------------------------
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
) -> Job:
    """Resolve the SpeechSR weights now (download or `WeightsError` on the driver), then build the job."""
    from hierspeech.checkpoint import sha256_file
    from hierspeech.speechsr import SpeechSRConfig
    from hierspeech.weights import WeightsError, resolve_speechsr_checkpoint

    variant = {48000: "48k", 24000: "24k"}.get(int(sample_rate))
    if variant is None:
        raise ValueError(f"SpeechSR outputs 24000 or 48000 Hz, not {sample_rate}")
    if normalize not in NORMALIZE_MODES:
        raise ValueError(f"unknown normalization {normalize!r}; use one of {NORMALIZE_MODES}")
    path = resolve_speechsr_checkpoint(variant, checkpoint, timeout=download_timeout)
    config_rate = SpeechSRConfig.from_json(path.with_name("config.json")).sampling_rate
    if config_rate != int(sample_rate):
        raise WeightsError(f"{path} is a {config_rate} Hz SpeechSR (its config.json), not {sample_rate} Hz; "
                           "pass the matching --checkpoint or --sr")
    from hierspeech.speechsr import SpeechSR
    from pipeline.model_checks import check_checkpoints

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
            UpsampleEncodeStage(model_record, bits=bits, resources=Resources(num_cpus=cpus_per_task)),
        ]

    return Job(
        name="upsample",
        build_stages=build,
        index_fields=UPSAMPLE_INDEX_FIELDS,
        extra_columns=UPSAMPLE_COLUMNS,
        internal_manifest=INPUT_MANIFEST,
        output_options={"sample_rate": int(sample_rate), "normalize": normalize, "bits": bits,
                        "channel_policy": channel_policy, "max_seconds": max_seconds, "checkpoint_sha256": sha},
    )


def input_manifest(spec: str, out_root: str) -> str:
    """The manifest to run on: `spec` itself, or for tar input the internal manifest written to OUT/_state."""
    if not is_tar_input(spec):
        if "://" not in spec and not os.path.exists(spec):
            raise FileNotFoundError(f"input not found: {spec} (a Parquet manifest, or tar shards: folder, glob, brace pattern)")
        return spec
    table = build_tar_manifest(spec)
    out = OutputDir(str(out_root))
    shards_dir = out.path("shards") + "/"
    if any(str(p).startswith(shards_dir) for p in table.column("audio").to_pylist()):
        from pipeline.tar_source import TarSourceError

        raise TarSourceError(f"the input shards are inside the output folder {out_root}; write to another folder")
    out.ensure_layout()
    sink = pa.BufferOutputStream()
    import pyarrow.parquet as pq

    pq.write_table(table, sink)
    out.write_atomic(STATE, INPUT_MANIFEST, sink.getvalue().to_pybytes())
    if "://" in str(out_root):
        return f"{str(out_root).rstrip('/')}/{STATE}/{INPUT_MANIFEST}"
    return out.path(STATE, INPUT_MANIFEST)
