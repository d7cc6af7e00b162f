"""Weight resolution: explicit path, HSP_WEIGHTS_DIR, verified download into the cache, offline errors."""

from __future__ import annotations

import shutil
import urllib.error
from pathlib import Path

import pytest

from hierspeech import weights
from hierspeech.weights import WeightsError, resolve_speechsr_checkpoint


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv(weights.ENV_WEIGHTS_DIR, raising=False)
    monkeypatch.setenv(weights.ENV_CACHE_DIR, str(tmp_path / "cache"))


def test_sha256_table_matches_kit(reference_dir: Path) -> None:
    """The hard-coded hashes equal the kit's LICENSE-weights.txt and the kit files themselves."""
    listing = (reference_dir / "weights/LICENSE-weights.txt").read_text()
    for files in weights.SPEECHSR_FILES.values():
        for item in files:
            assert item.sha256 in listing
            assert weights.sha256_file(reference_dir / "weights" / item.relpath) == item.sha256


def test_explicit_path(reference_dir: Path) -> None:
    path = reference_dir / "weights/speechsr24k/G_340000.pth"
    assert resolve_speechsr_checkpoint("24k", path) == path
    with pytest.raises(WeightsError, match="not found"):
        resolve_speechsr_checkpoint("24k", reference_dir / "nope.pth")


def test_weights_dir_env(monkeypatch, reference_dir: Path) -> None:
    monkeypatch.setenv(weights.ENV_WEIGHTS_DIR, str(reference_dir / "weights"))
    assert resolve_speechsr_checkpoint("48k") == reference_dir / "weights/speechsr48k/G_100000.pth"
    assert resolve_speechsr_checkpoint(24000) == reference_dir / "weights/speechsr24k/G_340000.pth"


def test_weights_dir_env_missing_file(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(weights.ENV_WEIGHTS_DIR, str(tmp_path))
    with pytest.raises(WeightsError, match=r"speechsr48k/G_100000\.pth"):
        resolve_speechsr_checkpoint("48k")


def test_download_is_verified(monkeypatch, reference_dir: Path, tmp_path: Path) -> None:
    """A 'download' from a file:// mirror of the kit lands in the cache, verified."""
    monkeypatch.setattr(weights, "UPSTREAM_RAW", (reference_dir / "weights").as_uri())
    path = resolve_speechsr_checkpoint("48k")
    assert path == tmp_path / "cache/speechsr48k/G_100000.pth"
    assert path.with_name("config.json").is_file()
    assert resolve_speechsr_checkpoint("48k", download=False) == path  # cached: verified, no download


def test_corrupted_download_is_deleted(monkeypatch, reference_dir: Path, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    shutil.copytree(reference_dir / "weights", mirror)
    data = bytearray((mirror / "speechsr24k/G_340000.pth").read_bytes())
    data[1000] ^= 0xFF
    (mirror / "speechsr24k/G_340000.pth").write_bytes(bytes(data))
    monkeypatch.setattr(weights, "UPSTREAM_RAW", mirror.as_uri())
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        resolve_speechsr_checkpoint("24k")
    assert not (tmp_path / "cache/speechsr24k/G_340000.pth").exists()
    assert not list((tmp_path / "cache/speechsr24k").glob("*.part"))


def test_corrupted_cached_file_is_deleted(reference_dir: Path, tmp_path: Path) -> None:
    cached = tmp_path / "cache/speechsr48k"
    cached.mkdir(parents=True)
    shutil.copy(reference_dir / "weights/speechsr48k/config.json", cached / "config.json")
    (cached / "G_100000.pth").write_bytes(b"truncated")
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        resolve_speechsr_checkpoint("48k", download=False)
    assert not (cached / "G_100000.pth").exists()


def test_offline_error_says_to_set_weights_dir(monkeypatch) -> None:
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(weights.urllib.request, "urlopen", offline)
    with pytest.raises(WeightsError, match=weights.ENV_WEIGHTS_DIR) as info:
        resolve_speechsr_checkpoint("24k")
    assert "could not download https://github.com/sh-lee-prml/HierSpeechpp/raw/main/" in str(info.value)


def test_unknown_variant() -> None:
    with pytest.raises(ValueError, match="24k"):
        resolve_speechsr_checkpoint("32k")
