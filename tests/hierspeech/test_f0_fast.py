"""hierspeech.f0.fast.yaapt_fast against the kit's YAAPT goldens and against amfm_decompy's pYAAPT itself.

Parity thresholds (hierspeech.testing.f0, as docs/f0.md): voicing decisions agree on >= 99.5% of frames;
on frames voiced in both, |dF0| <= 1 Hz on >= 99% and median relative error <= 0.1%. On the kit wavs we also bound the number of
frames that differ at all (pYAAPT's dynamic programme has exact ties that ulp-level differences in the
NCCF can resolve the other way; see the module docstring of hierspeech/f0/fast.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bench.f0_corpus import CONDITIONS, make_corpus, product_padding
from hierspeech.f0 import fast
from hierspeech.f0.fast import yaapt_fast, yaapt_fast_batch
from hierspeech.testing.f0 import assert_f0_parity

BASE = {"frame_length": 20.0, "frame_space": 5.0, "nccf_thresh1": 0.25, "tda_frame_length": 25.0}
VARIANTS = {"extract_f0": BASE, "inference_vc": {**BASE, "f0_max": 1100.0}}
MIN_EXACT_KIT = 0.97  # fraction of kit frames equal to the golden bit for bit (float32); observed >= 0.993


def amfm_f0(y: np.ndarray, params: dict) -> np.ndarray:
    from amfm_decompy import basic_tools, pYAAPT

    with np.errstate(all="ignore"):
        return pYAAPT.yaapt(basic_tools.SignalObj(y.copy(), 16000), **params).samp_values


def assert_parity(ref: np.ndarray, ours: np.ndarray, what: str) -> None:
    """The shared criteria (hierspeech.testing.f0); the share of bit-equal frames is bounded separately."""
    assert ours.shape == ref.shape, what
    assert_f0_parity(ref, ours, what, max_frames_off_share=None)


def kit_input(reference_dir: Path, i: int) -> np.ndarray:
    wav, _ = sf.read(reference_dir / "audio" / f"reference_{i}.wav", dtype="float32")
    return product_padding(wav)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("i", [1, 2, 3, 4])
def test_kit_wavs_match_goldens(reference_dir: Path, i: int, variant: str) -> None:
    golden = np.load(reference_dir / "golden" / "yaapt" / f"reference_{i}.{variant}.f0.npy")  # [1, N] float32
    ours = yaapt_fast(kit_input(reference_dir, i), 16000, **VARIANTS[variant]).astype(np.float32)[None]
    assert ours.shape == golden.shape
    assert_parity(golden[0], ours[0], f"reference_{i}.{variant}")
    exact = np.mean(ours == golden)
    assert exact >= MIN_EXACT_KIT, f"only {exact:.4f} of frames equal the golden"


@pytest.mark.parametrize("i", [1, 2, 3, 4])
def test_kit_wavs_match_amfm(reference_dir: Path, i: int) -> None:
    y = kit_input(reference_dir, i)
    for name, params in VARIANTS.items():
        ref = amfm_f0(y, params)
        ours = yaapt_fast(y, 16000, **params)
        assert_parity(ref, ours, f"reference_{i}.{name}")
        assert np.mean(ref == ours) >= MIN_EXACT_KIT


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_generated_speech_matches_amfm() -> None:
    """Two espeak-ng voices (low male, high female), clean and in white/pink noise, with pauses."""
    conds = [c for c in CONDITIONS if c[0] in ("clean", "white10", "pink5")]
    clips = make_corpus(2, conds)
    refs, outs = [], []
    for clip in clips:
        y = product_padding(clip.wav)
        for name, params in VARIANTS.items():
            ref, ours = amfm_f0(y, params), yaapt_fast(y, 16000, **params)
            assert_parity(ref, ours, f"{clip.name} {name}")
            refs.append(ref)
            outs.append(ours)
    assert_parity(np.concatenate(refs), np.concatenate(outs), "all generated clips")


def test_length_rule_and_batch(reference_dir: Path) -> None:
    """N = padded length / 80 for the kit's recorded lengths; the batch entry equals one-by-one calls."""
    checks = json.loads((reference_dir / "golden" / "yaapt" / "index.json").read_text())["checks"][
        "length_rule"
    ]
    rng = np.random.default_rng(0)
    signals = []
    for length, rule in checks.items():
        y = product_padding((rng.standard_normal(int(length)) * 0.1).astype(np.float32))
        assert y.shape[0] - 320 == rule["padded"]
        signals.append(y)
    batch = yaapt_fast_batch(signals, 16000, **BASE)
    for (length, rule), y, f0 in zip(checks.items(), signals, batch, strict=True):
        assert f0.shape == (rule["N"],), length
        np.testing.assert_array_equal(f0, yaapt_fast(y, 16000, **BASE))


@pytest.mark.parametrize(
    "kind",
    ["silence", "white_noise", "tone_150hz", "very_short"],
)
def test_degenerate_inputs_like_amfm(kind: str) -> None:
    rng = np.random.default_rng(1)
    t = np.arange(16000) / 16000
    wav = {
        "silence": np.zeros(16000),
        "white_noise": rng.standard_normal(16000) * 0.1,
        "tone_150hz": 0.5 * np.sin(2 * np.pi * 150 * t),
        "very_short": rng.standard_normal(300) * 0.1,
    }[kind]
    y = product_padding(wav.astype(np.float32))
    ref = amfm_f0(y, BASE)
    ours = yaapt_fast(y, 16000, **BASE)
    assert ours.shape == ref.shape
    assert np.mean((ref > 0) == (ours > 0)) >= 0.995
    both = (ref > 0) & (ours > 0)
    if both.any():
        assert np.mean(np.abs(ref[both] - ours[both]) <= 1.0) >= 0.99


def _clear_constant_caches() -> None:
    for cached in (fast._bandpass, fast._nlfer_basis, fast._kaiser):
        cached.cache_clear()


def test_cached_constants_give_cold_call_results_across_lengths_and_params() -> None:
    """Filter taps, DFT bases and windows are built once per parameter set: every warm call, interleaved over
    lengths and both product parameter sets (f0_max 400 and 1100), equals a call on empty caches."""
    rng = np.random.default_rng(3)
    t = np.arange(4 * 16000) / 16000
    voiced = 0.3 * np.sin(2 * np.pi * (120 + 40 * t) * t) + 0.02 * rng.standard_normal(t.shape[0])
    signals = [product_padding(voiced[:n].astype(np.float32)) for n in (3000, 16000 + 77, 4 * 16000)]
    cases = [(i, name) for i in range(len(signals)) for name in VARIANTS]
    cold = {}
    for i, name in cases:
        _clear_constant_caches()
        cold[i, name] = yaapt_fast(signals[i], 16000, **VARIANTS[name])
    assert any(cold[i, "extract_f0"].any() for i in range(len(signals)))  # some frames voiced
    for i, name in [*reversed(cases), *cases]:
        np.testing.assert_array_equal(yaapt_fast(signals[i], 16000, **VARIANTS[name]), cold[i, name])
    for cached in (fast._bandpass(16000.0, 150, 50.0, 1500.0), *fast._nlfer_basis(320, 8192, 59, 205)):
        assert not cached.flags.writeable  # shared by later calls: callers cannot alter it


def test_nlfer_kernel_matches_the_fft_definition() -> None:
    """pYAAPT's NLFER: per frame, the summed |rfft(hann * frame, 8192)| over the low band, mean-normalised."""
    from scipy.signal.windows import hann

    rng = np.random.default_rng(4)
    x = rng.standard_normal(9000) * 0.1
    for f0_max in (400.0, 1100.0):
        params = fast.YaaptParams(f0_max=f0_max)
        ours = fast._nlfer(x, 16000.0, 320, 80, params)
        k_lo = int(np.around(params.f0_min * 2 / 16000 * 8192)) - 1
        k_hi = int(np.around(params.f0_max / 16000 * 8192))
        frames = fast._frames(x, ours.shape[0], 320, 80) * hann(322)[1:-1]
        energy = np.abs(np.fft.rfft(frames, 8192)[:, k_lo:k_hi]).sum(axis=1)
        np.testing.assert_allclose(ours, energy / energy.mean(), rtol=1e-6)


def test_bandpass_kernel_matches_lfilter() -> None:
    from scipy.signal import lfilter

    taps = fast._bandpass(16000.0, 150, 50.0, 1500.0)
    rng = np.random.default_rng(5)
    for n in (1, 151, 4003):
        x = rng.standard_normal(n) * 0.3
        filtered, squared = fast._bandpass_both(taps, x)
        np.testing.assert_allclose(filtered, lfilter(taps, 1, x), rtol=0, atol=1e-14)
        np.testing.assert_allclose(squared, lfilter(taps, 1, x**2), rtol=0, atol=1e-14)


@pytest.mark.parametrize("size", [1, 5, 7])
def test_median_filter_equals_scipy(size: int) -> None:
    from scipy.signal import medfilt

    rng = np.random.default_rng(6)
    for x in (rng.standard_normal(40), np.round(rng.standard_normal(40)), np.zeros(9), np.arange(size + 1.0)):
        np.testing.assert_array_equal(fast._medfilt(x, size), medfilt(x, size))
