"""Hostile and odd inputs through real jobs on a real local Ray: a clear error row, never a hang or a broken success.

Each case failed before: a FIFO hung the job (and the good rows of its block never landed), /dev/zero
was read until the node ran out of memory, a 1-sample file became a 0-byte FLAC, a streamed FLAC was
"576460752303423.5 s long", a WAV cut short passed unflagged, a file:// manifest resolved its relative
paths against the working directory, a categorical id column was refused, a 10 ms clip failed inside
torch, and upsample copied the byte ranges a user's manifest named.
"""

from __future__ import annotations

import glob
import io
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import webdataset as wds

from pipeline.engine.job import RunOptions
from pipeline.engine.runner import run_job
from pipeline.extract import ExtractConfig, extract_job
from pipeline.io.manifest import ManifestError
from pipeline.prepare import PrepareConfig, prepare_job
from tests.pipeline.conftest import tone
from tests.pipeline.io.test_audio import _flac_without_length


def _outcome(out) -> tuple[dict, dict]:
    index = {r["id"]: r for r in pq.read_table(out / "index.parquet").to_pylist()}
    errors = {r["id"]: r for r in pq.read_table(out / "errors.parquet").to_pylist()}
    return index, errors


def _samples(out) -> dict[str, dict]:
    shards = sorted(glob.glob(f"{out}/shards/*.tar"))
    return {json.loads(s["json"])["id"]: s for s in wds.WebDataset(shards, shardshuffle=False, empty_check=False)}


@pytest.mark.timeout(240)
def test_prepare_over_hostile_files_ends_every_row_once_and_lands_the_good_ones(tmp_path, ray_local, monkeypatch):
    corpus = tmp_path / "sub dir"  # a space: file:// URIs percent-encode it
    (corpus / "clips").mkdir(parents=True)
    sf.write(corpus / "clips" / "good.wav", tone(1.0, 16000), 16000)
    sf.write(corpus / "clips" / "stereo44k.wav", tone(0.5, 44100, channels=2), 44100)
    os.mkfifo(corpus / "pipe.wav")
    (corpus / "link_to_pipe.wav").symlink_to(corpus / "pipe.wav")
    (corpus / "folder.wav").mkdir()
    sf.write(corpus / "one.wav", np.array([0.2], dtype=np.float32), 44100)
    _flac_without_length(corpus / "stream.flac", tone(2.5, 22050), 22050)
    sf.write(corpus / "full.wav", tone(1.0, 16000), 16000, subtype="PCM_16")
    (corpus / "cut.wav").write_bytes((corpus / "full.wav").read_bytes()[: 44 + 2 * 4000])
    uri = lambda path: "file://" + str(path).replace(" ", "%20")  # noqa: E731
    rows = {  # id -> (audio as written in the manifest, expected: samples at 16 kHz, or a reason)
        "good": ("clips/good.wav", 16000),  # relative to the manifest's folder, not the working dir
        "good_uri": (uri(corpus / "clips" / "good.wav"), 16000),
        "stereo44k": ("clips/stereo44k.wav", 8000),
        "fifo": ("pipe.wav", "FIFO"),
        "link_to_fifo": ("link_to_pipe.wav", "FIFO"),
        "dev_zero": ("/dev/zero", "character device"),
        "folder": ("folder.wav", "directory"),
        "one_sample": ("one.wav", "no sample at 16000 Hz"),
        "streamed_flac": ("stream.flac", 40000),
        "cut_wav": ("cut.wav", 4000),
    }
    ids = list(rows)
    table = pa.table({"id": pa.array(ids).dictionary_encode(), "audio": [rows[i][0] for i in ids]})
    pq.write_table(table, corpus / "m.parquet")
    monkeypatch.chdir(tmp_path)  # relative paths must not resolve here

    out = tmp_path / "out"
    summary = run_job(prepare_job(PrepareConfig(sample_rate=16000, max_seconds=60)), uri(corpus / "m.parquet"), out, RunOptions(rows_per_shard=4, progress=False))

    index, errors = _outcome(out)
    assert sorted([*index, *errors]) == sorted(ids) and not set(index) & set(errors)  # every row exactly once
    assert summary["complete"] and summary["errors"] == len(errors)
    for sample_id, (_, expect) in rows.items():
        if isinstance(expect, str):
            assert expect in errors[sample_id]["message"], errors[sample_id]
            assert errors[sample_id]["stage"] == "decode"
    landed = {i for i, (_, expect) in rows.items() if isinstance(expect, int)}
    assert set(index) == landed
    samples = _samples(out)
    for sample_id in landed:
        audio, rate = sf.read(io.BytesIO(samples[sample_id]["flac"]), dtype="float32")
        meta = json.loads(samples[sample_id]["json"])
        assert rate == 16000 and audio.shape == (rows[sample_id][1],) == (meta["num_samples"],), sample_id
        assert meta["truncated"] == index[sample_id]["truncated"] == (sample_id == "cut_wav"), sample_id
    cut = json.loads(samples["cut_wav"]["json"])
    assert cut["source_declared_frames"] == 16000 and cut["source_duration"] == 0.25


@pytest.mark.timeout(240)
def test_extract_names_the_feature_and_the_minimum_for_a_10_ms_clip(tmp_path, ray_local):
    sf.write(tmp_path / "short.wav", tone(0.01, 16000), 16000)
    sf.write(tmp_path / "ok.wav", tone(0.5, 16000), 16000)
    pq.write_table(pa.table({"id": ["short", "ok"], "audio": ["short.wav", "ok.wav"]}), tmp_path / "m.parquet")
    config = ExtractConfig(features=("mel",), cpu_actors=1)
    run_job(extract_job(config), tmp_path / "m.parquet", tmp_path / "out", RunOptions(progress=False))
    index, errors = _outcome(tmp_path / "out")
    assert set(index) == {"ok"} and index["ok"]["mel_frames"] == 25 and index["ok"]["truncated"] is False
    message = errors["short"]["message"]
    assert errors["short"]["stage"] == "decode" and "Padding size" not in message
    assert "too short: 160 samples (10.0 ms at 16 kHz); the mel feature" in message and "at least 641 samples" in message


def test_upsample_refuses_internal_tar_columns_in_a_user_manifest(tmp_path, reference_dir, monkeypatch):
    from pipeline.upsample import UpsampleConfig, upsample_job

    monkeypatch.setenv("HSP_WEIGHTS_DIR", str(reference_dir / "weights"))
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"not for the output" * 100)
    table = pa.table({"id": ["x"], "audio": [str(secret)], "tar_key": ["x"], "tar_member": ["flac"],
                      "tar_members": [json.dumps({"flac": [0, 100], "txt": [0, 1800]})]})
    pq.write_table(table, tmp_path / "m.parquet")
    job = upsample_job(UpsampleConfig(sample_rate=24000, checkpoint=str(reference_dir / "weights" / "speechsr24k" / "G_340000.pth")))
    with pytest.raises(ManifestError, match=r"column 'tar_members': column is internal") as caught:
        run_job(job, tmp_path / "m.parquet", tmp_path / "out", RunOptions(progress=False))
    assert {p.column for p in caught.value.report.errors} == {"tar_key", "tar_member", "tar_members"}
    assert not (tmp_path / "out").exists()  # refused before any work
