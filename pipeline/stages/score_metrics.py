"""Scoring stage: the quality metrics of a batch, the score gates, and the record of both.

One actor pool; every scorer's model loads once per actor (`setup`). A batch is scored with
`process_batch_isolating`: scores go into locals and are written to the items only after every
scorer finished the whole batch, so a failing row is found by halving and the others keep
their scores. A metric that needs what a row lacks (speaker similarity without a reference
voice, WER without a transcript) is left null for that row, not an error: the row is still
scored on everything else, and a gate on that metric fails it (gates fail closed).

Used by `hsp score` (audio decoded by `ScoreInputStage`) and by `hsp synthesize|augment
--score` (audio read back from the FLAC member the synthesis wrote, so the scores are of the
stored samples; the prompt is the reference and, for VC, the source is compared as well).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.engine.item import Item
from pipeline.engine.stage import Resources, Stage
from pipeline.scoring import ScoreGates, ScoreInput, ScoringConfig, build_scorers, evaluate_gates
from pipeline.scoring.registry import SCORERS

SOURCE_SIM = "speaker_sim_source"  # VC: similarity to the source speaker (should be below speaker_sim)
SCORE_COLUMNS: tuple[str, ...] = (*(c for cls in SCORERS.values() for c in cls.columns), SOURCE_SIM)


def _stored_audio(item: Item, member: str) -> tuple[np.ndarray, int]:
    import soundfile as sf

    samples, rate = sf.read(io.BytesIO(item.members[member]), dtype="float32", always_2d=True)
    return np.ascontiguousarray(samples[:, 0]), int(rate)


class ScoreStage(Stage):
    """Scores every live item with the configured metrics and applies the score gates.

    Reads ``data['audio']``/``data['sample_rate']`` (or the `audio_member` member when set),
    ``data[reference_key]`` and ``data[source_key]`` (16 kHz, optional), ``data['text']`` or the
    ``text`` field. Writes the score columns, ``gates_passed``/``gate_failures`` (merged with
    gates an earlier stage already recorded) to the index, and ``scores``/``scorers``/
    ``score_gates`` to the sample json; a failing row goes to the errors table instead when
    `drop_failed_gates`.
    """

    name = "score"
    stateful = True
    batch_size = 8

    def __init__(self, scoring: ScoringConfig, *, gates: ScoreGates | None = None, drop_failed_gates: bool = False,
                 audio_member: str | None = None, reference_key: str = "reference", source_key: str | None = "source",
                 resources: Resources | None = None):
        super().__init__(resources)
        self.scoring = scoring
        self.gates = gates or ScoreGates()
        self.drop_failed_gates = drop_failed_gates
        self.audio_member = audio_member
        self.reference_key = reference_key
        self.source_key = source_key
        self._scorers: list = []
        self._versions: dict[str, str] = {}
        # the contract: the audio (unless read from a member), the reference and the VC source when a row has them
        self.inputs = () if audio_member else ("audio", "sample_rate")
        self.optional_inputs = (reference_key, *((source_key,) if source_key else ()), *(() if audio_member else ("text",)))

    def setup(self) -> None:
        from dataclasses import replace

        device = self.scoring.device or self.device
        self._scorers = build_scorers(replace(self.scoring, device=device))
        for scorer in self._scorers:
            scorer.load()
        self._versions = {s.name: s.version() for s in self._scorers}

    def process(self, items: list[Item]) -> None:
        if not self._scorers:
            self.setup()
        self.process_batch_isolating(items, self._score_batch)

    def _inputs(self, item: Item) -> tuple[ScoreInput, ScoreInput | None]:
        if self.audio_member:
            audio, rate = _stored_audio(item, self.audio_member)
        else:
            audio, rate = item.data["audio"], int(item.data["sample_rate"])
        text = item.data.get("text") if item.data.get("text") is not None else item.fields.get("text")
        text = str(text) if text is not None and str(text).strip() else None
        reference = item.data.get(self.reference_key)
        main = ScoreInput(audio, rate, reference=reference, text=text)
        source = item.data.get(self.source_key) if self.source_key else None
        return main, (ScoreInput(main.audio, rate, reference=source) if source is not None else None)

    def _score_batch(self, items: list[Item]) -> None:
        pairs = [self._inputs(item) for item in items]
        inputs = [main for main, _ in pairs]
        scores: list[dict[str, float | None]] = [dict.fromkeys(c for s in self._scorers for c in s.columns) for _ in items]
        missing: list[list[str]] = [[] for _ in items]
        for scorer in self._scorers:
            able = [i for i, x in enumerate(inputs) if _has(x, scorer.needs)]
            for i in set(range(len(items))) - set(able):
                missing[i].append(f"{scorer.name} (no {' or '.join(sorted(scorer.needs))})")
            for i, values in zip(able, scorer.score([inputs[i] for i in able]), strict=True):
                scores[i].update(values)
            if scorer.name == "speaker_sim":
                with_source = [i for i, (_, source) in enumerate(pairs) if source is not None]
                for i, values in zip(with_source, scorer.score([pairs[i][1] for i in with_source]), strict=True):
                    scores[i][SOURCE_SIM] = values["speaker_sim"]
        outcomes = [evaluate_gates(row, self.gates) for row in scores]
        for item, row, outcome, absent in zip(items, scores, outcomes, missing, strict=True):  # the batch succeeded: write
            self._record(item, row, outcome, absent)

    def _record(self, item: Item, row: dict[str, float | None], outcome, absent: Sequence[str]) -> None:
        earlier = [f for f in (item.index.get("gate_failures") or "").split(",") if f]
        failures = [*earlier, *outcome.failed]
        if outcome.failed and self.drop_failed_gates:
            limits = ", ".join(f"{g} {outcome.limits[g]:g} (got {_fmt(outcome.values.get(_column(g)))})" for g in outcome.failed)
            item.fail(self.name, f"score gate(s) failed: {limits}", error="QualityGate")
            return
        record: dict[str, Any] = {"values": row, "not_scored": list(absent)}
        item.meta.update({"scores": record, "scorers": dict(self._versions), "score_gates": outcome.meta()})
        item.index.update(row)
        item.index.update({"gates_passed": not failures, "gate_failures": ",".join(failures)})


def _has(sample: ScoreInput, needs: frozenset[str]) -> bool:
    return ("reference" not in needs or sample.reference is not None) and ("text" not in needs or sample.text is not None)


def _column(gate: str) -> str:
    from pipeline.scoring.gates import GATE_COLUMNS

    return GATE_COLUMNS[gate][0]


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.4g}"
