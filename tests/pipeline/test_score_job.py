"""`hsp score` through the CLI on a real local Ray with the real scorer models.

A manifest run (batch > 1, a gate, a bad row) checks the index columns, the sample json and
the errors table; a re-run does nothing twice; scoring that output's own shards (tar input)
keeps every member byte for byte and drops failing rows with --drop-failed-gates.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import webdataset as wds
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.io.output import ERRORS, INDEX, OutputDir


def _samples(out: Path) -> dict[str, dict]:
    dataset = wds.WebDataset(sorted(glob.glob(f"{out}/shards/*.tar")), shardshuffle=False, empty_check=False)
    return {json.loads(s["json"])["id"]: s for s in dataset}


@pytest.fixture()
def manifest(reference_dir: Path, tmp_path: Path) -> Path:
    rows = {"id": [], "audio": [], "reference_audio": [], "text": []}
    audio = reference_dir / "audio"
    for n, ref in ((1, 1), (2, 3)):  # speaker 1 against itself, speaker 2 against speaker 3
        rows["id"].append(f"utt{n}")
        rows["audio"].append(str(audio / f"reference_{n}.wav"))
        rows["reference_audio"].append(str(audio / f"reference_{ref}.wav"))
        rows["text"].append((audio / f"reference_{n}.txt").read_text().strip())
    sf.write(tmp_path / "quiet.flac", np.zeros(24000, dtype=np.float32), 24000)
    rows["id"] += ["silent", "missing"]
    rows["audio"] += [str(tmp_path / "quiet.flac"), str(tmp_path / "gone.wav")]
    rows["reference_audio"] += [None, None]
    rows["text"] += [None, None]
    path = tmp_path / "m.parquet"
    pq.write_table(pa.table(rows), path)
    return path


def test_score_a_manifest_then_its_own_shards(manifest: Path, tmp_path: Path, ray_local):
    out = tmp_path / "scored"
    common = ["--rows-per-shard", "2", "--no-progress", "--batch-size", "4", "--gpus-per-actor", "0"]
    args = ["score", str(manifest), "-o", str(out), "--min-speech-ratio", "0.2", *common]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output + str(result.exception)

    index = OutputDir(str(out)).read_parts(INDEX).to_pylist()
    errors = OutputDir(str(out)).read_parts(ERRORS).to_pylist()
    by_id = {row["id"]: row for row in index}
    assert sorted(by_id) == ["silent", "utt1", "utt2"] and [e["id"] for e in errors] == ["missing"]
    assert "not found" in errors[0]["message"]
    utt1, utt2, silent = by_id["utt1"], by_id["utt2"], by_id["silent"]
    assert utt1["speaker_sim"] > utt2["speaker_sim"]
    assert silent["speech_ratio"] < 0.1 and not silent["gates_passed"] and silent["gate_failures"] == "min_speech_ratio"
    assert silent["speaker_sim"] is None and silent["sample_rate"] == 24000
    assert utt1["gates_passed"] and 1.0 < utt1["dnsmos_ovrl"] <= 5.0 and utt1["bandwidth_hz"] > 4000
    assert utt1["wer"] is None and utt1["text"]  # wer is not a default metric
    samples = _samples(out)
    meta = json.loads(samples["utt1"]["json"])
    assert meta["job"] == "score" and set(meta["scorers"]) == {"dnsmos", "speaker_sim", "vad", "bandwidth"}
    assert meta["scores"]["values"]["speaker_sim"] == utt1["speaker_sim"] and meta["score_gates"]["passed"]
    audio_path = pq.read_table(manifest).column("audio")[0].as_py()
    assert samples["utt1"]["wav"] == Path(audio_path).read_bytes()  # the file itself, not re-encoded
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["samples_out"] == 3 and summary["errors"] == 1

    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "0 to do" in again.output
    assert len(OutputDir(str(out)).read_parts(INDEX)) == 3

    # the output's own shards as input: members pass through, failing rows dropped
    rescored = tmp_path / "rescored"
    result = CliRunner().invoke(main, ["score", str(out), "-o", str(rescored), "--metrics", "vad,bandwidth",
                                       "--min-speech-ratio", "0.2", "--drop-failed-gates", *common])
    assert result.exit_code == 0, result.output + str(result.exception)
    index = {row["id"]: row for row in OutputDir(str(rescored)).read_parts(INDEX).to_pylist()}
    errors = OutputDir(str(rescored)).read_parts(ERRORS).to_pylist()
    assert sorted(index) == ["utt1", "utt2"] and [(e["id"], e["error"]) for e in errors] == [("silent", "QualityGate")]
    assert index["utt1"]["speech_ratio"] == by_id["utt1"]["speech_ratio"] and index["utt1"]["dnsmos_ovrl"] is None
    resampled = _samples(rescored)["utt1"]
    assert resampled["wav"] == samples["utt1"]["wav"]
    meta = json.loads(resampled["json"])
    assert meta["source_meta"]["scores"]["values"]["speaker_sim"] == by_id["utt1"]["speaker_sim"]
    assert meta["text"] == by_id["utt1"]["text"] and meta["reference"] == by_id["utt1"]["reference"]  # carried over


def test_bad_options_fail_before_any_work(manifest: Path, tmp_path: Path):
    out = tmp_path / "o"
    cases = [
        (["--metrics", "dnsmos,mos"], "unknown metric(s) 'mos'"),
        (["--metrics", "wer"], "needs an ASR model"),
        (["--metrics", "vad", "--min-dnsmos-ovrl", "3"], "gate --min-dnsmos-ovrl needs metric 'dnsmos'"),
        (["--asr-model", "x", "--metrics", "vad"], "metric 'wer' is not selected"),
        (["--reference-column", "prompt", "--metrics", "speaker_sim"], "column 'prompt', which the manifest does not have"),
    ]
    for extra, message in cases:
        result = CliRunner().invoke(main, ["score", str(manifest), "-o", str(out), *extra])
        assert result.exit_code == 2, (extra, result.output)
        assert message in result.output, (extra, result.output)
        assert not out.exists()
    missing = CliRunner().invoke(main, ["score", str(tmp_path / "nope.parquet"), "-o", str(out)])
    assert missing.exit_code != 0 and "input not found" in missing.output and not out.exists()


def test_default_metrics_leave_out_speaker_sim_without_a_reference_column():
    from pipeline.score import ScoreConfig, fit_to_manifest
    from pipeline.scoring import ScoreGates, ScoringError

    config, note = fit_to_manifest(ScoreConfig(), {"id", "audio"}, metrics_given=False)
    assert config.metrics == ("dnsmos", "vad", "bandwidth") and "no 'reference_audio' column" in note
    assert fit_to_manifest(ScoreConfig(), {"id", "audio", "reference_audio"}, metrics_given=False) == (ScoreConfig(), None)
    assert fit_to_manifest(ScoreConfig(), None, metrics_given=True) == (ScoreConfig(), None)  # shards: from their json
    with pytest.raises(ScoringError, match="leave speaker_sim out"):
        fit_to_manifest(ScoreConfig(gates=ScoreGates(min_speaker_sim=0.5)), {"id", "audio"}, metrics_given=False)
