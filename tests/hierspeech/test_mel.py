"""Mel front-end against the kit's synthetic goldens (filterbank and log-mels)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from hierspeech.mel import MelConfig, MelSpectrogram, mel_filterbank


def test_filterbank_equals_golden(reference_dir: Path) -> None:
    golden = np.load(reference_dir / "golden/synthetic/mel.fbanks_641x80.npy")
    fb = mel_filterbank(641, 0.0, 8000.0, 80, 16000)
    assert fb.dtype == torch.float32 and fb.shape == golden.shape == (641, 80)
    np.testing.assert_allclose(fb.numpy(), golden, rtol=0, atol=1e-6)


def test_config_from_official_json(reference_dir: Path) -> None:
    config = MelConfig.from_json(reference_dir / "configs/hierspeechpp_v2.config.json")
    assert config == MelConfig()


@pytest.mark.parametrize("i", [1, 2])
def test_log_mel_equals_golden(reference_dir: Path, i: int) -> None:
    golden = np.load(reference_dir / f"golden/synthetic/mel.reference_{i}.npy")  # (1, 80, 150)
    wav, _ = sf.read(reference_dir / f"audio/reference_{i}.wav", dtype="float32")
    mel = MelSpectrogram()(torch.from_numpy(wav)[None])
    assert mel.shape == golden.shape == (1, 80, 150)
    np.testing.assert_allclose(mel.numpy(), golden, rtol=0, atol=1e-4)


def test_batched_equals_single(reference_dir: Path) -> None:
    wavs = [sf.read(reference_dir / f"audio/reference_{i}.wav", dtype="float32")[0] for i in (1, 2)]
    module = MelSpectrogram()
    batch = module(torch.from_numpy(np.stack(wavs)))
    for row, wav in zip(batch, wavs, strict=True):
        torch.testing.assert_close(row, module(torch.from_numpy(wav)), rtol=0, atol=1e-5)


def test_buffers_are_not_in_state_dict() -> None:
    module = MelSpectrogram()
    assert dict(module.state_dict()) == {}
    assert {name for name, _ in module.named_buffers()} == {"window", "filterbank"}
    assert json.dumps(module.config.to_dict())
