"""Metric names, index columns, missing packages as usage errors, inputs, and gates."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from pipeline.scoring import (
    DEFAULT_METRICS,
    MissingScorerPackageError,
    ScoreGates,
    ScoreInput,
    ScoringConfig,
    ScoringError,
    ScoringInputError,
    build_scorers,
    check_gate_metrics,
    evaluate_gates,
    index_columns,
    parse_metrics,
)


def test_metrics_and_columns() -> None:
    assert DEFAULT_METRICS == ("dnsmos", "speaker_sim", "vad", "bandwidth")  # all that need no user model
    assert parse_metrics(None) == parse_metrics("") == DEFAULT_METRICS
    assert parse_metrics(" vad, wer ,vad") == ("vad", "wer")
    assert index_columns(parse_metrics("dnsmos,speaker_sim,vad,bandwidth,wer")) == [
        "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "speaker_sim", "speech_ratio", "bandwidth_hz", "wer", "cer"
    ]  # fmt: skip
    with pytest.raises(ScoringError, match=r"unknown metric.*'mos'.*known: dnsmos"):
        parse_metrics("dnsmos,mos")
    with pytest.raises(ScoringError, match="needs an ASR model"):
        build_scorers(ScoringConfig(metrics=("wer",)))
    with pytest.raises(ScoringError, match="'wer' is not selected"):
        build_scorers(ScoringConfig(asr_model="some/model"))
    scorers = build_scorers(ScoringConfig())
    assert [s.name for s in scorers] == list(DEFAULT_METRICS)
    assert [s.device for s in scorers] == ["cpu"] * 4  # no CUDA here; dnsmos, vad, bandwidth always CPU
    assert not any(s._loaded for s in scorers)  # building loads nothing


@pytest.mark.parametrize(("metric", "module", "install"), [("dnsmos", "speechmos", "speechmos"), ("dnsmos", "onnxruntime", "onnxruntime"), ("vad", "silero_vad", "silero-vad"), ("speaker_sim", "resemblyzer", "--no-deps resemblyzer"), ("speaker_sim", "webrtcvad", "webrtcvad-wheels"), ("wer", "jiwer", "jiwer")])
def test_missing_package_is_a_usage_error_naming_the_extra(metric: str, module: str, install: str, monkeypatch) -> None:
    """A hidden module (as if not installed) fails when the scorers are built, before any work,
    with the package and the [score] extra in one line."""
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingScorerPackageError) as info:
        build_scorers(ScoringConfig(metrics=(metric,), asr_model="x/y" if metric == "wer" else None))
    message = str(info.value)
    assert f"metric {metric!r}" in message and install in message and "pip install '.[score]'" in message
    assert "\n" not in message


def test_a_package_lost_after_the_check_fails_at_load(monkeypatch) -> None:
    from pipeline.scoring.vad import SpeechRatioScorer

    scorer = SpeechRatioScorer()
    monkeypatch.setitem(sys.modules, "silero_vad", None)
    with pytest.raises(MissingScorerPackageError, match=r"silero-vad.*pip install"):
        scorer.load()


def test_inputs_are_checked_when_built() -> None:
    with pytest.raises(ScoringInputError, match="mono"):
        ScoreInput(np.zeros((2, 100), dtype=np.float32))
    with pytest.raises(ScoringInputError, match="empty"):
        ScoreInput(np.zeros(0, dtype=np.float32))
    with pytest.raises(ScoringInputError, match="NaN"):
        ScoreInput(np.array([0.0, np.nan], dtype=np.float32))
    with pytest.raises(ScoringInputError, match="reference sample rate"):
        ScoreInput(np.zeros(10), reference=np.zeros(10), reference_rate=0)
    sample = ScoreInput(np.zeros(16000, dtype=np.float64), 16000)
    assert sample.audio.dtype == np.float32 and sample.duration == 1.0


def test_gates_like_the_synthesis_gates() -> None:
    gates = ScoreGates(min_dnsmos_ovrl=3.0, max_wer=0.2, min_bandwidth_hz=12000)
    good = evaluate_gates({"dnsmos_ovrl": 3.2, "wer": 0.2, "bandwidth_hz": 12000.0, "speaker_sim": 0.1}, gates)
    assert good.passed and good.failed == [] and good.index_fields() == {"gates_passed": True, "gate_failures": ""}
    bad = evaluate_gates({"dnsmos_ovrl": 2.9, "wer": 0.5, "bandwidth_hz": 24000.0}, gates)
    assert bad.index_fields() == {"gates_passed": False, "gate_failures": "min_dnsmos_ovrl,max_wer"}
    assert bad.meta()["limits"] == {"min_dnsmos_ovrl": 3.0, "max_wer": 0.2, "min_bandwidth_hz": 12000.0}
    # an unscored or non-finite value fails its gate (fail closed); gates that are off are ignored
    unscored = evaluate_gates({"dnsmos_ovrl": float("nan"), "wer": 0.0}, gates)
    assert unscored.failed == ["min_dnsmos_ovrl", "min_bandwidth_hz"] and unscored.values["dnsmos_ovrl"] is None
    assert evaluate_gates({}, ScoreGates()).passed
    check_gate_metrics(gates, ("dnsmos", "wer", "bandwidth"))
    with pytest.raises(ScoringError, match="--min-speaker-sim needs metric 'speaker_sim'"):
        check_gate_metrics(ScoreGates(min_speaker_sim=0.5), ("dnsmos",))
