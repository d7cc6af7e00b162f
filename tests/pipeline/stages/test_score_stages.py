"""The score stages on real speech at batch > 1 with the real scorer models (no Ray: the stages alone).

A batch mixes rows that score, a row without a reference (its speaker_sim is null, the rest
scored), and a row that cannot be scored (digital silence has no voice to embed): that row
alone becomes an error, the others keep exactly the scores they get when scored alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.engine.item import Item
from pipeline.scoring import ScoreGates, ScoringConfig
from pipeline.scoring.testing import save_tiny_ctc
from pipeline.stages.score_inputs import ScoreInputStage
from pipeline.stages.score_metrics import SOURCE_SIM, ScoreStage

METRICS = ("dnsmos", "speaker_sim", "vad", "bandwidth")


@pytest.fixture(scope="module")
def clips(reference_dir: Path, tmp_path_factory) -> dict[str, str]:
    """Halves of two kit speakers (16 kHz), one second of silence, as files."""
    folder = tmp_path_factory.mktemp("clips")
    paths = {}
    for n in (1, 2):
        wave, rate = sf.read(reference_dir / "audio" / f"reference_{n}.wav", dtype="float32")
        half = wave.shape[0] // 2
        for part, piece in (("a", wave[:half]), ("b", wave[half:])):
            paths[f"{n}{part}"] = str(folder / f"spk{n}_{part}.wav")
            sf.write(paths[f"{n}{part}"], piece, rate)
    paths["silence"] = str(folder / "silence.flac")
    sf.write(paths["silence"], np.zeros(16000, dtype=np.float32), 16000)
    return paths


@pytest.fixture(scope="module")
def scorer() -> ScoreStage:
    stage = ScoreStage(ScoringConfig(metrics=METRICS, device="cpu"), gates=ScoreGates(min_speaker_sim=0.0))
    stage.setup()
    return stage


def _items(rows: list[dict]) -> list[Item]:
    items = [Item(id=row["id"], row=i, fields=row) for i, row in enumerate(rows)]
    ScoreInputStage()(items)
    return items


def test_batch_scores_equal_single_scores_and_a_bad_row_fails_alone(clips, scorer: ScoreStage):
    rows = [
        {"id": "same", "audio": clips["1b"], "reference_audio": clips["1a"], "text": "one"},
        {"id": "other", "audio": clips["1b"], "reference_audio": clips["2a"]},
        {"id": "silent", "audio": clips["silence"], "reference_audio": clips["1a"]},
        {"id": "no_ref", "audio": clips["2b"]},
    ]
    items = _items(rows)
    assert not any(i.failed for i in items)
    assert items[0].members["wav"] == Path(clips["1b"]).read_bytes()  # the file itself, not re-encoded
    scorer(items)
    by_id = {i.id: i for i in items}
    assert by_id["silent"].failed and "digital silence" in by_id["silent"].error.message
    assert by_id["silent"].error.stage == "score" and not by_id["silent"].members
    same, other, no_ref = by_id["same"].index, by_id["other"].index, by_id["no_ref"].index
    assert same["speaker_sim"] > other["speaker_sim"]
    assert no_ref["speaker_sim"] is None and no_ref["dnsmos_ovrl"] > 1.0 and 0.5 < no_ref["speech_ratio"] <= 1.0
    assert same["gates_passed"] and not no_ref["gates_passed"] and no_ref["gate_failures"] == "min_speaker_sim"
    assert by_id["no_ref"].meta["scores"]["not_scored"] == ["speaker_sim (no reference)"]
    assert set(by_id["same"].meta["scorers"]) == set(METRICS) and "speechmos" in by_id["same"].meta["scorers"]["dnsmos"]
    json.dumps(by_id["same"].meta)  # the sample json holds plain values
    # the halving retry gives the surviving rows exactly what they score alone
    for name in ("same", "other", "no_ref"):
        alone = _items([next(r for r in rows if r["id"] == name)])
        scorer(alone)
        for column in ("dnsmos_ovrl", "speaker_sim", "speech_ratio", "bandwidth_hz"):
            assert alone[0].index[column] == by_id[name].index[column], (name, column)
    assert items[0].stage_metrics["score"]["splits"] >= 1


def test_drop_failed_gates_and_source_similarity(clips):
    stage = ScoreStage(ScoringConfig(metrics=("speaker_sim", "bandwidth"), device="cpu"),
                       gates=ScoreGates(min_bandwidth_hz=20000.0), drop_failed_gates=True)
    items = _items([{"id": "x", "audio": clips["1b"], "reference_audio": clips["1a"]}, {"id": "y", "audio": clips["2b"]}])
    stage(items)
    assert all(i.failed and i.error.error == "QualityGate" and "min_bandwidth_hz 20000" in i.error.message for i in items)

    # synthesis: the audio is the stored FLAC member, the prompt the reference, the VC source compared too
    converted = Item(id="vc", row=0, fields={})
    wave, rate = sf.read(clips["1b"], dtype="float32")
    import io

    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, format="FLAC")
    converted.members["flac"] = buffer.getvalue()
    converted.data["prompt"] = sf.read(clips["1a"], dtype="float32")[0]
    converted.data["source"] = sf.read(clips["2a"], dtype="float32")[0]
    converted.index["gate_failures"] = "clipping"
    synth = ScoreStage(ScoringConfig(metrics=("speaker_sim",), device="cpu"), audio_member="flac", reference_key="prompt")
    synth([converted])
    assert converted.index["speaker_sim"] > converted.index[SOURCE_SIM]
    assert converted.index["gate_failures"] == "clipping" and converted.index["gates_passed"] is False


def test_wer_with_a_tiny_ctc_model(clips, tmp_path):
    """WER/CER through the stage at batch 2; a row without text is scored on the rest, its WER null."""
    model = save_tiny_ctc(tmp_path / "ctc")
    stage = ScoreStage(ScoringConfig(metrics=("wer", "bandwidth"), device="cpu", asr_model=str(model)))
    items = _items([{"id": "t", "audio": clips["1b"], "text": "hello world"}, {"id": "u", "audio": clips["2b"]}])
    stage(items)
    assert not any(i.failed for i in items)
    assert items[0].index["wer"] >= 0.0 and items[0].index["cer"] >= 0.0
    assert items[1].index["wer"] is None and items[1].index["bandwidth_hz"] > 1000
    assert "transformers" in items[0].meta["scorers"]["wer"] or "Wav2Vec2" in items[0].meta["scorers"]["wer"]
