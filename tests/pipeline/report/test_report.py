"""`hsp report`: the streaming readers, the page's content, and the page in a real (headless) browser."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf
import soxr
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.engine.item import Item, ItemError
from pipeline.engine.sink import SinkConfig, commit_part
from pipeline.io.output import OutputDir, index_schema
from pipeline.io.shards import read_samples
from pipeline.prepare import PREPARE_INDEX_FIELDS
from pipeline.report.build import build_report
from pipeline.report.collect import scan_index
from tests.conftest import REPO_ROOT
from tests.pipeline.report.browser import check_pages, find_chromium

ARTIFACTS = REPO_ROOT / "artifacts"
EXAMPLES = REPO_ROOT / "pipeline" / "examples"


def _flac(audio: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _voice(seconds: float, rate: int, f0: float, seed: int) -> np.ndarray:
    """A gliding harmonic tone with a gap: something with a visible spectrum and an F0."""
    t = np.arange(int(seconds * rate)) / rate
    pitch = f0 * (1 + 0.15 * np.sin(2 * np.pi * 0.7 * t + seed))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    audio = sum(0.25 / k * np.sin(k * phase) for k in range(1, 8))
    audio[(t > seconds * 0.45) & (t < seconds * 0.55)] = 0.0
    return (audio + 0.003 * np.random.default_rng(seed).standard_normal(t.size)).astype(np.float32)


def make_output(root: Path, job: str, rows_in: int, samples: list[Item], errors: list[Item], fields: list[pa.Field], rows_per_part: int = 3) -> Path:
    """A job output written through the real sink (committed parts), without running Ray."""
    out = OutputDir(str(root))
    out.ensure_layout()
    run_id = out.start_run()
    out.write_json("job.json", {"job": job, "manifest": {"path": f"synthetic-{job}.parquet", "rows": rows_in}, "options": {"synthetic": True}})
    config = SinkConfig(str(root), run_id, job, index_schema(fields), 1 << 30, "test")
    items = samples + errors
    for start in range(0, len(items), rows_per_part):
        commit_part(items[start : start + rows_per_part], config)
    out.append_run_history({"run_id": run_id, "wall_seconds": 2.0, "rows": len(items), "command": ["hsp", job, "synthetic"]})
    return root


def features_output(root: Path) -> Path:
    """An extract-like PARTIAL output: flac + f0.npy + w2v.npy members, two kinds of error, rows missing."""
    samples = []
    for i in range(7):
        seconds = 1.0 + 0.35 * i
        audio = _voice(seconds, 16000, 110.0 + 25 * i, i)
        frames = int(seconds * 200)
        f0 = (110.0 + 25 * i) * (1 + 0.15 * np.sin(2 * np.pi * 0.7 * np.arange(frames) / 200 + i))
        f0[int(frames * 0.45) : int(frames * 0.55)] = 0.0
        w2v = np.zeros((1024, int(seconds * 50)), dtype=np.float16)
        item = Item(f"spk{i % 3}/utt{i}", i, {})
        item.members = {"flac": _flac(audio, 16000), "f0.npy": _npy(f0.astype(np.float32)), "w2v.npy": _npy(w2v)}
        item.meta = {"speaker": f"spk{i % 3}", "text": f"synthetic utterance number {i}", "f0": {"frame_rate": 200}}
        item.index = {"duration": seconds, "source_duration": seconds, "sample_rate": 16000, "source_sample_rate": 16000, "source_channels": 1, "speaker": f"spk{i % 3}", "text": item.meta["text"]}
        samples.append(item)
    errors = []
    for i, (stage, error) in enumerate([("decode", "LibsndfileError"), ("decode", "LibsndfileError"), ("features", "F0ExtractionError")]):
        item = Item(f"bad{i}", 100 + i, {})
        item.error = ItemError(stage, error, f"[{stage}] synthetic failure {i}")
        errors.append(item)
    return make_output(root, "extract", rows_in=12, samples=samples, errors=errors, fields=PREPARE_INDEX_FIELDS)


def upsample_output(root: Path, prepared: Path) -> Path:
    """An upsample-like output whose samples point at the prepare output's shards (source_shard/key)."""
    prepared_index = OutputDir(str(prepared)).read_parts("index.parquet").to_pylist()
    samples = []
    for n, row in enumerate(prepared_index[:3]):
        shard = str(prepared / row["shard"])
        audio, rate = sf.read(io.BytesIO(read_samples(shard, [row["key"]], ["flac"])[row["key"]]["flac"]), dtype="float32")
        up = soxr.resample(audio, rate, 48000).astype(np.float32)
        item = Item(row["id"], n, {})
        item.members = {"flac": _flac(np.clip(up, -1, 1), 48000)}
        item.meta = {"source": shard, "source_shard": shard, "source_key": row["key"], "text": row["text"], "speaker": row["speaker"]}
        item.index = {"duration": up.size / 48000, "source_duration": row["duration"], "sample_rate": 48000, "source_sample_rate": 16000, "source_channels": 1, "speaker": row["speaker"]}
        samples.append(item)
    return make_output(root, "upsample", rows_in=3, samples=samples, errors=[], fields=PREPARE_INDEX_FIELDS)


def synthesis_output(root: Path) -> Path:
    """A synthesize-like output: json source_id/prompt_id/text, source and prompt audio referenced by path."""
    source = EXAMPLES / "audio/1001/10/1001_10_000000.flac"
    prompt = EXAMPLES / "audio/1001/10/1001_10_000001.flac"
    samples = []
    for i in range(2):
        audio = _voice(1.5, 16000, 140.0 + 30 * i, 10 + i)
        item = Item(f"tts{i}", i, {})
        item.members = {"flac": _flac(audio, 16000)}
        item.meta = {"source_id": "1001_10_000000", "prompt_id": "1001_10_000001", "text": "A sentence spoken in the prompt's voice.", "source_audio": str(source), "prompt_audio": str(prompt)}
        item.index = {"duration": 1.5, "sample_rate": 16000, "text": item.meta["text"]}
        samples.append(item)
    return make_output(root, "synthesize", rows_in=2, samples=samples, errors=[], fields=PREPARE_INDEX_FIELDS)


# -- fast tests: no Ray, no browser ----------------------------------------------------------------


def test_shard_reader_reads_only_the_asked_samples_and_header_bytes(tmp_path):
    out = features_output(tmp_path / "feat")
    index = OutputDir(str(out)).read_parts("index.parquet").to_pylist()
    row = index[1]
    found = read_samples(str(out / row["shard"]), [row["key"], "no-such-key"], ["w2v.npy", "json"], limits={"w2v.npy": 128})
    assert set(found) == {row["key"]}
    assert set(found[row["key"]]) == {"w2v.npy", "json"}
    assert len(found[row["key"]]["w2v.npy"]) == 128 and found[row["key"]]["w2v.npy"].startswith(b"\x93NUMPY")
    assert json.loads(found[row["key"]]["json"])["id"] == row["id"]


def test_reservoir_is_seeded_bounded_and_covers_the_index(tmp_path):
    out = OutputDir(str(features_output(tmp_path / "feat")))
    a, b, c = (scan_index(out, k=4, seed=s) for s in (1, 1, 2))
    assert [r["id"] for r in a.sampled] == [r["id"] for r in b.sampled]  # same seed, same choice
    assert len(a.sampled) == 4 and a.rows == 7 and len({r["id"] for r in a.sampled}) == 4
    assert a.durations.size == 7 and a.speakers == {"spk0": 3, "spk1": 2, "spk2": 2}
    every = scan_index(out, k=100, seed=2)
    assert sorted(r["id"] for r in every.sampled) == sorted(f"spk{i % 3}/utt{i}" for i in range(7))
    assert {r["id"] for r in c.sampled} <= {r["id"] for r in every.sampled}


def test_report_of_a_partial_output_and_the_cli(tmp_path):
    out = features_output(tmp_path / "feat")
    result = CliRunner().invoke(main, ["report", str(out), "-o", str(tmp_path / "rep"), "--samples", "3", "--seed", "5", "--no-progress"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"wrote {tmp_path / 'rep' / 'index.html'}") and "PARTIAL" in lines[0]
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "PARTIAL output: 2 of 12 manifest rows are not done yet" in html
    assert "Errors: 3 rows in 2 groups" in html and "bad0" in html and "F0ExtractionError" in html
    for name in ("durations.png", "speakers.png", "inputs.png", "f0_hist.png", "f0_contours.png", "w2v_frames.png"):
        assert (tmp_path / "rep" / "assets" / name).stat().st_size > 1000, name
    assert html.count("<audio ") == 3
    # a re-run replaces its own report, but never writes into an unrelated folder
    assert CliRunner().invoke(main, ["report", str(out), "-o", str(tmp_path / "rep"), "--no-progress"]).exit_code == 0
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("x")
    refused = CliRunner().invoke(main, ["report", str(out), "-o", str(tmp_path / "other"), "--no-progress"])
    assert refused.exit_code != 0 and "not an hsp report" in refused.output
    as_file = CliRunner().invoke(main, ["report", str(out), "-o", str(tmp_path / "card.html"), "--no-progress"])
    assert as_file.exit_code != 0 and "the report is a folder" in as_file.output
    not_output = CliRunner().invoke(main, ["report", str(tmp_path / "other"), "-o", str(tmp_path / "x"), "--no-progress"])
    assert not_output.exit_code != 0 and "not a job output" in not_output.output


def scored_output(root: Path) -> Path:
    """A score-like output: 8 samples with scores (one without speaker_sim), gates flagged."""
    from pipeline.score import SCORE_INDEX_FIELDS

    samples = []
    for i in range(8):
        item = Item(f"utt{i}", i, {})
        item.members = {"flac": _flac(_voice(1.0, 16000, 120.0 + 10 * i, i), 16000)}
        item.meta = {"text": f"utterance {i}", "scores": {"values": {}}}
        item.index = {"duration": 1.0, "sample_rate": 16000, "dnsmos_ovrl": 1.5 + 0.3 * i, "wer": 0.1 * (i % 4),
                      "speaker_sim": None if i == 3 else 0.9 - 0.05 * i, "gates_passed": i > 1, "gate_failures": "" if i > 1 else "min_dnsmos_ovrl"}
        samples.append(item)
    return make_output(root, "score", rows_in=8, samples=samples, errors=[], fields=SCORE_INDEX_FIELDS)


def test_report_shows_score_distributions_and_the_worst_samples(tmp_path):
    """Worst = lowest DNSMOS / similarity, highest WER (ties: the earlier row); nulls counted, not ranked."""
    out = scored_output(tmp_path / "scored")
    stats = scan_index(OutputDir(str(out)), k=2, seed=0, worst=2)
    assert [r["id"] for r in stats.scores.worst_rows("dnsmos_ovrl")] == ["utt0", "utt1"]
    assert [r["id"] for r in stats.scores.worst_rows("wer")] == ["utt3", "utt7"]
    assert [r["id"] for r in stats.scores.worst_rows("speaker_sim")] == ["utt7", "utt6"]
    assert stats.scores.unscored["speaker_sim"] == 1 and stats.scores.distributions()["speaker_sim"].size == 7
    result = CliRunner().invoke(main, ["report", str(out), "-o", str(tmp_path / "rep"), "--samples", "1", "--worst", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "rep" / "index.html").read_text()
    assert (tmp_path / "rep" / "assets" / "scores.png").stat().st_size > 1000
    section = html[html.index('id="scores"'):html.index('id="samples"')]
    assert "Worst by DNSMOS overall (1-5) (lowest first)" in section and "Worst by word error rate (highest first)" in section
    assert section.index("utt0") < section.index("utt1") and "dnsmos_ovrl: 1.5" in section
    assert section.count("<audio ") == 6 and "speaker_sim 1" in section  # 3 scores x 2 worst; one row unscored


# -- the real thing: a prepare run on the bundled examples, and the pages in chromium ------------------


@pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed (scripts/setup.sh installs it; apt-get install chromium)")
def test_reports_render_in_headless_chromium(tmp_path, ray_local):
    from pipeline.engine.job import RunOptions
    from pipeline.engine.runner import run_job
    from pipeline.prepare import PrepareConfig, prepare_job

    prepared = tmp_path / "prepared"
    run_job(prepare_job(PrepareConfig(sample_rate=16000)), EXAMPLES / "examples.parquet", prepared, RunOptions(rows_per_shard=3, progress=False, command=["hsp", "prepare", "examples.parquet"]))
    outputs = {
        "prepare": prepared,
        "features": features_output(tmp_path / "features"),
        "upsample": upsample_output(tmp_path / "upsampled", prepared),
        "synthesize": synthesis_output(tmp_path / "synth"),
    }
    site = tmp_path / "site"
    pages = []
    for name, out in outputs.items():
        build_report(str(out), site / name, samples=4, seed=0)
        pages.append((f"{name}/index.html", ARTIFACTS / f"report-{name}.png"))

    results = dict(zip(outputs, check_pages(find_chromium(), site, pages), strict=True))
    for name, page in results.items():
        assert page["problems"] == [], (name, page["problems"])
        assert page["images"] and all(img["w"] > 0 and img["h"] > 0 for img in page["images"]), (name, page["images"])
        assert page["audio"] and all(a["error"] is None and a["duration"] > 0 for a in page["audio"]), (name, page["audio"])
        assert Path(page["screenshot"]).stat().st_size > 10_000
    assert "Complete" in results["prepare"]["text"] and "7" in results["prepare"]["text"]
    assert "PARTIAL output" in results["features"]["text"]
    assert {"assets/f0_hist.png", "assets/w2v_frames.png"} <= {i["src"] for i in results["features"]["images"]}
    # upsample: before (16 kHz, from the prepare shard) and after (48 kHz) players, same duration
    ups = results["upsample"]["audio"]
    assert len(ups) == 6 and {a["src"].rsplit("-", 1)[1] for a in ups} == {"before.flac", "after.flac"}
    for before, after in zip(ups[::2], ups[1::2], strict=True):
        assert before["duration"] == pytest.approx(after["duration"], abs=0.01)
    assert "Before / after" in results["upsample"]["text"]
    # synthesize: source, prompt and output side by side, with the text
    assert len(results["synthesize"]["audio"]) == 6 and "A sentence spoken in the prompt's voice." in results["synthesize"]["text"]
