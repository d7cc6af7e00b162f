"""The packed CPU w2v path: its parts against torch's convolutions, the whole against the official
full model at MMS-300m's real size (random weights; nothing downloaded)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from transformers import Wav2Vec2ForPreTraining, Wav2Vec2Model

from hierspeech.testing.w2v import mms_300m_config, tiny_wav2vec2_config
from hierspeech.w2v import Wav2Vec2Features, extract_w2v, num_frames, prepare_audio
from hierspeech.w2v_packed import BlockedFFTConv, PackedWav2Vec2, _conv_stage, _strided_conv, packed_support

FEATURE_ATOL = 1e-4
"""The issue's bound for our w2v features vs the upstream way."""


@pytest.mark.parametrize(
    ("kernel", "stride", "channels", "bias"),
    [(10, 5, 1, True), (3, 2, 16, True), (2, 2, 16, False), (3, 2, 200, True), (3, 2, 200, False)],
    ids=["waveform", "k3s2-unfolded", "k2s2-view", "k3s2-polyphase", "k3s2-polyphase-nobias"],
)
def test_strided_conv_equals_conv1d(kernel: int, stride: int, channels: int, bias: bool) -> None:
    torch.manual_seed(kernel * 100 + channels)

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv1d(channels, 24, kernel, stride=stride, bias=bias)
            self.layer_norm = nn.LayerNorm(24)

    layer = Layer()
    for frames in (kernel, kernel + 1, 517):
        x = torch.randn(frames, channels)
        expected = F.conv1d(x.t()[None], layer.conv.weight, layer.conv.bias, stride=stride)[0].t()
        with torch.no_grad():
            got = _strided_conv(x, _conv_stage(layer))
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="shorter than the conv kernel"):
        _strided_conv(torch.randn(kernel - 1, channels), _conv_stage(layer))


@pytest.mark.parametrize("max_blocks", [48, 3, 1])
def test_blocked_fft_conv_equals_grouped_conv(max_blocks: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """MMS-300m's positional conv (1024 channels, 16 groups, 128 taps), items packed around the
    129-frame block size: each item must see zeros, not its neighbours, beyond its ends, also
    when the blocks go through the FFT in several products (an item split between them)."""
    monkeypatch.setattr("hierspeech.w2v_packed.FFT_MAX_BLOCKS", max_blocks)
    torch.manual_seed(0)
    conv = nn.Conv1d(1024, 1024, 128, padding=64, groups=16)
    fft_conv = BlockedFFTConv(conv)
    lengths = [1, 64, 128, 129, 130, 400]
    x = torch.randn(sum(lengths), 1024)
    got = fft_conv(x, lengths)
    start = 0
    for n in lengths:
        with torch.no_grad():
            expected = conv(x[start : start + n].t()[None])[0, :, :-1].t()
        assert (got[start : start + n] - expected).abs().max().item() <= 1e-5 * expected.abs().max().item() + 1e-6
        start += n


def test_support_reasons() -> None:
    assert packed_support(Wav2Vec2Model(tiny_wav2vec2_config())) is None
    assert "post-norm" in packed_support(Wav2Vec2Model(tiny_wav2vec2_config(stable_layer_norm=False)))
    config = tiny_wav2vec2_config()
    config.hidden_act = "relu"
    assert "hidden activation 'relu'" in packed_support(Wav2Vec2Model(config))


def test_real_size_mms_300m_matches_upstream_way() -> None:
    """Random-weight MMS-300m: the packed 7-layer path against the full 24-layer pre-training model
    run batch 1 as upstream's extract_w2v.py does, two clips in one packed batch."""
    torch.manual_seed(0)
    full = Wav2Vec2ForPreTraining(mms_300m_config()).eval()
    rng = np.random.default_rng(0)
    wavs = [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in (48000, 20000)]
    with torch.no_grad():
        expected = [full(prepare_audio(w)[None], output_hidden_states=True).hidden_states[7][0].t() for w in wavs]
    ours = Wav2Vec2Features(full.wav2vec2)  # cuts the model in place: the reference is computed above
    assert ours.backend_for() == "packed" and len(ours.model.encoder.layers) == 7
    got = extract_w2v(ours, wavs, dtype=torch.float32)
    for wav, feat, reference in zip(wavs, got, expected, strict=True):
        assert feat.shape == reference.shape == (1024, num_frames(len(wav)))
        assert (feat - reference).abs().max().item() <= FEATURE_ATOL


def test_conv_features_in_chunks_equal_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """The conv encoder runs 64 frames at a time: bit-identical to one pass, and equal to
    transformers' conv encoder, across chunk boundaries and a short last chunk."""
    torch.manual_seed(2)
    model = Wav2Vec2Model(tiny_wav2vec2_config()).eval()
    packed = PackedWav2Vec2(model)
    assert (packed.conv_stride, packed.conv_field) == (320, 400)
    wav = prepare_audio((np.random.default_rng(2).standard_normal(70_000) * 0.1).astype(np.float32))
    chunked = packed.conv_features(wav)
    monkeypatch.setattr("hierspeech.w2v_packed.CONV_CHUNK_FRAMES", 10**9)
    whole = packed.conv_features(wav)
    assert chunked.shape == (num_frames(70_000), 32) and chunked.shape[0] % 64 != 0
    assert torch.equal(chunked, whole)
    with torch.no_grad():
        expected = model.feature_extractor(wav[None])[0].t()
    torch.testing.assert_close(chunked, expected, atol=1e-5, rtol=1e-5)
