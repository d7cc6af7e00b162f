"""`hsp synthesize vc|tts`: zero-shot VC / TTS at scale (see docs/synthesize.md).

One set of stages runs both row kinds (a row's `mode`, or the job's default mode): `hsp synthesize
vc` and `hsp synthesize tts` fix the mode; the augment job (pipeline/augment.py) expands an ASR
manifest into a plan of VC and/or TTS rows and runs these stages on it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from hierspeech.defaults import DEFAULT_MODEL as DEFAULT_W2V_MODEL
from hierspeech.defaults import FEATURE_LAYER
from hierspeech.denoiser import DEFAULT_CHUNK_SECONDS
from hierspeech.f0 import DEFAULT_BACKEND as DEFAULT_F0_BACKEND
from pipeline.engine.job import Job, JobSpec
from pipeline.engine.stage import Resources, Stage
from pipeline.errors import ConfigError, ModelError
from pipeline.io.manifest import Column, in_unit_interval, non_negative, positive
from pipeline.score import SCORE_FIELDS
from pipeline.scoring import ScoreGates, ScoringConfig
from pipeline.stages.decode import TRUNCATED_FIELD
from pipeline.stages.model_checks import check_checkpoints, check_f0_backend, check_w2v_model
from pipeline.stages.synthesis_inputs import SynthesisInputStage
from pipeline.stages.synthesis_model import SynthesisModelStage
from pipeline.stages.synthesis_output import SynthesisOutputStage
from pipeline.stages.synthesis_params import GateLimits, InputLimits, ModelPaths, SynthesisDefaults
from pipeline.stages.vc_f0 import VcF0Stage

OUTPUT_RATES = (16000, 24000, 48000)
MODELS_FILE_KEYS = ("synthesizer", "ttv", "denoiser", "speechsr24k", "speechsr48k", "w2v_model")


def _output_sr(value: Any) -> str | None:
    return None if value in OUTPUT_RATES else f"must be one of {OUTPUT_RATES}, got {value}"


def _seed(value: Any) -> str | None:
    return None if 0 <= value < 2**63 else f"must be within [0, 2**63), got {value}"


def _mode(value: Any) -> str | None:
    return None if value in ("vc", "tts") else f"must be 'vc' or 'tts', got {value!r}"


def _scale(value: Any) -> str | None:
    return None if 0 <= value <= 10 else f"must be within [0, 10], got {value}"


COMMON_COLUMNS = (
    Column("denoise_ratio", "number", check=in_unit_interval, doc="mix of prompt and denoised-prompt style, [0, 1]"),
    Column("seed", "integer", check=_seed, doc="random seed of the row (default: derived from --seed and the id)"),
    Column("output_sr", "integer", check=_output_sr, doc="16000, or 24000/48000 with SpeechSR"),
    Column("source_id", "string", doc="provenance: id of the source utterance"),
    Column("prompt_id", "string", doc="provenance: id of the voice prompt"),
)
VC_COLUMNS = (
    Column("target_audio", "string", is_path=True, doc="voice prompt (target speaker)"),
    Column("noise_scale", "number", check=_scale, doc="synthesizer prior noise scale (VC)"),
)
TTS_COLUMNS = (
    Column("prompt_audio", "string", is_path=True, doc="voice prompt"),
    Column("noise_scale_ttv", "number", check=_scale),
    Column("noise_scale_vc", "number", check=_scale),
    Column("noise_scale_w", "number", check=_scale),
    Column("length_scale", "number", check=positive),
)
SYNTHESIZE_VC_COLUMNS = (Column("target_audio", "string", required=True, is_path=True, doc="voice prompt"), *VC_COLUMNS[1:], *COMMON_COLUMNS)
SYNTHESIZE_TTS_COLUMNS = (
    Column("audio", "string", is_path=True, doc="unused by TTS (provenance only)"),
    Column("text", "string", required=True, doc="text to speak"),
    Column("prompt_audio", "string", required=True, is_path=True, doc="voice prompt"),
    *TTS_COLUMNS[1:],
    *COMMON_COLUMNS,
)
PLAN_COLUMNS = (
    Column("mode", "string", required=True, check=_mode),
    Column("audio", "string", is_path=True, doc="VC source (and provenance for TTS rows)"),
    *VC_COLUMNS,
    *TTS_COLUMNS,
    *COMMON_COLUMNS,
    Column("source_speaker", "string"),
    Column("variant", "integer", check=non_negative),
)

SYNTHESIZE_INDEX_FIELDS = [
    pa.field("mode", pa.string()),
    pa.field("source_id", pa.string()),
    pa.field("prompt_id", pa.string()),
    pa.field("text", pa.string()),
    pa.field("speaker", pa.string()),
    pa.field("seed", pa.int64()),
    pa.field("sample_rate", pa.int64()),
    pa.field("prompt_seconds", pa.float64()),
    pa.field("token_count", pa.int64()),
    pa.field("gates_passed", pa.bool_()),
    pa.field("gate_failures", pa.string()),
    TRUNCATED_FIELD,  # the voice prompt or VC source was cut short (kept at the length it has)
]

RUN_FIELDS = ("gpu_actors", "gpus_per_actor", "cpu_actors", "cpus_per_task", "max_batch_items", "score_gpus_per_actor")


@dataclass
class SynthesizeConfig:
    """Everything a synthesis run needs; all but RUN_FIELDS is recorded in job.json."""

    synthesizer: str
    mode: str | None = "vc"  # default row mode; None: each row has a `mode` (augment plans)
    ttv: str | None = None
    denoiser: str | None = None
    speechsr: dict[int, str] = field(default_factory=dict)
    w2v_model: str = DEFAULT_W2V_MODEL
    w2v_layer: int = FEATURE_LAYER
    f0_backend: str = DEFAULT_F0_BACKEND  # one rule for every command: see hierspeech.f0.DEFAULT_BACKEND
    denoise_chunk_seconds: float | None = DEFAULT_CHUNK_SECONDS
    defaults: SynthesisDefaults = field(default_factory=SynthesisDefaults)
    limits: InputLimits = field(default_factory=InputLimits)
    gates: GateLimits = field(default_factory=GateLimits)
    drop_failed_gates: bool = False
    modes: tuple[str, ...] = ("vc",)
    max_batch_items: int = 0  # rows per model call; 0: 1 on CPU (bit-reproducible), 8 on CUDA
    gpu_actors: int = 1
    gpus_per_actor: float = 1.0
    cpu_actors: int = 2
    cpus_per_task: float = 1.0
    scoring: ScoringConfig | None = None  # --score: metrics scored in the same job (None: none)
    score_gates: ScoreGates = field(default_factory=ScoreGates)
    score_gpus_per_actor: float | None = None  # None: 1 when a selected metric is faster on GPU, else 0

    def output_options(self) -> dict[str, Any]:
        import json

        from hierspeech.checkpoint import sha256_file

        options = {k: v for k, v in asdict(self).items() if k not in RUN_FIELDS}
        for name in ("scoring", "score_gates"):  # as job.json stores them (lists, not tuples): a resume compares equal
            options[name] = json.loads(json.dumps(options[name]))
        options["speechsr"] = {str(k): v for k, v in sorted(self.speechsr.items())}
        options["modes"] = sorted(self.modes)
        options["checkpoint_sha256"] = {
            name: sha256_file(path)
            for name, path in [("synthesizer", self.synthesizer), ("ttv", self.ttv), ("denoiser", self.denoiser), *[(f"speechsr{k}", v) for k, v in self.speechsr.items()]]
            if path
        }
        return options


def load_models_file(path: str | Path) -> dict[str, Any]:
    """models.yaml / .json: keys synthesizer, ttv, denoiser, speechsr24k, speechsr48k, w2v_model (paths relative to the file)."""
    import json

    import yaml

    path = Path(path)
    try:
        text = path.read_text()
        data = (yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)) or {}
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"--models {path}: cannot read it ({' '.join(str(exc).split())}); give a YAML or JSON mapping of {', '.join(MODELS_FILE_KEYS)}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"--models {path}: a mapping of {', '.join(MODELS_FILE_KEYS)} to paths, not {type(data).__name__}")
    unknown = sorted(set(data) - set(MODELS_FILE_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; known: {sorted(MODELS_FILE_KEYS)}")
    out = {}
    for key, value in data.items():
        if value is None:
            continue
        candidate = (path.parent / str(value)).resolve()
        out[key] = str(candidate) if key != "w2v_model" or candidate.exists() else str(value)
    return out


def speechsr_by_rate(paths: list[str]) -> dict[int, str]:
    """SpeechSR checkpoints keyed by their output rate, read from the official config.json beside each."""
    from hierspeech.speechsr import SpeechSRConfig

    by_rate: dict[int, str] = {}
    for path in paths:
        config_path = Path(path).with_name("config.json")
        try:
            config = SpeechSRConfig.from_json(config_path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"--speechsr {path}: cannot read {config_path} ({type(exc).__name__}: {exc}); the official config.json must sit beside the checkpoint") from exc
        by_rate[config.sampling_rate] = str(Path(path).resolve())
    return by_rate


def _field_names(cls: type) -> set[str]:
    return set(cls.__dataclass_fields__)


def synthesize_config(
    mode: str | None,
    modes: tuple[str, ...],
    *,
    models_file: str | None = None,
    synthesizer: str | None = None,
    ttv: str | None = None,
    denoiser: str | None = None,
    speechsr: tuple[str, ...] | list[str] = (),
    w2v_model: str | None = None,
    duration_ratio: tuple[float, float] | None = None,
    **options: Any,
) -> SynthesizeConfig:
    """A SynthesizeConfig from flat option values (the `hsp` options, a job YAML's keys).

    Checkpoints come from the options, else from the models file (`load_models_file`); paths are made
    absolute. Every other option names a field of SynthesizeConfig or of the dataclass it nests
    (SynthesisDefaults, InputLimits, GateLimits; `duration_ratio` is the gate's (min, max)); an option
    left out keeps the dataclass default.
    """
    from pipeline.score import synthesis_scoring

    options = {**options, **synthesis_scoring(dict(options))}  # --score, --asr-model, the score gates
    for name in ("score_metrics", "asr_model", "asr_language", *ScoreGates.__dataclass_fields__):
        options.pop(name, None)
    files = load_models_file(models_file) if models_file else {}
    synthesizer = synthesizer or files.get("synthesizer")
    if not synthesizer:
        raise ConfigError("pass --synthesizer PATH (or --models models.yaml)")
    nested: dict[str, dict[str, Any]] = {"defaults": {}, "limits": {}, "gates": {}}
    kinds = {"defaults": SynthesisDefaults, "limits": InputLimits, "gates": GateLimits}
    top: dict[str, Any] = {}
    for name, value in options.items():
        home = next((key for key, cls in kinds.items() if name in _field_names(cls)), None)
        if home is not None:
            nested[home][name] = value
        elif name in _field_names(SynthesizeConfig):
            top[name] = value
        else:
            raise ConfigError(f"unknown synthesis option {name!r}")
    if duration_ratio is not None:
        nested["gates"]["min_duration_ratio"], nested["gates"]["max_duration_ratio"] = duration_ratio
    checkpoints = [files[k] for k in ("speechsr24k", "speechsr48k") if files.get(k)] + list(speechsr)

    def absolute(path: str | None) -> str | None:
        return str(Path(path).resolve()) if path else None

    return SynthesizeConfig(
        synthesizer=str(absolute(synthesizer)),
        mode=mode,
        modes=tuple(modes),
        ttv=absolute(ttv or files.get("ttv")),
        denoiser=absolute(denoiser or files.get("denoiser")),
        speechsr=speechsr_by_rate(checkpoints),
        w2v_model=w2v_model or files.get("w2v_model") or DEFAULT_W2V_MODEL,
        defaults=SynthesisDefaults(**nested["defaults"]),
        limits=InputLimits(**nested["limits"]),
        gates=GateLimits(**nested["gates"]),
        **top,
    )


def synthesize_job(config: SynthesizeConfig, *, spec: JobSpec | None = None, columns: tuple[Column, ...] | None = None) -> Job:
    """The synthesis job: VC or TTS by `config.mode`; the augment job passes its own `spec` and plan columns."""
    spec = spec or {"vc": SYNTHESIZE_VC, "tts": SYNTHESIZE_TTS}.get(config.mode)
    if spec is None:
        raise ConfigError(f"row mode {config.mode!r}: `hsp synthesize` runs 'vc' or 'tts' rows; mixed plans run through augment")
    if "tts" in config.modes and not config.ttv:
        raise ConfigError("TTS rows need the TTV checkpoint: pass --ttv PATH (ttv_lt960_ckpt.pth, config.json beside)")
    if config.defaults.denoise_ratio > 0 and not config.denoiser:
        raise ConfigError("--denoise-ratio > 0 needs --denoiser PATH (denoiser/g_best)")
    if config.defaults.output_sr != 16000 and config.defaults.output_sr not in config.speechsr:
        raise ConfigError(f"--output-sr {config.defaults.output_sr} needs --speechsr for that rate")
    from pipeline.stages.min_length import PROMPT

    if config.limits.min_prompt_seconds < PROMPT.seconds:
        raise ConfigError(f"--min-prompt-seconds {config.limits.min_prompt_seconds:g} is below what {PROMPT.reason} "
                         f"needs: {PROMPT.samples} samples ({PROMPT.seconds:.4f} s at 16 kHz); give at least that")
    if config.scoring is not None:
        from pipeline.score import check_scoring

        check_scoring(config.scoring, config.score_gates)
    elif config.score_gates.active():
        raise ConfigError("score gates (--min-dnsmos-ovrl, --min-speaker-sim, ...) need --score with their metrics")
    if "vc" in config.modes:
        check_f0_backend(config.f0_backend)
        check_w2v_model(config.w2v_model, config.w2v_layer)
    from hierspeech.denoiser import Denoiser
    from hierspeech.speechsr import SpeechSR
    from hierspeech.synthesizer import Synthesizer
    from hierspeech.ttv import TTV

    check_checkpoints(
        "synthesize",
        [
            ("--synthesizer", Synthesizer, config.synthesizer),
            ("--ttv", TTV, config.ttv if "tts" in config.modes else None),
            ("--denoiser", Denoiser, config.denoiser),
            *[("--speechsr", SpeechSR, path) for _, path in sorted(config.speechsr.items())],
        ],
    )

    models = ModelPaths(
        synthesizer=config.synthesizer, ttv=config.ttv, denoiser=config.denoiser, speechsr=dict(config.speechsr), w2v_model=config.w2v_model, w2v_layer=config.w2v_layer
    )

    def build() -> list[Stage]:
        def cpu() -> Resources:  # one object per stage: `--stage-resources synth_inputs=...` changes that stage only
            return Resources(num_cpus=config.cpus_per_task)

        stages: list[Stage] = [SynthesisInputStage(default_mode=config.mode, defaults=config.defaults, limits=config.limits, resources=cpu())]
        if "vc" in config.modes:
            stages.append(VcF0Stage(backend=config.f0_backend, resources=Resources(num_cpus=config.cpus_per_task, actors=config.cpu_actors)))
        stages.append(
            SynthesisModelStage(
                models,
                modes=config.modes,
                denoise_chunk_seconds=config.denoise_chunk_seconds,
                max_batch_items=config.max_batch_items,
                resources=Resources(num_cpus=1.0, num_gpus=config.gpus_per_actor, actors=config.gpu_actors),
            )
        )
        stages.append(SynthesisOutputStage(gates=config.gates, drop_failed_gates=config.drop_failed_gates, resources=cpu()))
        if config.scoring is not None:
            stages.append(_score_stage(config))
        return stages

    job = spec.job(build, config.output_options(), extra_columns=columns)
    if config.scoring is not None:
        job.index_fields = [*job.index_fields, *SCORE_FIELDS]  # --score: one column per score value
    return job


def _score_stage(config: SynthesizeConfig) -> Stage:
    """Scores of the stored FLAC: speaker similarity to the prompt and, for VC, to the source."""
    from pipeline.stages.score_metrics import ScoreStage

    scoring = config.scoring
    assert scoring is not None
    gpus = config.score_gpus_per_actor
    if gpus is None:
        from pipeline.scoring import SCORERS

        gpus = 1.0 if any(SCORERS[m].gpu_helps for m in scoring.metrics) else 0.0
    return ScoreStage(scoring, gates=config.score_gates, drop_failed_gates=config.drop_failed_gates, audio_member="flac",
                      reference_key="prompt", source_key="source",
                      resources=Resources(num_cpus=config.cpus_per_task, num_gpus=gpus, actors=config.gpu_actors))


def _synthesize_spec(mode: str, columns: tuple[Column, ...]) -> JobSpec:
    return JobSpec(name=f"synthesize_{mode}", command=("synthesize", mode), config=SynthesizeConfig, build=synthesize_job,
                   columns=columns, index_fields=tuple(SYNTHESIZE_INDEX_FIELDS))


SYNTHESIZE_VC = _synthesize_spec("vc", SYNTHESIZE_VC_COLUMNS)
SYNTHESIZE_TTS = _synthesize_spec("tts", SYNTHESIZE_TTS_COLUMNS)
