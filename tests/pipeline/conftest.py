"""Pipeline test fixtures: one real local Ray per session, and a corpus of good and bad audio."""

from __future__ import annotations

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REPO_ROOT


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray cluster on loopback, shared by the session's job tests."""
    import ray

    from pipeline.engine.ray_env import init_ray

    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]).strip(os.pathsep)
    init_ray(num_cpus=4)
    yield ray
    ray.shutdown()


def tone(seconds: float, rate: int, freq: float = 220.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return mono if channels == 1 else np.stack([mono * (1.0 - 0.5 * c) for c in range(channels)], axis=1)


@pytest.fixture()
def mixed_corpus(tmp_path: Path) -> dict[str, dict]:
    """Files covering every bad-input case of the Foundation issue; returns id -> expectation."""
    d = tmp_path / "corpus"
    d.mkdir()
    cases: dict[str, dict] = {}

    def add(sample_id: str, name: str | None, expect: str, **extra):
        cases[sample_id] = {"audio": None if name is None else str(d / name), "expect": expect, **extra}

    sf.write(d / "good16k.wav", tone(1.0, 16000), 16000)
    add("good16k", "good16k.wav", "ok", samples=16000)
    sf.write(d / "good22k.flac", tone(0.5, 22050), 22050)
    add("good22k", "good22k.flac", "ok", samples=8000)
    sf.write(d / "narrow8k.wav", tone(0.75, 8000), 8000)
    add("narrow8k", "narrow8k.wav", "ok", samples=12000)
    sf.write(d / "stereo44k.wav", tone(0.5, 44100, channels=2), 44100)
    add("stereo44k", "stereo44k.wav", "ok", samples=8000)
    sf.write(d / "speech.mp3", tone(1.0, 16000), 16000, format="MP3")
    add("mp3", "speech.mp3", "ok", samples=None)  # mp3 adds encoder delay/padding
    sf.write(d / "long.wav", tone(12.0, 16000), 16000)
    add("long", "long.wav", "error", reason="over the limit")
    add("missing", "does_not_exist.wav", "error", reason="not found")
    (d / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 10)
    add("corrupt", "corrupt.wav", "error", reason="cannot decode")
    sf.write(d / "empty.wav", np.zeros((0,), dtype=np.float32), 16000)
    add("empty", "empty.wav", "error", reason="no samples")
    bad = tone(0.5, 16000)
    bad[100] = np.nan
    bad[200] = np.inf
    sf.write(d / "nan.wav", bad, 16000, subtype="FLOAT")
    add("nan", "nan.wav", "error", reason="NaN/inf")
    add("null_audio", None, "error", reason="null")
    sf.write(d / "weird.wav", tone(0.25, 16000), 16000)
    add("spk/../../etc/passwd", "weird.wav", "ok", samples=4000)
    add("a.b.c/d", "weird.wav", "ok", samples=4000)
    add("ünïcødé 名前", "weird.wav", "ok", samples=4000)
    add("..", "weird.wav", "ok", samples=4000)
    return cases


def write_manifest(path: Path, cases: dict[str, dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = list(cases)
    pq.write_table(pa.table({"id": ids, "audio": [cases[i]["audio"] for i in ids]}), path)
    return path
