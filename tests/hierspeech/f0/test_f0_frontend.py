"""F0 front-end: every YAAPT golden of the kit, the length rule, and loud failures.

The goldens come from amfm_decompy on one machine; pYAAPT is not bit-reproducible across BLAS
kernels (e.g. OPENBLAS_CORETYPE=Haswell moves 1-3 near-tie frames), so amfm's F0 is compared with
them by the parity criteria of `hierspeech.testing.f0`; shapes, dtypes and lengths stay exact.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import hierspeech.f0 as f0_frontend
from hierspeech.f0 import (
    F0BackendUnavailableError,
    F0ExtractionError,
    extract_f0,
    normalize_f0_to_target,
    num_frames,
    pad_for_yaapt,
    vc_log_f0,
)
from hierspeech.testing.f0 import assert_f0_parity


def _audio(reference_dir: Path, i: int) -> np.ndarray:
    wav, sr = sf.read(reference_dir / "audio" / f"reference_{i}.wav", dtype="float32")
    assert sr == 16000
    return wav


@pytest.fixture(scope="module")
def index(reference_dir: Path) -> dict:
    return json.loads((reference_dir / "golden/yaapt/index.json").read_text())


@pytest.mark.parametrize("i", [1, 2, 3, 4])
@pytest.mark.parametrize("variant", ["extract_f0", "inference_vc"])
def test_yaapt_goldens(reference_dir: Path, index: dict, i: int, variant: str) -> None:
    name = f"reference_{i}.{variant}.f0.npy"
    golden = np.load(reference_dir / "golden/yaapt" / name)  # (1, N) float32
    f0_max = index["procedure"][variant].get("f0_max")
    f0 = extract_f0(_audio(reference_dir, i), f0_max=f0_max, backend="amfm")  # the reference implementation
    assert f0.dtype == np.float32
    assert f0.shape == golden.shape[1:] == (608,)
    assert np.all(f0 >= 0)
    assert_f0_parity(golden[0], f0, name)  # at most 6 of 608 frames may differ at all


@pytest.mark.parametrize("backend", ["amfm", "fast"])
def test_vc_denormalised_f0_golden(reference_dir: Path, backend: str) -> None:
    """The whole VC F0 path (source rescaled to the prompt's voiced mean/std) of both backends.

    A moved frame also moves the voiced mean and std a little, so every voiced frame may differ by a
    fraction of a Hz: no bound on frames that differ, the other criteria hold (in Hz).
    """
    golden = np.load(reference_dir / "golden/yaapt/vc_ref2_to_ref1.denorm_f0.npy")  # (1, 1, 608)
    log_f0 = vc_log_f0(_audio(reference_dir, 2), _audio(reference_dir, 1), backend=backend)
    assert log_f0.dtype == np.float32 and log_f0.shape == (608,)
    assert_f0_parity(np.expm1(golden[0, 0].astype(np.float64)), np.expm1(log_f0.astype(np.float64)), f"VC F0 ({backend})", max_frames_off_share=None)


def test_padding_rule() -> None:
    wav = np.arange(1, 2561, dtype=np.float32)  # already a multiple of 1280: a full 1280 more
    padded = pad_for_yaapt(wav)
    assert padded.dtype == np.float64
    assert padded.shape == (160 + 2560 + 1280 + 160,)
    assert np.all(padded[:160] == 0) and np.all(padded[160 + 2560 :] == 0)
    np.testing.assert_array_equal(padded[160 : 160 + 2560], wav)
    assert pad_for_yaapt(wav, pad_end=False).shape == (160 + 2560 + 160,)


def test_length_rule_of_the_kit(index: dict) -> None:
    rule = index["checks"]["length_rule"]
    for n, row in rule.items():
        assert num_frames(int(n)) == row["N"] == row["padded"] // 80
        assert num_frames(int(n), pad_end=False) == row["L_div_80"]


@pytest.mark.parametrize("n", [12345, 16000])
def test_length_rule_on_noise(index: dict, n: int) -> None:
    wav = np.random.default_rng(0).standard_normal(n) * 0.1
    assert extract_f0(wav).shape == (index["checks"]["length_rule"][str(n)]["N"],)


def test_backend_failure_is_loud(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(signal: np.ndarray, sample_rate: int, **params: float) -> np.ndarray:
        raise IndexError("boom")

    monkeypatch.setattr(f0_frontend, "get_backend", lambda name: broken)
    with pytest.raises(F0ExtractionError, match="boom"):
        extract_f0(np.zeros(16000, dtype=np.float32))


def test_wrong_frame_count_is_loud(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(f0_frontend, "get_backend", lambda name: lambda s, sr, **p: np.zeros(5))
    with pytest.raises(F0ExtractionError, match="expected 208"):
        extract_f0(np.zeros(16000, dtype=np.float32))


def test_missing_backend_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(f0_frontend._BACKENDS, "fast", ("hierspeech.f0._no_such_module", "yaapt_fast"))
    with pytest.raises(F0BackendUnavailableError, match="'fast' is unavailable"):
        extract_f0(np.zeros(16000, dtype=np.float32), backend="fast")
    with pytest.raises(F0BackendUnavailableError, match="unknown F0 backend"):
        extract_f0(np.zeros(16000, dtype=np.float32), backend="crepe")


def test_normalize_edge_cases() -> None:
    source = np.array([0.0, 100.0, 200.0, 0.0])
    out = normalize_f0_to_target(source, np.array([0.0, 150.0, 250.0]))
    np.testing.assert_allclose(np.exp(out) - 1, [0.0, 150.0, 250.0, 0.0], atol=1e-4)
    with pytest.raises(F0ExtractionError, match="no voiced frame"):
        normalize_f0_to_target(source, np.zeros(3))
    with pytest.raises(F0ExtractionError, match="constant"):
        normalize_f0_to_target(np.array([0.0, 100.0, 100.0]), np.array([150.0, 250.0]))
    np.testing.assert_array_equal(normalize_f0_to_target(np.zeros(4), np.array([120.0])), np.zeros(4))
