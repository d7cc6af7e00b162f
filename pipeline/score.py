"""`hsp score INPUT -o OUT`: quality scores of any speech (a manifest, or any job's shards), as gates.

Stages: score_inputs (decode at the audio's own rate, reference voice and text; tasks) -> score
(DNSMOS, speaker similarity, VAD speech ratio, bandwidth, WER/CER; an actor pool, models loaded
once per actor, GPU where one is given) -> shards. Each sample keeps its audio member byte for
byte (tar input: every member), and its json carries the scores, the scorer versions and the
gate decision. The index has one column per score value. See docs/scoring.md.

`ScoreConfig` is the one source of defaults: the CLI (`pipeline/cli/score.py`) and the YAML twin
(`jobs/score.py`) read them from it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from pipeline.engine.job import Job, JobSpec
from pipeline.engine.stage import Resources, Stage
from pipeline.io.manifest import Column
from pipeline.scoring import DEFAULT_METRICS, ScoreGates, ScoringConfig, build_scorers, check_gate_metrics
from pipeline.scoring.registry import SCORERS
from pipeline.stages.decode import TRUNCATED_FIELD
from pipeline.stages.score_inputs import DEFAULT_REFERENCE_COLUMN, ScoreInputStage
from pipeline.stages.score_metrics import SCORE_COLUMNS, ScoreStage

SCORE_FIELDS = [pa.field(column, pa.float64()) for column in SCORE_COLUMNS]
GATE_FIELDS = [pa.field("gates_passed", pa.bool_()), pa.field("gate_failures", pa.string())]
SCORE_INDEX_FIELDS = [
    *SCORE_FIELDS,
    *GATE_FIELDS,
    pa.field("sample_rate", pa.int64()),
    pa.field("text", pa.string()),
    pa.field("speaker", pa.string()),
    pa.field("language", pa.string()),
    pa.field("reference", pa.string()),
    pa.field("source_shard", pa.string()),
    pa.field("source_key", pa.string()),
    TRUNCATED_FIELD,
]

RUN_FIELDS = ("actors", "gpus_per_actor", "cpus_per_actor", "cpus_per_task", "batch_size")


@dataclass(frozen=True)
class ScoreConfig:
    """Everything a score run needs; all but RUN_FIELDS is recorded in job.json (a resume must match)."""

    metrics: tuple[str, ...] = DEFAULT_METRICS
    reference_column: str = DEFAULT_REFERENCE_COLUMN  # manifest column (or sample-json key) of the reference voice
    asr_model: str | None = None  # hub id or local folder for `wer`
    asr_language: str | None = None  # Whisper only
    gates: ScoreGates = field(default_factory=ScoreGates)
    drop_failed_gates: bool = False
    max_seconds: float | None = 3600.0
    actors: int = 1
    gpus_per_actor: float | None = None  # None: 1 when a selected metric is faster on GPU (speaker_sim, wer), else 0
    cpus_per_actor: float = 1.0
    cpus_per_task: float = 1.0
    batch_size: int = 8

    @property
    def scoring(self) -> ScoringConfig:
        return ScoringConfig(metrics=tuple(self.metrics), asr_model=self.asr_model, asr_language=self.asr_language)

    def gpus(self) -> float:
        if self.gpus_per_actor is not None:
            return float(self.gpus_per_actor)
        return 1.0 if any(SCORERS[m].gpu_helps for m in self.metrics) else 0.0

    def output_options(self) -> dict[str, Any]:
        """The recorded options, as job.json stores them (JSON types: a resume compares equal)."""
        return json.loads(json.dumps({k: v for k, v in asdict(self).items() if k not in RUN_FIELDS}))


GATE_NAMES = tuple(ScoreGates.__dataclass_fields__)


def _metrics(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...] | None:
    from pipeline.scoring import parse_metrics

    if value is None:
        return None
    return parse_metrics(value) if isinstance(value, str) else parse_metrics(",".join(value))


def score_config(*, metrics: str | tuple[str, ...] | None = None, **options: Any) -> ScoreConfig:
    """A ScoreConfig from flat option values (the `hsp score` options, a job YAML's keys).

    `metrics`: names or a comma-separated string (None: the defaults); the gate options
    (min_dnsmos_ovrl, ...) go into `gates`; every other option names a ScoreConfig field.
    """
    gates = ScoreGates(**{name: options.pop(name) for name in GATE_NAMES if name in options})
    chosen = _metrics(metrics)
    return ScoreConfig(**({"metrics": chosen} if chosen is not None else {}), gates=gates, **options)


def synthesis_scoring(options: dict[str, Any]) -> dict[str, Any]:
    """`--score` of the synthesis commands: pops score_metrics, asr_model, asr_language and the gate
    options from `options`, returns SynthesizeConfig's ``scoring`` and ``score_gates`` for them."""
    from pipeline.scoring import ScoringError

    metrics = _metrics(options.pop("score_metrics", None))
    asr_model, asr_language = options.pop("asr_model", None), options.pop("asr_language", None)
    gates = ScoreGates(**{name: options.pop(name) for name in GATE_NAMES if name in options})
    if metrics is None:
        if asr_model:
            raise ScoringError("--asr-model needs --score with metric wer")
        return {"scoring": None, "score_gates": gates}
    return {"scoring": ScoringConfig(metrics=metrics, asr_model=asr_model, asr_language=asr_language), "score_gates": gates}


def check_scoring(scoring: ScoringConfig, gates: ScoreGates) -> None:
    """Fail on the driver, before any work: unknown metric, missing package or ASR model, a gate without its metric."""
    build_scorers(scoring)
    check_gate_metrics(gates, tuple(scoring.metrics))


def fit_to_manifest(config: ScoreConfig, columns: set[str] | None, *, metrics_given: bool) -> tuple[ScoreConfig, str | None]:
    """The config for a manifest with `columns` (None: shard input), and a note when it changed.

    speaker_sim needs the reference column. A manifest without it fails when the user asked for
    speaker_sim; with the default metrics the metric is left out, and the note says so.
    """
    from dataclasses import replace

    from pipeline.scoring import ScoringError

    if columns is None or "speaker_sim" not in config.metrics or config.reference_column in columns:
        return config, None
    if metrics_given or config.gates.min_speaker_sim is not None:
        raise ScoringError(f"speaker_sim compares each row with the audio in column {config.reference_column!r}, which the manifest "
                           f"does not have (columns: {', '.join(sorted(columns))}); add it, name another with --reference-column, "
                           "or leave speaker_sim out of --metrics")
    metrics = tuple(m for m in config.metrics if m != "speaker_sim")
    return replace(config, metrics=metrics), (f"the manifest has no {config.reference_column!r} column: scoring "
                                              f"{', '.join(metrics)} without speaker_sim (pass --reference-column to compare voices)")


def manifest_column_names(path: str) -> set[str]:
    """Column names of a Parquet manifest (local path or URI), from its footer only."""
    import pyarrow.parquet as pq
    from pyarrow import fs as pafs

    from pipeline.io.manifest import ManifestNotFoundError
    from pipeline.io.uri import is_uri

    try:
        if not is_uri(path):
            return set(pq.read_schema(path).names)
        filesystem, inner = pafs.FileSystem.from_uri(path)
        with filesystem.open_input_file(inner) as handle:
            return set(pq.ParquetFile(handle).schema_arrow.names)
    except FileNotFoundError as exc:
        raise ManifestNotFoundError(f"input not found: {path} (a Parquet manifest, or tar shards: folder, glob, brace pattern)") from exc
    except (OSError, pa.ArrowException) as exc:
        raise ManifestNotFoundError(f"{path} is not a readable Parquet manifest ({type(exc).__name__}: {exc})") from exc


def score_columns(reference_column: str = DEFAULT_REFERENCE_COLUMN) -> tuple[Column, ...]:
    """Manifest columns of `hsp score` besides the base ones (plus tar input's internal ones)."""
    from pipeline.upsample import UPSAMPLE_COLUMNS

    return (Column(reference_column, "string", is_path=True, doc="reference voice for speaker_sim (e.g. the prompt)"), *UPSAMPLE_COLUMNS)


def score_job(config: ScoreConfig) -> Job:
    """The score job; scorer packages, the ASR model option and the gates are checked now."""
    from pipeline.upsample import INPUT_MANIFEST

    check_scoring(config.scoring, config.gates)

    def build() -> list[Stage]:
        inputs = ScoreInputStage(reference_column=config.reference_column, max_seconds=config.max_seconds,
                                 resources=Resources(num_cpus=config.cpus_per_task))
        scorer = ScoreStage(config.scoring, gates=config.gates, drop_failed_gates=config.drop_failed_gates,
                            resources=Resources(num_cpus=config.cpus_per_actor, num_gpus=config.gpus(), actors=config.actors))
        scorer.batch_size = config.batch_size
        return [inputs, scorer]

    return SCORE.job(build, config.output_options(), extra_columns=score_columns(config.reference_column),
                     internal_manifest=INPUT_MANIFEST)


def score_input_manifest(config: ScoreConfig, spec: str, out_root: str) -> str:
    """The manifest to run on: the manifest itself, or the internal manifest of tar input (as upsample)."""
    from pipeline.upsample import input_manifest

    return input_manifest(spec, out_root)


SCORE = JobSpec(
    name="score",
    command=("score",),
    config=ScoreConfig,
    build=score_job,
    columns=score_columns(),
    index_fields=tuple(SCORE_INDEX_FIELDS),
    input_manifest=score_input_manifest,
)
