"""`hsp extract`: HierSpeech++ training features (w2v, F0, tokens, mel, denoised audio) at scale.

Plan: decode + resample to 16 kHz, FLAC, tokens (CPU tasks) -> w2v / denoise (model actor pool,
`gpu_actors` x `gpus_per_actor`) -> F0 + mel (CPU actor pool, `cpu_actors`) -> shards.
Each sample holds ``flac`` plus the selected ``w2v.npy``, ``f0.npy``, ``tokens.npy``,
``mel.npy``, ``denoised.flac`` and its ``json``; see docs/extract.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pyarrow as pa

from hierspeech.defaults import DEFAULT_MODEL as DEFAULT_W2V_MODEL
from hierspeech.defaults import FEATURE_LAYER, SAMPLE_RATE
from hierspeech.denoiser import DEFAULT_CHUNK_SECONDS
from hierspeech.f0 import DEFAULT_BACKEND as DEFAULT_F0_BACKEND
from pipeline.engine.job import Job, JobSpec
from pipeline.engine.stage import Resources, Stage
from pipeline.errors import ConfigError
from pipeline.stages.decode import TRUNCATED_FIELD, DecodeStage
from pipeline.stages.f0_mel import F0MelStage
from pipeline.stages.min_length import for_extract
from pipeline.stages.model_checks import check_checkpoints, check_f0_backend, check_w2v_model
from pipeline.stages.model_features import ModelFeaturesStage, W2vOptions
from pipeline.stages.stored_audio import StoredAudioStage
from pipeline.stages.tokens import TokensStage

FEATURES = ("w2v", "f0", "tokens", "mel", "denoise")
DEFAULT_FEATURES = ("w2v", "f0", "tokens", "mel")
RUN_FIELDS = ("cpu_actors", "gpu_actors", "gpus_per_actor", "batch_seconds", "cpus_per_task", "w2v_backend")
"""ExtractConfig fields that only say how to run: left out of job.json, free to change on resume."""

EXTRACT_INDEX_FIELDS = [
    pa.field("sample_rate", pa.int64()),
    pa.field("source_sample_rate", pa.int64()),
    pa.field("source_channels", pa.int64()),
    pa.field("num_samples", pa.int64()),
    pa.field("text", pa.string()),
    pa.field("speaker", pa.string()),
    pa.field("language", pa.string()),
    pa.field("w2v_frames", pa.int64()),
    pa.field("w2v_dim", pa.int64()),
    pa.field("f0_frames", pa.int64()),
    pa.field("f0_voiced_frames", pa.int64()),
    pa.field("f0_failed", pa.bool_()),
    pa.field("mel_frames", pa.int64()),
    pa.field("token_count", pa.int64()),
    pa.field("phoneme_count", pa.int64()),
    pa.field("denoised", pa.bool_()),
    TRUNCATED_FIELD,
]


@dataclass
class ExtractConfig:
    """What to extract and how; everything here that changes the output is recorded in job.json."""

    features: tuple[str, ...] = DEFAULT_FEATURES
    w2v_model: str = DEFAULT_W2V_MODEL  # hub id or local folder
    w2v_layer: int = FEATURE_LAYER  # hidden_states index kept
    w2v_dtype: str = "float16"
    f0_max: float | None = None
    f0_backend: str = DEFAULT_F0_BACKEND
    f0_failure: str = "error"
    language: str = "en-us"
    add_blank: bool = True
    max_tokens: int | None = 1024
    denoiser_ckpt: str | None = None
    denoise_chunk_seconds: float | None = DEFAULT_CHUNK_SECONDS
    max_seconds: float | None = 3600.0
    channel_policy: str = "first"
    # how to run (not recorded: they do not change the output)
    cpu_actors: int = 2
    gpu_actors: int = 1
    gpus_per_actor: float = 1.0
    batch_seconds: float = 120.0
    cpus_per_task: float = 1.0
    w2v_backend: str = "auto"  # float32 rounding only; each sample's json names the one used

    def __post_init__(self) -> None:
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown or not self.features:
            raise ConfigError(f"unknown feature(s) {unknown}; choose from {', '.join(FEATURES)}")
        if self.w2v_dtype not in ("float16", "float32"):
            raise ConfigError(f"w2v dtype must be float16 or float32, got {self.w2v_dtype!r}")
        if "w2v" in self.features:
            from hierspeech.w2v import BACKENDS

            if self.w2v_backend not in BACKENDS:
                raise ConfigError(f"w2v backend must be one of {', '.join(BACKENDS)}, got {self.w2v_backend!r}")
        if self.f0_failure not in ("error", "zeros"):
            raise ConfigError(f"f0 failure policy must be 'error' or 'zeros', got {self.f0_failure!r}")
        if "denoise" in self.features and not self.denoiser_ckpt:
            raise ConfigError("the denoise feature needs the MP-SENet checkpoint: pass --denoiser-ckpt PATH (denoiser/g_best)")
        if self.cpu_actors < 1 or self.gpu_actors < 1 or self.gpus_per_actor < 0 or self.batch_seconds <= 0:
            raise ConfigError("cpu_actors and gpu_actors must be >= 1, gpus_per_actor >= 0, batch_seconds > 0")

    def output_options(self) -> dict:
        options = {k: v for k, v in asdict(self).items() if k not in RUN_FIELDS}
        options["features"] = sorted(self.features)
        return options


def extract_job(config: ExtractConfig) -> Job:
    """The extract job for `config` (stages are built on the driver once Ray is up).

    Raises:
        ConfigError: the w2v model cannot be found, or no such F0 backend;
        CheckpointError: the denoiser checkpoint would not load.
    """
    wanted = set(config.features)
    if "f0" in wanted:
        check_f0_backend(config.f0_backend)
    if "w2v" in wanted:
        check_w2v_model(config.w2v_model, config.w2v_layer)
    if "denoise" in wanted:
        from hierspeech.denoiser import Denoiser

        check_checkpoints("extract", [("--denoiser-ckpt", Denoiser, config.denoiser_ckpt)])

    def build() -> list[Stage]:
        def cpu() -> Resources:  # one object per stage: `--stage-resources decode=...` changes decode only
            return Resources(num_cpus=config.cpus_per_task)

        stages: list[Stage] = [
            DecodeStage(SAMPLE_RATE, channel_policy=config.channel_policy, max_seconds=config.max_seconds,
                        min_length=for_extract(config.features), resources=cpu()),
            StoredAudioStage(bits=16, resources=cpu()),
        ]
        if "tokens" in wanted:
            stages.append(TokensStage(add_blank=config.add_blank, max_tokens=config.max_tokens, default_language=config.language, resources=cpu()))
        if wanted & {"w2v", "denoise"}:
            w2v = None
            if "w2v" in wanted:
                w2v = W2vOptions(
                    model=config.w2v_model,
                    layer=config.w2v_layer,
                    dtype=config.w2v_dtype,
                    batch_seconds=config.batch_seconds,
                    backend=config.w2v_backend,
                )
            stages.append(
                ModelFeaturesStage(
                    w2v=w2v,
                    denoiser_ckpt=config.denoiser_ckpt if "denoise" in wanted else None,
                    denoise_chunk_seconds=config.denoise_chunk_seconds,
                    resources=Resources(num_cpus=1.0, num_gpus=config.gpus_per_actor, actors=config.gpu_actors),
                )
            )
        if wanted & {"f0", "mel"}:
            stages.append(
                F0MelStage(
                    f0="f0" in wanted,
                    mel="mel" in wanted,
                    f0_max=config.f0_max,
                    f0_backend=config.f0_backend,
                    f0_failure=config.f0_failure,
                    resources=Resources(num_cpus=config.cpus_per_task, actors=config.cpu_actors),
                )
            )
        return stages

    return EXTRACT.job(build, config.output_options())


EXTRACT = JobSpec(
    name="extract",
    command=("extract",),
    config=ExtractConfig,
    build=extract_job,
    columns=(),  # text (tokens) and language (espeak voice) are base columns
    index_fields=tuple(EXTRACT_INDEX_FIELDS),
)
