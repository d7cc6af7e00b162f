"""Thresholds on scores as quality gates, reported like the synthesis gates.

A gate left at None is off. A gate on a metric that was not scored is a setup error, found when
the job is built (`check_gate_metrics`); a row whose value is missing or not finite fails that
gate (fail closed: an unscorable sample is not a good one). `evaluate_gates` returns the same
shape the synthesis output stage records: `passed`, the failed gate names, values and limits,
so a stage writes ``gates_passed`` / ``gate_failures`` (comma-joined names) to the index.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.scoring.base import ScoringError
from pipeline.scoring.registry import SCORERS

# gate field -> (index column, "min" or "max")
GATE_COLUMNS: dict[str, tuple[str, str]] = {
    "min_dnsmos_ovrl": ("dnsmos_ovrl", "min"),
    "min_speaker_sim": ("speaker_sim", "min"),
    "max_wer": ("wer", "max"),
    "min_speech_ratio": ("speech_ratio", "min"),
    "min_bandwidth_hz": ("bandwidth_hz", "min"),
}


@dataclass(frozen=True)
class ScoreGates:
    """Score thresholds; None turns a gate off."""

    min_dnsmos_ovrl: float | None = None
    min_speaker_sim: float | None = None
    max_wer: float | None = None
    min_speech_ratio: float | None = None
    min_bandwidth_hz: float | None = None

    def active(self) -> dict[str, float]:
        """The gates that are on: field name -> limit."""
        return {name: float(limit) for name, limit in asdict(self).items() if limit is not None}


@dataclass(frozen=True)
class GateOutcome:
    """What the gates decided for one sample."""

    passed: bool
    failed: list[str] = field(default_factory=list)  # names of the failed gates, e.g. 'min_dnsmos_ovrl'
    values: dict[str, float | None] = field(default_factory=dict)
    limits: dict[str, float] = field(default_factory=dict)

    def index_fields(self) -> dict[str, Any]:
        """``gates_passed`` and ``gate_failures`` for the index, as the synthesis gates write them."""
        return {"gates_passed": self.passed, "gate_failures": ",".join(self.failed)}

    def meta(self) -> dict[str, Any]:
        """The sample json's record of the decision."""
        return {"passed": self.passed, "failed": list(self.failed), "values": dict(self.values), "limits": dict(self.limits)}


def check_gate_metrics(gates: ScoreGates, metrics: tuple[str, ...]) -> None:
    """Fail at build time when a gate is on but its metric is not scored."""
    scored = {column for name in metrics for column in SCORERS[name].columns}
    for gate in gates.active():
        column, _ = GATE_COLUMNS[gate]
        if column not in scored:
            metric = next(name for name, cls in SCORERS.items() if column in cls.columns)
            raise ScoringError(f"gate --{gate.replace('_', '-')} needs metric {metric!r}; add it to --metrics or drop the gate")


def evaluate_gates(scores: Mapping[str, float | None], gates: ScoreGates) -> GateOutcome:
    """Apply the active gates to one sample's scores (index column -> value)."""
    failed, values, limits = [], {}, {}
    for gate, limit in gates.active().items():
        column, kind = GATE_COLUMNS[gate]
        value = scores.get(column)
        value = None if value is None or not math.isfinite(value) else float(value)
        values[column], limits[gate] = value, limit
        ok = value is not None and (value >= limit if kind == "min" else value <= limit)
        if not ok:
            failed.append(gate)
    return GateOutcome(passed=not failed, failed=failed, values=values, limits=limits)
