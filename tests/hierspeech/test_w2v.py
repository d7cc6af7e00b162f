"""w2v front-end: truncation gives hidden_states[7] exactly; batching equals single runs.

No network: tiny random configs shaped like MMS-300m (hierspeech.testing.w2v), saved with
save_pretrained and loaded back through our loader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import Wav2Vec2ForPreTraining, Wav2Vec2Model

from hierspeech.testing.w2v import tiny_wav2vec2_config
from hierspeech.w2v import (
    Wav2Vec2Features,
    extract_w2v,
    length_buckets,
    num_frames,
    prepare_audio,
)

BATCH_ATOL = 1e-4
PACKED_ATOL = 2e-5
"""Packed CPU path vs the official model: float32 rounding of re-ordered sums on unit-scale features."""


def _upstream_way(model: Wav2Vec2ForPreTraining, wav: np.ndarray) -> torch.Tensor:
    """The official path: full pre-training model, batch 1, no mask, hidden_states[7] -> (C, T)."""
    x = torch.from_numpy(wav.astype(np.float32))[None]
    x = torch.nn.functional.pad(x, (0, (x.shape[-1] // 1280 + 1) * 1280 - x.shape[-1]))
    x = torch.nn.functional.pad(x[None], (40, 40), mode="reflect")[0]
    with torch.no_grad():
        out = model(x, output_hidden_states=True)
    return out.hidden_states[7][0].transpose(0, 1)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Wav2Vec2ForPreTraining]:
    torch.manual_seed(0)
    model = Wav2Vec2ForPreTraining(tiny_wav2vec2_config()).eval()
    path = tmp_path_factory.mktemp("tiny_mms")
    model.save_pretrained(path)
    return path, model


def _waves(lengths: list[int], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in lengths]


def test_prepare_audio_and_lengths() -> None:
    wav = np.arange(2560, dtype=np.float32)
    x = prepare_audio(wav)
    assert x.shape == (2560 + 1280 + 80,)
    torch.testing.assert_close(x[40 : 40 + 2560], torch.from_numpy(wav))
    torch.testing.assert_close(x[:40], torch.from_numpy(wav[1:41][::-1].copy()))  # reflect, edge excluded
    assert torch.all(x[40 + 2560 : -40] == 0)
    assert num_frames(48000) == 152 and num_frames(12345) == 40 and num_frames(2560) == 12


def test_truncated_equals_full_hidden_state_7(saved_model: tuple[Path, Wav2Vec2ForPreTraining]) -> None:
    path, full = saved_model
    features = Wav2Vec2Features.from_pretrained(path, local_files_only=True)
    assert len(features.model.encoder.layers) == 7
    wav = _waves([23456])[0]
    expected = _upstream_way(full, wav)
    got = extract_w2v(features, [wav], dtype=torch.float32, backend="transformers")[0]
    assert got.shape == expected.shape == (32, num_frames(23456))
    assert (got - expected).abs().max().item() <= 1e-6


@pytest.mark.parametrize("onednn", [True, False], ids=["onednn", "plain-linear"])
def test_packed_path_equals_upstream_way(
    saved_model: tuple[Path, Wav2Vec2ForPreTraining], onednn: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The packed CPU path against the official full model, items of several lengths in one batch
    (lengths around the 129-frame FFT block of the positional convolution)."""
    if not onednn:
        monkeypatch.setattr("hierspeech.w2v_packed.onednn_linear_available", lambda: False)
    path, full = saved_model
    features = Wav2Vec2Features.from_pretrained(path, local_files_only=True)
    assert features.backend_for("auto") == "packed"
    lengths = [23456, 400, 41000, 40960, 41300, 129 * 320, 100_000]
    wavs = _waves(lengths, seed=5)
    got = extract_w2v(features, wavs, max_batch_size=8, dtype=torch.float32, backend="packed")
    for n, wav, feat in zip(lengths, wavs, got, strict=True):
        expected = _upstream_way(full, wav)
        assert feat.shape == expected.shape == (32, num_frames(n))
        assert (feat - expected).abs().max().item() <= PACKED_ATOL, n


def test_backend_choice(saved_model: tuple[Path, Wav2Vec2ForPreTraining], tmp_path: Path) -> None:
    path, _ = saved_model
    features = Wav2Vec2Features.from_pretrained(path, local_files_only=True)
    assert features.backend_for("transformers") == "transformers"
    assert features.backend_provenance("transformers") == {"backend": "transformers"}
    assert features.backend_provenance()["backend"] == "packed"
    assert features.backend_provenance()["linear"] in {"oneDNN", "torch"}
    with pytest.raises(ValueError, match="unknown w2v backend 'fast'"):
        features.backend_for("fast")
    features.double()
    assert features.backend_for("auto") == "transformers"
    with pytest.raises(ValueError, match="float64"):
        features.backend_for("packed")
    Wav2Vec2Model(tiny_wav2vec2_config(stable_layer_norm=False)).save_pretrained(tmp_path)
    post_norm = Wav2Vec2Features.from_pretrained(tmp_path, local_files_only=True)
    assert post_norm.backend_for("auto") == "transformers"
    with pytest.raises(ValueError, match="post-norm encoder"):
        extract_w2v(post_norm, _waves([8000]), backend="packed")


def test_naive_truncation_would_differ(saved_model: tuple[Path, Wav2Vec2ForPreTraining]) -> None:
    """Guard that the test above can fail: a 7-layer model that keeps the final norm is wrong."""
    path, full = saved_model
    naive = Wav2Vec2Model.from_pretrained(path, num_hidden_layers=7).eval()
    wav = _waves([23456])[0]
    with torch.no_grad():
        out = naive(prepare_audio(wav)[None]).last_hidden_state[0].transpose(0, 1)
    assert (out - _upstream_way(full, wav)).abs().max().item() > 1e-2


def test_post_norm_variant_truncates_exactly(tmp_path: Path) -> None:
    torch.manual_seed(1)
    full = Wav2Vec2Model(tiny_wav2vec2_config(stable_layer_norm=False)).eval()
    full.save_pretrained(tmp_path)
    features = Wav2Vec2Features.from_pretrained(tmp_path, local_files_only=True)
    x = prepare_audio(_waves([9000])[0])[None]
    with torch.no_grad():
        expected = full(x, output_hidden_states=True).hidden_states[7]
        assert (features(x) - expected).abs().max().item() <= 1e-6


def test_missing_weights_are_an_error(tmp_path: Path) -> None:
    small = Wav2Vec2Model(tiny_wav2vec2_config(num_hidden_layers=4))
    small.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="out of range"):
        Wav2Vec2Features.from_pretrained(tmp_path, local_files_only=True)
    small.config.num_hidden_layers = 8
    small.config.save_pretrained(tmp_path)  # config claims 8 layers, weights hold 4
    with pytest.raises(RuntimeError, match="missing"):
        Wav2Vec2Features.from_pretrained(tmp_path, local_files_only=True)


@pytest.mark.parametrize("backend", ["transformers", "packed"])
def test_batched_equals_single(saved_model: tuple[Path, Wav2Vec2ForPreTraining], backend: str) -> None:
    path, _ = saved_model
    features = Wav2Vec2Features.from_pretrained(path, local_files_only=True)
    lengths = [16000, 47999, 30000, 12345, 48000, 5000, 31000]
    wavs = _waves(lengths, seed=3)
    singles = [extract_w2v(features, [w], dtype=torch.float32, backend=backend)[0] for w in wavs]
    batched = extract_w2v(features, wavs, max_batch_size=4, max_padding=1.0, dtype=torch.float32, backend=backend)
    worst = 0.0
    for n, one, many in zip(lengths, singles, batched, strict=True):
        assert one.shape == many.shape == (32, num_frames(n))
        worst = max(worst, (one - many).abs().max().item())
    assert worst <= BATCH_ATOL, worst


def test_storage_dtype(saved_model: tuple[Path, Wav2Vec2ForPreTraining]) -> None:
    path, _ = saved_model
    features = Wav2Vec2Features.from_pretrained(path, local_files_only=True)
    wav = _waves([8000])[0]
    half = extract_w2v(features, [wav])[0]
    full = extract_w2v(features, [wav], dtype=torch.float32)[0]
    assert half.dtype == torch.float16 and full.dtype == torch.float32
    torch.testing.assert_close(half.float(), full, rtol=1e-3, atol=1e-3)


def test_length_buckets() -> None:
    lengths = [100, 500, 300, 400, 200]
    assert length_buckets(lengths, 2, 10_000, 1.0) == [[1, 3], [2, 4], [0]]
    assert length_buckets(lengths, 8, 1000, 1.0) == [[1, 3], [2, 4, 0]]
    assert length_buckets([5000, 10], 8, 1000, 1.0) == [[0], [1]]
    assert length_buckets(lengths, 8, 10_000, 0.25) == [[1, 3], [2], [4], [0]]


CHUNK_ATOL = 1e-5
"""Chunked vs one-pass conv encoder: the same sums, by kernels run on other lengths (5e-7 measured)."""
BF16_MAX_ABS = 0.15
BF16_RELATIVE_RMS = 0.03
"""bf16 autocast vs float32 on the tiny config (unit-scale features): measured max 0.064, RMS error 1.6 % of
the features' RMS (bench/bench_w2v_precision.py measures the MMS-300m architecture too)."""


@pytest.mark.parametrize("stable_layer_norm", [True, False], ids=["layer-norm", "group-norm"])
def test_batched_equals_single_for_both_conv_norms(tmp_path: Path, stable_layer_norm: bool) -> None:
    """A group-normed conv encoder normalises over the padded time axis: such models only batch
    equal lengths (padded, the valid frames moved by 0.5); layer-normed ones pad and mask."""
    torch.manual_seed(2)
    Wav2Vec2Model(tiny_wav2vec2_config(stable_layer_norm=stable_layer_norm)).save_pretrained(tmp_path)
    features = Wav2Vec2Features.from_pretrained(tmp_path, local_files_only=True)
    assert features.pads_exactly is stable_layer_norm
    lengths = [16000, 47999, 30000, 12345, 48000, 16100, 31000]  # 16000 and 16100 prepare to one length
    wavs = _waves(lengths, seed=4)
    singles = [extract_w2v(features, [w], dtype=torch.float32, backend="transformers")[0] for w in wavs]
    batched = extract_w2v(features, wavs, max_batch_size=4, max_padding=1.0, dtype=torch.float32, backend="transformers")
    worst = max((one - many).abs().max().item() for one, many in zip(singles, batched, strict=True))
    assert worst <= BATCH_ATOL, worst


@pytest.mark.parametrize("batch", [1, 3])
def test_chunked_conv_encoder_equals_one_pass(saved_model: tuple[Path, Wav2Vec2ForPreTraining], batch: int) -> None:
    """The transformers backend runs the conv encoder `conv_chunk_frames` frames at a time (long items on
    a GPU); chunks of 7 frames (per item: 7 // batch) against one pass."""
    path, _ = saved_model
    features = Wav2Vec2Features.from_pretrained(path, local_files_only=True)
    wavs = _waves([100_000, 99_000, 98_500][:batch], seed=6)
    features.conv_chunk_frames = None
    whole = extract_w2v(features, wavs, max_batch_size=batch, max_padding=1.0, dtype=torch.float32, backend="transformers")
    features.conv_chunk_frames = 7
    x = prepare_audio(wavs[0])[None]
    assert features.conv_features(x).shape[1] == num_frames(100_000)
    chunked = extract_w2v(features, wavs, max_batch_size=batch, max_padding=1.0, dtype=torch.float32, backend="transformers")
    worst = max((a - b).abs().max().item() for a, b in zip(whole, chunked, strict=True))
    assert worst <= CHUNK_ATOL, worst


def test_features_on_the_asked_device_and_bf16(saved_model: tuple[Path, Wav2Vec2ForPreTraining]) -> None:
    path, _ = saved_model
    features = Wav2Vec2Features.from_pretrained(path, local_files_only=True)
    wavs = _waves([23456, 12000], seed=7)
    kept = extract_w2v(features, wavs, dtype=torch.float32, device=features.device)
    assert [f.device for f in kept] == [features.device] * 2
    assert extract_w2v(features, wavs[:1], device="meta")[0].device.type == "meta"
    assert features.backend_for("auto", "bf16") == "transformers"
    assert features.backend_provenance("auto", "bf16") == {"backend": "transformers", "precision": "bf16"}
    with pytest.raises(ValueError, match="float32"):
        features.backend_for("packed", "bf16")
    with pytest.raises(ValueError, match="unknown w2v precision"):
        features.backend_for("auto", "fp8")
    fp32 = extract_w2v(features, wavs, dtype=torch.float32, backend="transformers")
    bf16 = extract_w2v(features, wavs, dtype=torch.float32, precision="bf16")
    for full, half in zip(fp32, bf16, strict=True):
        assert half.dtype == torch.float32 and half.shape == full.shape
        error = half - full
        assert 0 < error.abs().max().item() <= BF16_MAX_ABS
        assert error.pow(2).mean().sqrt() <= BF16_RELATIVE_RMS * full.pow(2).mean().sqrt()
