"""Quality scores of speech as a library: one module per metric, a registry, gates.

What a scoring stage calls (load once per actor, then batches)::

    from pipeline.scoring import ScoreInput, ScoringConfig, build_scorers

    scorers = build_scorers(ScoringConfig(metrics=("dnsmos", "vad")))  # checks packages now
    for scorer in scorers:
        scorer.load()                                  # in Stage.setup()
    batch = [ScoreInput(audio, 16000, reference=prompt, text=text), ...]
    rows = [{} for _ in batch]
    for scorer in scorers:                             # in Stage.process()
        for row, values in zip(rows, scorer.score(batch)):
            row.update(values)                         # {"dnsmos_ovrl": 3.1, ...}
    versions = {s.name: s.version() for s in scorers}  # provenance

Every metric's model ships inside its PyPI wheel (no hub) except WER/CER's ASR model, which
the user brings. The packages are the `[score]` extra; a missing one is a `ScoringError`
naming it and the install command.
"""

from pipeline.scoring.base import (
    MissingScorerPackageError,
    ScoreInput,
    Scorer,
    ScoringError,
    ScoringInputError,
)
from pipeline.scoring.gates import GateOutcome, ScoreGates, check_gate_metrics, evaluate_gates
from pipeline.scoring.registry import (
    DEFAULT_METRICS,
    SCORERS,
    ScoringConfig,
    build_scorers,
    index_columns,
    parse_metrics,
)

__all__ = [
    "DEFAULT_METRICS",
    "SCORERS",
    "GateOutcome",
    "MissingScorerPackageError",
    "ScoreGates",
    "ScoreInput",
    "Scorer",
    "ScoringConfig",
    "ScoringError",
    "ScoringInputError",
    "build_scorers",
    "check_gate_metrics",
    "evaluate_gates",
    "index_columns",
    "parse_metrics",
]
