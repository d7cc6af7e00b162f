"""Export fixtures: a real `prepare` output (local Ray), and synthesis/upsample-like outputs from the real sink."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # `datasets` reads these at import: never look for a hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from pipeline.export.samples import passes_gates
from pipeline.export.testing import synthetic_output
from pipeline.io.output import INDEX, OutputDir
from pipeline.io.shards import read_samples
from tests.pipeline.conftest import tone

SCORE_FIELD = pa.field("dnsmos_ovrl", pa.float64())  # a column a later job (score) adds


@pytest.fixture(scope="session")
def synth_out(tmp_path_factory) -> Path:
    """30 synthesis samples (every 5th fails a gate), 2 error rows, parts of 8, a score column."""
    root = tmp_path_factory.mktemp("synth") / "out"
    return synthetic_output(root, 30, rows_per_part=8, extra_fields=[(SCORE_FIELD, lambda n: 2.5 + n / 20)])


@pytest.fixture(scope="session")
def upsampled_out(tmp_path_factory) -> Path:
    """An upsample-like output: 48 kHz audio, no gates."""
    root = tmp_path_factory.mktemp("up") / "out"
    return synthetic_output(root, 7, job="upsample", rate=48000, seconds=0.3, rows_per_part=4, fail_gate_every=0, errors=0)


@pytest.fixture(scope="session")
def prepared_out(tmp_path_factory, ray_local) -> Path:
    """A real `prepare` run on local Ray: mixed rates and channels, unsafe ids, text/speaker/language."""
    from pipeline.engine.job import RunOptions
    from pipeline.engine.runner import run_job
    from pipeline.prepare import PrepareConfig, prepare_job

    base = tmp_path_factory.mktemp("prep")
    sf.write(base / "a.wav", tone(0.6, 16000), 16000)
    sf.write(base / "b.flac", tone(0.5, 22050, freq=330.0), 22050)
    sf.write(base / "c.wav", tone(0.4, 44100, channels=2), 44100)
    rows = [
        ("plain_id", "a.wav", "one two", "spk1"),
        ("spk/../../etc/passwd", "b.flac", "three", "spk2"),
        ("ünïcødé 名前", "c.wav", "four five six", "spk1"),
        ("a.b.c/d", "a.wav", "seven", "spk3"),
        ("missing", "nope.wav", "never", "spk3"),
    ]
    table = pa.table(
        {
            "id": [r[0] for r in rows],
            "audio": [str(base / r[1]) for r in rows],
            "text": [r[2] for r in rows],
            "speaker": [r[3] for r in rows],
            "language": ["en-us"] * len(rows),
        }
    )
    pq.write_table(table, base / "manifest.parquet")
    out = base / "out"
    run_job(prepare_job(PrepareConfig(sample_rate=16000)), base / "manifest.parquet", out, RunOptions(rows_per_shard=2, progress=False))
    return out


def stored_samples(output: Path, include_failed: bool = False) -> dict[str, dict]:
    """id -> {row, flac bytes, audio} read straight from the output's index and shards (the reference)."""
    out = OutputDir(str(output))
    rows = out.read_parts(INDEX).to_pylist()
    found = {}
    for row in rows:
        if not include_failed and not passes_gates(row):
            continue
        data = read_samples(str(output / row["shard"]), [row["key"]], ["flac"])[row["key"]]["flac"]
        audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        found[row["id"]] = {"row": row, "flac": data, "audio": audio, "rate": rate}
    return found


def assert_audio_equal(channels_first: np.ndarray, reference: np.ndarray) -> None:
    """A (channels, time) decode holds exactly the samples of the (time, channels) reference."""
    np.testing.assert_array_equal(np.asarray(channels_first, dtype=np.float32).T, reference)
