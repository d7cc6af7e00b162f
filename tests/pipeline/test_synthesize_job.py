"""`hsp synthesize vc|tts` and `hsp augment` end to end on a real local Ray, with tiny checkpoints on disk.

The tiny models (hierspeech/testing/tiny_synthesis.py) are saved as state-dict files with their
config.json beside them and passed by path, as a user would. Audio is "voice-like" (harmonics with
vibrato) so YAAPT finds a varying F0 for the VC path.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.io.output import ERRORS, INDEX, OutputDir
from pipeline.testing.outputs import samples_by_id


def voice(seconds: float, f0: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """Harmonics with vibrato and a syllable-rate envelope: YAAPT finds a varying voiced F0."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.08 * np.sin(2 * np.pi * 3.0 * t))) / rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 2.0 * t) ** 2
    return (0.2 * wave * envelope + 0.003 * rng.standard_normal(t.shape)).astype(np.float32)


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> dict:
    from hierspeech.testing.tiny_synthesis import write_tiny_checkpoints, write_tiny_w2v

    root = tmp_path_factory.mktemp("synth")
    paths = write_tiny_checkpoints(root / "ckpt", speechsr_rates=(24000,))
    paths["w2v"] = write_tiny_w2v(root / "ckpt")
    corpus = root / "corpus"
    corpus.mkdir()
    utterances = [("u1", "spk_a", 110, 1.6, "The birch canoe slid on the smooth planks."), ("u2", "spk_a", 120, 1.3, "Glue the sheet to the dark blue background."),
                  ("u3", "spk_b", 200, 1.5, "It is easy to tell the depth of a well."), ("u4", "spk_c", 160, 1.4, "These days a chicken leg is a rare dish.")]
    for i, (uid, _spk, f0, seconds, _text) in enumerate(utterances):
        rate = 22050 if uid == "u3" else 16000  # one prompt needs resampling
        sf.write(corpus / f"{uid}.wav", voice(seconds, f0, rate, seed=i), rate)
    sf.write(corpus / "short.wav", voice(0.5, 150), 16000)
    (corpus / "corrupt.wav").write_bytes(b"RIFF0000WAVEfmt garbage")
    asr = pa.table({"id": [u[0] for u in utterances], "audio": [f"corpus/{u[0]}.wav" for u in utterances], "speaker": [u[1] for u in utterances], "text": [u[4] for u in utterances]})
    pq.write_table(asr, root / "asr.parquet")
    model_args = ["--synthesizer", paths["synthesizer"], "--ttv", paths["ttv"], "--denoiser", paths["denoiser"], "--speechsr", paths["speechsr24000"], "--w2v-model", paths["w2v"], "--w2v-layer", "1"]
    return {"root": root, "paths": paths, "model_args": model_args, "corpus": corpus}


def read_samples(out: Path) -> dict[str, dict[str, bytes]]:
    return {sample_id: {**members, "meta": json.loads(members["json"])} for sample_id, members in samples_by_id(out).items()}


def invoke(args: list[str]):
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    return result


def test_manifest_parameter_ranges_are_structural_errors(tmp_path: Path) -> None:
    """Out-of-range per-row parameters make the manifest invalid, located by row and column."""
    manifest = tmp_path / "vc.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "audio": ["x.wav", "y.wav"], "target_audio": ["p.wav", "p.wav"], "noise_scale": [0.3, -1.0], "output_sr": [16000, 22050], "denoise_ratio": [0.0, 1.5]}), manifest)
    result = invoke(["manifest", "validate", str(manifest), "--job", "synthesize_vc", "--no-check-files"])
    assert result.exit_code == 1
    for needle in ("row 1 (id 'b'), column 'noise_scale'", "column 'output_sr': must be one of", "column 'denoise_ratio': must be within [0, 1]"):
        assert needle in result.output, result.output


def test_augment_plan_is_deterministic_and_crosses_speakers(kit) -> None:
    from pipeline.augment import AugmentOptions, augment_plan

    table = pq.read_table(kit["root"] / "asr.parquet")
    plan = augment_plan(table, kit["root"], AugmentOptions(variants=3, mode="both", seed=7))
    again = augment_plan(table, kit["root"], AugmentOptions(variants=3, mode="both", seed=7))
    other = augment_plan(table, kit["root"], AugmentOptions(variants=3, mode="both", seed=8))
    assert plan.equals(again) and not plan.equals(other)
    rows = plan.to_pylist()
    assert len(rows) == 4 * 3 * 2 and rows[0]["id"] == "u1__vc0" and rows[3]["id"] == "u1__tts0"
    speaker = dict(zip(table.column("id").to_pylist(), table.column("speaker").to_pylist(), strict=True))
    for row in rows:
        assert row["speaker"] != row["source_speaker"] == speaker[row["source_id"]]
        assert (row["target_audio"] if row["mode"] == "vc" else row["prompt_audio"]).endswith(f"{row['prompt_id']}.wav")
        assert row["text"] == table.column("text").to_pylist()[int(row["source_id"][1:]) - 1]
    # spk_a's utterances have two candidates (u3, u4): three variants use both before repeating
    assert {r["prompt_id"] for r in rows if r["source_id"] == "u1" and r["mode"] == "vc"} == {"u3", "u4"}


def test_stage_batch_equals_single(kit) -> None:
    """Items processed together (padded batch of 3 TTS rows) equal their solo runs to 1 LSB; other seed, other audio."""
    import torch

    from pipeline.engine.item import Item
    from pipeline.stages.synthesis_inputs import SynthesisInputStage
    from pipeline.stages.synthesis_model import SynthesisModelStage
    from pipeline.stages.synthesis_output import SynthesisOutputStage
    from pipeline.stages.synthesis_params import GateLimits, InputLimits, ModelPaths, SynthesisDefaults
    from pipeline.stages.vc_f0 import VcF0Stage

    torch.set_num_threads(1)
    p, c = kit["paths"], kit["corpus"]
    models = ModelPaths(p["synthesizer"], p["ttv"], p["denoiser"], {24000: p["speechsr24000"]}, p["w2v"], 1)
    stages = [SynthesisInputStage(default_mode="vc", defaults=SynthesisDefaults(), limits=InputLimits()), VcF0Stage(), SynthesisModelStage(models, modes=("vc", "tts"), max_batch_items=4), SynthesisOutputStage(gates=GateLimits())]
    for stage in stages:
        stage.setup()

    def rows():
        return [
            Item("vc", 0, {"audio": str(c / "u1.wav"), "target_audio": str(c / "u3.wav"), "seed": 5, "denoise_ratio": 0.5}),
            Item("tts_a", 1, {"mode": "tts", "text": "Hello there.", "prompt_audio": str(c / "u4.wav"), "seed": 11, "output_sr": 24000}),
            Item("tts_b", 2, {"mode": "tts", "text": "A much longer sentence than the other one.", "prompt_audio": str(c / "u2.wav"), "seed": 11}),
            Item("tts_c", 3, {"mode": "tts", "text": "Hello there.", "prompt_audio": str(c / "u4.wav"), "seed": 12, "output_sr": 24000}),
        ]

    def run(items):
        for stage in stages:
            stage(items)
        return items

    together = run(rows())
    assert [i.error for i in together] == [None] * 4
    for alone in rows()[::-1]:
        (single,) = run([alone])
        match = next(i for i in together if i.id == single.id)
        x = sf.read(io.BytesIO(single.members["flac"]), dtype="int16")[0].astype(int)
        y = sf.read(io.BytesIO(match.members["flac"]), dtype="int16")[0].astype(int)
        # padded batches round differently: at most 1 LSB of int16 after the peak normalisation
        assert len(x) == len(y) and np.abs(x - y).max() <= 1 and np.mean(x != y) < 0.05, single.id
    audio = {i.id: sf.read(io.BytesIO(i.members["flac"]))[0] for i in together}
    assert not np.array_equal(audio["tts_a"], audio["tts_c"])  # seed 11 vs 12, same text and prompt
    assert together[1].meta["sample_rate"] == 24000 and together[0].meta["duration"] == pytest.approx(1.6)


@pytest.mark.usefixtures("ray_local")
def test_vc_tts_augment_jobs_end_to_end(kit, tmp_path: Path) -> None:
    """VC and TTS manifests with bad rows, augment twice (plan + audio reproducible), exports load back."""
    root, c = kit["root"], kit["corpus"]
    vc = root / "vc.parquet"
    pq.write_table(
        pa.table(
            {
                "id": ["ok1", "ok2", "short_prompt", "corrupt_prompt", "missing_prompt"],
                "audio": [str(c / "u1.wav"), str(c / "u3.wav"), str(c / "u2.wav"), str(c / "u2.wav"), str(c / "u2.wav")],
                "target_audio": [str(c / "u3.wav"), str(c / "u1.wav"), str(c / "short.wav"), str(c / "corrupt.wav"), str(c / "nope.wav")],
                "seed": [1, 2, 3, 4, 5],
                "output_sr": [16000, 24000, 16000, 16000, 16000],
            }
        ),
        vc,
    )
    out_vc = tmp_path / "vc"
    result = invoke(["synthesize", "vc", str(vc), "-o", str(out_vc), *kit["model_args"], "--num-cpus", "4", "--no-progress", "--cpu-actors", "1", "--gpus-per-actor", "0"])
    assert result.exit_code == 0, result.output
    index = OutputDir(str(out_vc)).read_parts(INDEX).to_pylist()
    errors = {r["id"]: r["message"] for r in OutputDir(str(out_vc)).read_parts(ERRORS).to_pylist()}
    assert sorted(r["id"] for r in index) == ["ok1", "ok2"] and sorted(errors) == ["corrupt_prompt", "missing_prompt", "short_prompt"]
    assert "prompts need >= 1 s" in errors["short_prompt"] and "file not found" in errors["missing_prompt"]
    samples = read_samples(out_vc)
    meta = samples["ok2"]["meta"]
    assert meta["sample_rate"] == 24000 and meta["params"] == {"denoise_ratio": 0.0, "output_sr": 24000, "seed": 2, "scale_norm": "max", "noise_scale": 0.333}
    assert set(meta["checkpoints"]) == {"synthesizer", "w2v", "denoiser", "speechsr24k"}
    assert all(len(v["sha256"]) == 64 for k, v in meta["checkpoints"].items() if k != "w2v")
    assert meta["checkpoints"]["w2v"]["backend"] == "packed"  # CPU float32: the packed w2v path
    assert meta["package_version"] and meta["source_id"] == "ok2" and set(meta["gates"]) >= {"passed", "failed", "rms_dbfs", "duration_ratio"}
    wave, rate = sf.read(io.BytesIO(samples["ok1"]["flac"]), dtype="int16")
    assert rate == 16000 and len(wave) == 16000 * 1.6 and np.abs(wave).max() == int(32767 * 0.999)  # upstream's peak normalisation

    tts = root / "tts.parquet"
    long_text = " ".join(["A rather long sentence that keeps going."] * 20)
    pq.write_table(
        pa.table(
            {
                "id": ["t1", "t1_again", "t1_seed2", "too_long", "no_phonemes"],
                "text": ["Hello world, this is a test.", "Hello world, this is a test.", "Hello world, this is a test.", long_text, "🙂🙂"],
                "prompt_audio": [str(c / "u1.wav")] * 5,
                "seed": [7, 7, 8, 7, 7],
                "noise_scale_ttv": [0.5, 0.5, 0.5, 0.5, 0.5],
            }
        ),
        tts,
    )
    out_tts = tmp_path / "tts"
    result = invoke(["synthesize", "tts", str(tts), "-o", str(out_tts), *kit["model_args"], "--num-cpus", "4", "--no-progress", "--gpus-per-actor", "0"])
    assert result.exit_code == 0, result.output
    errors = {r["id"]: r["message"] for r in OutputDir(str(out_tts)).read_parts(ERRORS).to_pylist()}
    assert sorted(errors) == ["no_phonemes", "too_long"], errors
    samples = read_samples(out_tts)
    assert samples["t1"]["flac"] == samples["t1_again"]["flac"] != samples["t1_seed2"]["flac"]
    assert samples["t1"]["meta"]["params"]["noise_scale_ttv"] == 0.5 and "ttv" in samples["t1"]["meta"]["checkpoints"]

    args = ["augment", str(root / "asr.parquet"), *kit["model_args"], "--num-cpus", "4", "--no-progress", "--seed", "3", "--cpu-actors", "1", "--gpus-per-actor", "0"]
    out_a, out_b = tmp_path / "aug_a", tmp_path / "aug_b"
    assert invoke([*args, "-o", str(out_a), "--variants", "2", "--mode", "both"]).exit_code == 0
    scored = ["--score", "vad,bandwidth", "--min-speech-ratio", "1.01"]  # a gate nothing passes: flagged, not dropped
    assert invoke([*args, "-o", str(out_b), "--variants", "1", "--mode", "vc", *scored]).exit_code == 0
    a, b = read_samples(out_a), read_samples(out_b)
    scored_index = OutputDir(str(out_b)).read_parts(INDEX).to_pylist()
    assert len(scored_index) == 4 and all(0.0 <= r["speech_ratio"] <= 1.0 and r["bandwidth_hz"] > 0 for r in scored_index)
    assert all(not r["gates_passed"] and "min_speech_ratio" in r["gate_failures"].split(",") for r in scored_index)
    assert set(b["u1__vc0"]["meta"]["scorers"]) == {"vad", "bandwidth"} and b["u1__vc0"]["meta"]["score_gates"]["limits"] == {"min_speech_ratio": 1.01}
    assert "speech_ratio" not in OutputDir(str(out_a)).read_parts(INDEX).column_names  # no --score: no score columns
    voices = json.loads((out_b / "summary.json").read_text())["prompt_speakers"]
    assert voices["rows_with_prompt"] == 4 and sum(voices["histogram"].values()) == 4 and voices["speakers"] >= 2
    assert len(a) + len(OutputDir(str(out_a)).read_parts(ERRORS)) == 16 and sorted(b) == ["u1__vc0", "u2__vc0", "u3__vc0", "u4__vc0"]
    for sample_id in b:  # same command family, same seed: same prompt and bit-identical audio
        assert b[sample_id]["flac"] == a[sample_id]["flac"] and b[sample_id]["meta"]["prompt_id"] == a[sample_id]["meta"]["prompt_id"]
    plan = pq.read_table(out_a / "plan.parquet").to_pylist()
    assert {r["id"] for r in plan} == set(a) | {r["id"] for r in OutputDir(str(out_a)).read_parts(ERRORS).to_pylist()}
    assert a["u3__tts1"]["meta"]["text"] == "It is easy to tell the depth of a well." and a["u3__tts1"]["meta"]["speaker"] != "spk_b"

    nemo = tmp_path / "export" / "nemo"
    assert invoke(["export", "nemo", str(out_a), "--to", str(nemo), "--include-failed", "--no-progress"]).exit_code == 0
    lines = [json.loads(line) for line in (nemo / "manifest.json").read_text().splitlines()]
    assert len(lines) == len(a)
    for line in lines:
        info = sf.info(line["audio_filepath"])
        assert info.duration == pytest.approx(line["duration"]) and line["text"] == a[line["id"]]["meta"]["text"]
    import lhotse

    lhotse_dir = tmp_path / "export" / "lhotse"
    assert invoke(["export", "lhotse", str(out_a), "--to", str(lhotse_dir), "--include-failed", "--no-progress"]).exit_code == 0
    recordings = lhotse.load_manifest(lhotse_dir / "recordings.jsonl.gz")
    supervisions = lhotse.load_manifest(lhotse_dir / "supervisions.jsonl.gz")
    lhotse.validate_recordings_and_supervisions(recordings, supervisions)
    first = next(iter(recordings))
    assert len(recordings) == len(a) and first.load_audio().shape[-1] == first.num_samples


def test_quality_gates_flag_or_drop() -> None:
    """Silence, NaN, clipping and duration flags; --drop-failed-gates turns them into QualityGate errors."""
    from pipeline.engine.item import Item
    from pipeline.stages.synthesis_output import SynthesisOutputStage
    from pipeline.stages.synthesis_params import GateLimits

    def item(raw: np.ndarray, expected: float) -> Item:
        params = {"scale_norm": "max", "seed": 1, "output_sr": 16000, "denoise_ratio": 0.0}
        return Item("x", 0, {}, data={"raw": raw, "raw_rate": 16000, "expected_seconds": expected, "params": params, "prompt_peak": 0.5})

    t = np.arange(16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    nan = tone.copy()
    nan[5] = np.nan
    cases = {"ok": (tone, 1.0, []), "silent": (tone * 1e-5, 1.0, ["near_silence"]), "nan": (nan, 1.0, ["non_finite"]),
             "clipped": (np.clip(tone * 10, -1, 1), 1.0, ["clipping"]), "short": (tone, 3.0, ["duration_ratio"])}
    for name, (raw, expected, failed) in cases.items():
        flagged = item(raw, expected)
        SynthesisOutputStage(gates=GateLimits())([flagged])
        assert flagged.meta["gates"]["failed"] == failed and flagged.index["gates_passed"] == (not failed), name
        wave = sf.read(io.BytesIO(flagged.members["flac"]), dtype="int16")[0]
        assert np.abs(wave).max() == (int(32767 * 0.999) if name != "nan" else np.abs(wave).max()), name
        dropped = item(raw, expected)
        SynthesisOutputStage(gates=GateLimits(), drop_failed_gates=True)([dropped])
        assert (dropped.error is None) == (not failed) and (not failed or dropped.error.error == "QualityGate"), name


def test_empty_synthesis_output_is_an_error_row_not_an_undecodable_member() -> None:
    """A model output of no samples must not become a FLAC member that does not decode."""
    from pipeline.engine.item import Item
    from pipeline.stages.synthesis_output import SynthesisOutputStage
    from pipeline.stages.synthesis_params import GateLimits

    params = {"scale_norm": "max", "seed": 1, "output_sr": 16000, "denoise_ratio": 0.0}
    empty = Item("x", 0, {}, data={"raw": np.zeros(0, np.float32), "raw_rate": 16000, "expected_seconds": 1.0,
                                   "params": params, "prompt_peak": 0.5})
    SynthesisOutputStage(gates=GateLimits())([empty])
    assert "flac" not in empty.members
    assert empty.error is not None and "need at least one sample" in empty.error.message


def test_inputs_cut_short_are_kept_and_flagged_truncated(tmp_path: Path) -> None:
    """A prompt or VC source whose WAV header claims more frames than the file holds: kept, flagged in meta and index."""
    from pipeline.engine.item import Item
    from pipeline.stages.synthesis_inputs import SynthesisInputStage
    from pipeline.stages.synthesis_params import InputLimits, SynthesisDefaults

    sf.write(tmp_path / "full.wav", voice(2.0, 140), 16000, subtype="PCM_16")
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: 44 + 2 * 24000])  # header + 1.5 s of the declared 2 s
    stage = SynthesisInputStage(default_mode="vc", defaults=SynthesisDefaults(), limits=InputLimits())
    rows = {"whole": ("full.wav", "full.wav"), "cut_prompt": ("full.wav", "cut.wav"), "cut_source": ("cut.wav", "full.wav")}
    items = [Item(name, i, {"audio": str(tmp_path / source), "target_audio": str(tmp_path / prompt)})
             for i, (name, (source, prompt)) in enumerate(rows.items())]
    stage(items)
    by_id = {item.id: item for item in items}
    assert all(item.error is None for item in items)
    assert [by_id[name].index["truncated"] for name in rows] == [False, True, True]
    assert by_id["cut_prompt"].meta["prompt"]["truncated"] and not by_id["cut_prompt"].meta["source"]["truncated"]
    assert by_id["cut_source"].meta["source"]["source_declared_frames"] == 32000
    assert by_id["cut_source"].meta["source"]["seconds"] == 1.5
