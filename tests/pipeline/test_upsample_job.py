"""`upsample`: manifest and tar input on a real local Ray with the real SpeechSR weights.

Fidelity is checked against the kit's SpeechSR goldens (reference_1.wav at 48k and 24k) through the whole
job (decode -> model -> normalization -> FLAC -> shard), with tolerances for the FLAC quantisation.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import webdataset as wds

from hierspeech.weights import SPEECHSR_FILES
from pipeline.engine.job import RunOptions
from pipeline.engine.runner import run_job
from pipeline.io.audio import resample
from pipeline.io.shards import scan_tar
from pipeline.io.tar_source import (
    TarSourceError,
    build_tar_manifest,
    expand_tar_spec,
    is_tar_input,
    sample_members,
)
from pipeline.prepare import PrepareConfig, prepare_job
from pipeline.stages.normalize import SILENCE_PEAK, normalize_output
from pipeline.upsample import UpsampleConfig, input_manifest, upsample_job
from tests.conftest import REPO_ROOT
from tests.pipeline.conftest import tone, write_manifest
from tests.pipeline.engine.test_kill_resume import (
    _committed,
    _committed_shards,
    _env,
    _reap_later,
    _reap_orphans,
)

__all__ = ["_reap_orphans"]  # the kill test's fixture that kills Ray processes a SIGKILLed driver leaves


@pytest.fixture(autouse=True)
def _weights(reference_dir, monkeypatch):
    monkeypatch.setenv("HSP_WEIGHTS_DIR", str(reference_dir / "weights"))
    monkeypatch.setenv("HSP_CACHE_DIR", "/nonexistent-no-downloads")


def _read_shards(out: Path, pattern: str = "shards/*.tar") -> dict[str, dict]:
    samples = wds.WebDataset(sorted(glob.glob(f"{out}/{pattern}")), shardshuffle=False, empty_check=False)
    return {s["__key__"]: s for s in samples}


def _flac(data: bytes) -> tuple[np.ndarray, int]:
    return sf.read(io.BytesIO(data), dtype="float64")


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _audio_bytes(samples: np.ndarray, rate: int, fmt: str = "FLAC") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt)
    return buffer.getvalue()


def write_tar(path: Path, samples: list[tuple[str, dict[str, bytes]]]) -> Path:
    """A WebDataset tar that is not one of our outputs (members in the given order)."""
    with tarfile.open(path, "w") as tar:
        for key, members in samples:
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


# -- no Ray ---------------------------------------------------------------------------------------
def test_normalize_modes_silence_and_clipping_levels():
    out = np.array([0.1, -0.4, 0.2], dtype=np.float32)
    same, info = normalize_output(out, 0.8, "none")
    assert same is out and info["gain"] == 1.0
    peak, info = normalize_output(out, 0.8, "peak")
    assert np.abs(peak).max() == pytest.approx(0.999) and info["gain"] == pytest.approx(0.999 / 0.4)
    source, info = normalize_output(out, 0.2, "source")
    assert np.abs(source).max() == pytest.approx(0.2) and info["peak"] == pytest.approx(0.2)
    capped, _ = normalize_output(out, 1.0, "source")  # a clipped source: target capped at 0.999
    assert np.abs(capped).max() == pytest.approx(0.999)
    for mode in ("peak", "source"):  # silence: no division by a near-zero peak, digital silence instead
        silent, info = normalize_output(np.full(3, 1e-6, np.float32), SILENCE_PEAK / 2, mode)
        assert not silent.any() and info["silent_source"] and info["gain"] == 0.0
    zero, info = normalize_output(np.zeros(3, np.float32), 0.5, "peak")  # a zero output is not divided by 0
    assert not zero.any() and np.isfinite(info["gain"])
    with pytest.raises(ValueError, match="unknown normalization"):
        normalize_output(out, 0.5, "loudness")


def test_tar_source_offsets_ids_and_specs(tmp_path):
    flac = _audio_bytes(tone(0.1, 16000), 16000)
    first = write_tar(tmp_path / "a.tar", [
        ("s1", {"flac": flac, "json": b'{"id": "spk/utt 1", "text": "hi"}', "txt": b"hi", "seg.npy": _npy(np.arange(3))}),
        ("dir/s2", {"wav": _audio_bytes(tone(0.1, 16000), 16000, "WAV"), "txt": b"x"}),
    ])
    write_tar(tmp_path / "b.tar", [("s3", {"txt": b"no audio"})])
    samples = scan_tar(str(first))
    assert [s.key for s in samples] == ["s1", "dir/s2"]
    assert samples[0].members.keys() == {"flac", "json", "txt", "seg.npy"} and samples[1].audio_member == "wav"
    table = build_tar_manifest(f"{tmp_path}/{{a,b}}.tar")
    assert table.column("id").to_pylist() == ["spk/utt 1", "dir/s2", "s3"]  # json id, else the key
    assert table.column("tar_member").to_pylist() == ["flac", "wav", None]
    members = sample_members(table.slice(0, 1).to_pylist()[0])
    assert members["flac"] == flac and members["txt"] == b"hi" and np.load(io.BytesIO(members["seg.npy"])).tolist() == [0, 1, 2]
    assert expand_tar_spec(str(tmp_path)) == expand_tar_spec(f"{tmp_path}/*.tar") == [str(first), str(tmp_path / "b.tar")]
    assert is_tar_input(str(tmp_path)) and is_tar_input(f"{tmp_path}/x-{{1,2}}.tar") and not is_tar_input("m.parquet")
    with pytest.raises(TarSourceError, match=r"no \.tar shards"):
        expand_tar_spec(f"{tmp_path}/none-*.tar")
    # a shard of one of our outputs that its index does not list (partial output) is refused
    out = tmp_path / "out"
    (out / "shards").mkdir(parents=True)
    (out / "index.parquet").mkdir()
    write_tar(out / "shards" / "shard-x.tar", [("k", {"flac": flac})])
    with pytest.raises(TarSourceError, match="not a committed shard"):
        build_tar_manifest(f"{out}/shards/*.tar")


def test_cli_refuses_missing_input_and_mismatched_weights(tmp_path, reference_dir):
    from click.testing import CliRunner

    from pipeline.cli import main

    runner = CliRunner()
    result = runner.invoke(main, ["upsample", str(tmp_path / "nope.parquet"), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1 and "input not found" in result.output
    wrong = reference_dir / "weights" / "speechsr24k" / "G_340000.pth"
    result = runner.invoke(main, ["upsample", str(tmp_path), "-o", str(tmp_path / "o"), "--checkpoint", str(wrong)])
    assert result.exit_code == 1 and "is a 24000 Hz SpeechSR" in result.output
    result = runner.invoke(main, ["upsample", f"{tmp_path}/*.tar", "-o", str(tmp_path / "o"), "--sr", "24000"])
    assert result.exit_code == 1 and "no .tar shards match" in result.output


# -- real Ray ---------------------------------------------------------------------------------------
def test_manifest_input_48k_golden_levels_and_bad_inputs(tmp_path, reference_dir, ray_local):
    d = tmp_path / "corpus"
    d.mkdir()
    rng = np.random.default_rng(0)
    sf.write(d / "narrow8k.wav", tone(0.2, 8000), 8000)
    sf.write(d / "stereo44k.wav", tone(0.2, 44100, channels=2), 44100)
    sf.write(d / "silent.wav", np.zeros(3200, np.float32), 16000)
    sf.write(d / "clipped.wav", np.clip(5 * tone(0.2, 16000), -1, 1), 16000)
    sf.write(d / "noise.flac", (0.2 * rng.standard_normal(3200)).astype(np.float32), 16000)
    nan = tone(0.2, 16000)
    nan[50] = np.nan
    sf.write(d / "nan.wav", nan, 16000, subtype="FLOAT")
    reference = reference_dir / "audio" / "reference_1.wav"
    files = {"ref1": str(reference), "narrow8k": str(d / "narrow8k.wav"), "stereo": str(d / "stereo44k.wav"),
             "silent": str(d / "silent.wav"), "clipped": str(d / "clipped.wav"), "noise": str(d / "noise.flac"),
             "nan": str(d / "nan.wav"), "missing": str(d / "missing.wav")}
    manifest = write_manifest(tmp_path / "m.parquet", {k: {"audio": v} for k, v in files.items()})
    out = tmp_path / "out"
    summary = run_job(upsample_job(UpsampleConfig(sample_rate=48000)), manifest, out, RunOptions(rows_per_shard=4, progress=False))

    index = {r["id"]: r for r in pq.read_table(out / "index.parquet").to_pylist()}
    errors = {r["id"]: r for r in pq.read_table(out / "errors.parquet").to_pylist()}
    assert sorted([*index, *errors]) == sorted(files) and summary["complete"]
    assert set(errors) == {"nan", "missing"}
    assert "NaN/inf" in errors["nan"]["message"] and "not found" in errors["missing"]["message"]
    samples = _read_shards(out)
    sha48 = SPEECHSR_FILES["48k"][0].sha256
    for sample_id, row in index.items():
        audio, rate = _flac(samples[row["key"]]["flac"])
        meta = json.loads(samples[row["key"]]["json"])
        source, source_rate = sf.read(files[sample_id], dtype="float32", always_2d=True)
        n16 = len(resample(np.ascontiguousarray(source[:, 0]), source_rate, 16000))
        assert rate == row["sample_rate"] == 48000 and len(audio) == 3 * n16, sample_id  # 48k: 3 T
        assert meta["model"]["variant"] == "48k" and meta["model"]["checkpoint_sha256"] == sha48
        assert meta["normalization"]["mode"] == row["normalize"] == "source" and meta["source"] == files[sample_id]
        assert meta["source_sample_rate"] == row["source_sample_rate"] == source_rate
        if sample_id not in ("silent",):
            assert np.abs(audio).max() == pytest.approx(min(row["source_peak"], 0.999), abs=1e-4), sample_id
    golden = np.load(reference_dir / "golden" / "speechsr" / "reference_1.sr48.npy").ravel()
    audio, _ = _flac(samples["ref1"]["flac"])
    gain = index["ref1"]["gain"]
    assert gain == pytest.approx(index["ref1"]["source_peak"] / np.abs(golden).max(), rel=1e-4)
    error = np.abs(audio - gain * golden).max()
    assert error <= 1e-4 * gain + 1 / 32768, error  # model tolerance + 16-bit quantisation
    assert index["narrow8k"]["narrowband_source"] and "narrowband_source" in json.loads(samples["narrow8k"]["json"])["flags"]
    assert index["stereo"]["source_channels"] == 2 and json.loads(samples["stereo"]["json"])["channel_policy"] == "first"
    silent, _ = _flac(samples["silent"]["flac"])
    assert index["silent"]["silent_source"] and index["silent"]["gain"] == 0.0 and not silent.any()
    assert index["clipped"]["clipped_source"] and not index["noise"]["clipped_source"]
    assert not any(index[i]["narrowband_source"] or index[i]["silent_source"] for i in ("ref1", "noise", "stereo"))


def test_tar_input_24k_passthrough_and_golden(tmp_path, reference_dir, ray_local):
    d = tmp_path / "corpus"
    d.mkdir()
    sf.write(d / "b22k.flac", tone(0.3, 22050), 22050)
    cases = {"spk1/ref1": {"audio": str(reference_dir / "audio" / "reference_1.wav")}, "spk2/b": {"audio": str(d / "b22k.flac")}}
    prepared = tmp_path / "prepared"
    run_job(prepare_job(PrepareConfig(sample_rate=16000)), write_manifest(tmp_path / "m.parquet", cases), prepared, RunOptions(rows_per_shard=1, progress=False))
    shards = sorted(p.name for p in (prepared / "shards").glob("*.tar"))
    assert len(shards) == 2
    extra = {"txt": b"hello", "seg.npy": _npy(np.arange(5, dtype=np.int16)), "cls": b"3"}
    foreign = write_tar(d / "foreign.tar", [
        ("fa", {"flac": _audio_bytes(tone(0.25, 16000), 16000), "json": b'{"id": "foreign/a", "speaker": "x"}', **extra}),
        ("fb", {"wav": _audio_bytes(tone(0.125, 16000, freq=330), 16000, "WAV"), "txt": b"b"}),
        ("fc", {"txt": b"no audio here"}),
    ])
    spec = f"{{{prepared}/shards/{{{','.join(shards)}}},{foreign}}}"  # nested brace pattern over two folders
    out = tmp_path / "out"
    job = upsample_job(UpsampleConfig(sample_rate=24000, normalize="none", bits=24))
    summary = run_job(job, input_manifest(spec, str(out)), out, RunOptions(rows_per_shard=2, progress=False))

    index = {r["id"]: r for r in pq.read_table(out / "index.parquet").to_pylist()}
    errors = {r["id"]: r for r in pq.read_table(out / "errors.parquet").to_pylist()}
    assert sorted(index) == ["fb", "foreign/a", "spk1/ref1", "spk2/b"] and summary["complete"]
    assert list(errors) == ["fc"] and "no audio member" in errors["fc"]["message"]
    samples = _read_shards(out)
    source_samples = {**_read_shards(prepared), **_read_shards(d, "*.tar")}
    for sample_id, row in index.items():
        sample, source = samples[row["key"]], source_samples[row["source_key"]]
        meta = json.loads(sample["json"])
        audio, rate = _flac(sample["flac"])
        ext = "wav" if sample_id == "fb" else "flac"
        n16 = len(sf.read(io.BytesIO(source[ext]))[0])
        assert rate == 24000 and len(audio) == int(1.5 * n16), sample_id  # 24k: int(1.5 T)
        assert meta["source_shard"] == row["source_shard"] and meta["source_key"] == row["source_key"]
        assert meta["source_member"] == ext and meta["model"]["variant"] == "24k"
        passthrough = {k for k in source if not k.startswith("__") and k not in (ext, "json")}
        assert {k for k in sample if not k.startswith("__")} == passthrough | {"flac", "json"}
        for member in passthrough:
            assert sample[member] == source[member], (sample_id, member)  # byte-identical
        if "json" in source:
            assert meta["source_meta"] == json.loads(source["json"])
    assert index["spk1/ref1"]["text"] is None and index["foreign/a"]["speaker"] == "x"
    assert index["spk1/ref1"]["source_shard"].startswith(str(prepared / "shards"))
    golden = np.load(reference_dir / "golden" / "speechsr" / "reference_1.sr24.npy").ravel()
    audio, _ = _flac(samples[index["spk1/ref1"]["key"]]["flac"])
    assert np.abs(audio - golden).max() <= 1e-4 + 2.0**-23  # model tolerance + 24-bit quantisation


def _upsample_command(spec: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", "upsample", spec, "-o", str(out), "--sr", "24000",
            "--gpus-per-actor", "0.5", "--rows-per-shard", "2", "--num-cpus", "4", "--no-progress"]


def test_upsample_cli_driver_sigkill_then_rerun_is_exactly_once(tmp_path, reference_dir):
    d = tmp_path / "tars"
    d.mkdir()
    expected = []
    for shard in range(4):
        rows = []
        for i in range(9):
            key = f"s{shard}_{i}"
            rows.append((key, {"flac": _audio_bytes(tone(0.3, 16000, freq=200 + 10 * i), 16000), "txt": key.encode()}))
            expected.append(key)
        write_tar(d / f"in-{shard}.tar", rows)
    out = tmp_path / "out"
    env = {**_env(), "HSP_WEIGHTS_DIR": str(reference_dir / "weights")}
    log = open(tmp_path / "killed.log", "wb")  # noqa: SIM115 -- closed below; a pipe could fill and stall the driver
    proc = subprocess.Popen(_upsample_command(str(d), out), env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 240
        while not _committed(out) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "the job ended before its first commit could be interrupted"
        # The whole machine dies: the driver and the Ray processes it started (otherwise tasks already
        # queued would go on committing parts after the driver's death, and nothing would be left to resume).
        tree = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGKILL)
        for process in tree:
            with contextlib.suppress(psutil.Error):
                process.kill()
        _reap_later(tree)
        proc.wait(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        log.close()
    before = _committed_shards(out)
    assert 1 <= len(_committed(out)) < 18, "the kill came too late to test a resume"
    done = subprocess.run(_upsample_command(str(d), out), env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    written = pq.read_table(out / "index.parquet").column("id").to_pylist()
    assert sorted(written) == sorted(expected) and len(set(written)) == len(written)
    assert pq.read_table(out / "errors.parquet").num_rows == 0
    assert _committed_shards(out).items() >= before.items(), "a finished shard was rewritten"
    assert {f"shards/{p.name}" for p in (out / "shards").iterdir()} == set(pq.read_table(out / "index.parquet").column("shard").to_pylist())
    keys = list(_read_shards(out))
    assert sorted(keys) == sorted(expected) and not list(out.rglob(".tmp-*"))
    assert json.loads((out / "job.json").read_text())["options"]["sample_rate"] == 24000
    assert pa.types.is_string(pq.read_table(out / "_state" / "input_manifest.parquet").schema.field("tar_members").type)
    assert os.path.getsize(out / "summary.json") > 0
