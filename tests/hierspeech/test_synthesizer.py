"""Synthesizer: official state-dict layout, fidelity to the kit's synthetic goldens, ragged batching.

Golden tolerances are those of golden/synthetic/index.json (audio 5e-4, style 1e-6, latents 2e-5,
sn.e 2e-4, sn.e_ 5e-5).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hierspeech.checkpoint import CheckpointMismatchError
from hierspeech.synthesizer import Synthesizer, SynthesizerConfig
from hierspeech.testing.synthetic_weights import load_synthetic_weights
from hierspeech.testing.tiny import tiny_synthesizer

AUDIO_ATOL = 5e-4
STYLE_ATOL = 1e-6
LATENT_ATOL = 2e-5


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: on a shared 2-core runner, OpenMP barriers with 2 threads can stall 50x."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def config(reference_dir) -> SynthesizerConfig:
    return SynthesizerConfig.from_json(reference_dir / "configs" / "hierspeechpp_v2.config.json")


@pytest.fixture(scope="module")
def model(config) -> Synthesizer:
    return load_synthetic_weights(Synthesizer(config))


@pytest.fixture(scope="module")
def golden(reference_dir):
    folder = reference_dir / "golden" / "synthetic"
    return lambda name: torch.from_numpy(np.load(folder / f"{name}.npy"))


@pytest.fixture(scope="module")
def vc_inputs(golden):
    return (
        golden("vc.in.src_w2v"),
        golden("vc.in.src_length"),
        golden("vc.in.trg_mel"),
        golden("vc.in.trg_length"),
        golden("vc.in.f0"),
    )


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def test_config_is_built_like_official_inference(config) -> None:
    assert config.spec_channels == 641  # filter_length // 2 + 1
    assert config.segment_size == 192  # segment_size // hop_length
    assert config.cfg and config.gin_channels == 256
    assert config.samples_per_frame == 320
    # official model keys the network does not use are fields too: nothing is unknown
    assert (config.n_layers_q, config.use_spectral_norm, config.wav2vec_feature_layer) == (3, False, 7)
    assert config.unknown_keys == ()


def test_state_dict_equals_manifest(model, reference_dir) -> None:
    manifest = json.loads((reference_dir / "manifests" / "params_synthesizer.json").read_text())
    expected = manifest["state_dict"]
    state = model.state_dict()
    assert list(state) == list(expected)  # same keys in the same order (2222)
    params = dict(model.named_parameters())
    for key, entry in expected.items():
        assert list(state[key].shape) == entry["shape"], key
        assert str(state[key].dtype).removeprefix("torch.") == entry["dtype"], key
        assert (key in params) == (entry["kind"] == "parameter"), key
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"]
    assert not any("null" in key for key in state)  # the official CUDA-only `null` index is not state


def test_style_encoder_matches_golden(model, golden, vc_inputs) -> None:
    _, _, trg_mel, trg_length, _ = vc_inputs
    g = model.style(trg_mel, trg_length).squeeze(-1)
    assert max_diff(g, golden("vc.mid.emb_g")) <= STYLE_ATOL


def test_style_encoder_is_padding_invariant_unlike_official(model, golden, vc_inputs) -> None:
    """emb_g.out.ragged_150_100: item 1 masked to 100 of 150 frames. The official pooling lets padded
    frames in; ours equals running item 1 cropped to its 100 frames, which is what the official code
    returns for the unpadded prompt. The kit measured that gap (0.0414) between the two official runs."""
    _, _, trg_mel, _, _ = vc_inputs
    ragged = model.style(trg_mel, torch.tensor([150, 100])).squeeze(-1)
    official = golden("emb_g.out.ragged_150_100")
    alone = model.style(trg_mel[1:2, :, :100], torch.tensor([100])).squeeze(-1)
    assert max_diff(ragged[0], official[0]) <= STYLE_ATOL
    assert max_diff(ragged[1], alone[0]) <= STYLE_ATOL
    assert max_diff(ragged[1], official[1]) == pytest.approx(0.04142913, abs=1e-4)


def test_voice_conversion_noise_control_matches_golden_with_intermediates(model, golden, vc_inputs) -> None:
    captured = {}

    def keep(name):
        return lambda module, args, output: captured.__setitem__(name, output)

    handles = [
        model.enc_p_l.register_forward_hook(keep("enc_p_l")),
        model.flow_l.register_forward_hook(keep("flow_l")),
        model.flow.register_forward_hook(keep("flow")),
        model.sn.register_forward_hook(keep("sn")),
    ]
    try:
        audio = model.voice_conversion_noise_control(*vc_inputs, noise_scale=0.0, denoise_ratio=0.8)
    finally:
        for handle in handles:
            handle.remove()
    m, logs = captured["enc_p_l"]
    assert max_diff(m, golden("vc.mid.enc_p_l.m")) <= LATENT_ATOL
    assert max_diff(logs, golden("vc.mid.enc_p_l.logs")) <= LATENT_ATOL
    assert max_diff(captured["flow_l"], golden("vc.mid.flow_l_reverse")) <= LATENT_ATOL
    assert max_diff(captured["flow"], golden("vc.mid.flow_reverse")) <= LATENT_ATOL
    e, e_ = captured["sn"]
    assert max_diff(e, golden("vc.mid.sn.e")) <= 2e-4
    assert max_diff(e_, golden("vc.mid.sn.e_")) <= 5e-5
    assert max_diff(audio, golden("vc.out.audio")) <= AUDIO_ATOL


def test_voice_conversion_matches_golden(model, golden, vc_inputs) -> None:
    src, src_length, trg_mel, _, f0 = vc_inputs
    audio = model.voice_conversion(src, src_length, trg_mel[0:1], torch.tensor([150]), f0, noise_scale=0.0)
    assert max_diff(audio, golden("vc_plain.out.audio")) <= AUDIO_ATOL


def test_voice_conversion_noise_with_injected_draw_matches_golden(model, golden, vc_inputs) -> None:
    # draw0 is the official encoder's discarded sample; draw1 is the prior noise.
    audio = model.voice_conversion_noise_control(
        *vc_inputs, noise_scale=0.333, denoise_ratio=0.8, noise=golden("vc_noise.draw1")
    )
    assert max_diff(audio, golden("vc_noise.out.audio")) <= AUDIO_ATOL


def test_voice_conversion_noise_follows_official_rng_stream(model, golden, vc_inputs) -> None:
    torch.manual_seed(1234)
    audio = model.voice_conversion_noise_control(*vc_inputs, noise_scale=0.333, denoise_ratio=0.8)
    assert max_diff(audio, golden("vc_noise.out.audio")) <= AUDIO_ATOL


def test_generator_makes_noise_reproducible(model, vc_inputs) -> None:
    src, _, trg_mel, trg_length, f0 = vc_inputs
    short = (src[:, :, :8], torch.tensor([8]), trg_mel, trg_length, f0[:, :, :32])
    a = model.voice_conversion_noise_control(*short, generator=torch.Generator().manual_seed(7))
    b = model.voice_conversion_noise_control(*short, generator=torch.Generator().manual_seed(7))
    c = model.voice_conversion_noise_control(*short, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert max_diff(a, c) > 1e-3


def test_from_pretrained_loads_raw_state_dict_strictly(model, config, reference_dir, tmp_path) -> None:
    path = tmp_path / "hierspeechpp_v2_ckpt.pth"
    torch.save(model.state_dict(), path)
    (tmp_path / "config.json").write_text(
        (reference_dir / "configs" / "hierspeechpp_v2.config.json").read_text()
    )
    loaded = Synthesizer.from_pretrained(path)  # config.json beside the file
    assert not loaded.training
    assert torch.equal(loaded.dec.conv_pre.weight_v, model.dec.conv_pre.weight_v)
    broken = dict(model.state_dict())
    del broken["emb.weight"]
    torch.save(broken, path)
    with pytest.raises(CheckpointMismatchError, match=r"emb\.weight"):
        Synthesizer.from_pretrained(path, config=config)


# ------------------------------------------------------------------------------------ ragged batching


def _ragged_inputs(lengths: list[int], trg_lengths: list[int], channels: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    batch, t_max = len(lengths), max(lengths)
    src = torch.randn(batch, 1024, t_max, generator=g)
    f0 = torch.rand(batch, 1, 4 * t_max, generator=g) * 5
    trg_mel = torch.randn(len(trg_lengths), 80, max(trg_lengths), generator=g)
    noise = torch.randn(batch, channels, t_max, generator=g)
    return src, torch.tensor(lengths), trg_mel, torch.tensor(trg_lengths), f0, noise


def _assert_batch_equals_singles(model, lengths, trg_lengths, atol, noise_control: bool) -> None:
    channels = model.config.inter_channels
    hop = model.config.samples_per_frame
    src, src_length, trg_mel, trg_length, f0, noise = _ragged_inputs(lengths, trg_lengths, channels)
    batch = len(lengths)
    kwargs = {"noise_scale": 0.5, "noise": noise}
    if noise_control:
        audio = model.voice_conversion_noise_control(
            src, src_length, trg_mel, trg_length, f0, denoise_ratio=0.3, **kwargs
        )
    else:
        audio = model.voice_conversion(src, src_length, trg_mel, trg_length, f0, **kwargs)
    assert audio.shape == (batch, 1, max(lengths) * hop)
    for i, n in enumerate(lengths):
        pick = [i, i + batch] if noise_control else [i]
        n_trg = int(trg_length[pick].max())
        single_kwargs = {"noise_scale": 0.5, "noise": noise[i : i + 1, :, :n]}
        args = (
            src[i : i + 1, :, :n],
            src_length[i : i + 1],
            trg_mel[pick, :, :n_trg],
            trg_length[pick],
            f0[i : i + 1, :, : 4 * n],
        )
        if noise_control:
            single = model.voice_conversion_noise_control(*args, denoise_ratio=0.3, **single_kwargs)
        else:
            single = model.voice_conversion(*args, **single_kwargs)
        assert max_diff(audio[i : i + 1, :, : n * hop], single) <= atol, i
        assert torch.all(audio[i, :, n * hop :] == 0), i


@pytest.mark.parametrize("noise_control", [False, True])
def test_tiny_ragged_batch_equals_single_items(noise_control: bool) -> None:
    model = tiny_synthesizer()
    trg = [30, 21, 12, 30, 25, 19] if noise_control else [30, 21, 12]
    _assert_batch_equals_singles(model, [23, 17, 9], trg, atol=1e-5, noise_control=noise_control)


def test_noise_control_rejects_unpaired_targets() -> None:
    model = tiny_synthesizer()
    src, src_length, trg_mel, trg_length, f0, _ = _ragged_inputs([5, 5], [6, 6], 16)
    with pytest.raises(ValueError, match="denoised"):
        model.voice_conversion_noise_control(src, src_length, trg_mel, trg_length, f0)


def test_tiny_uncond_uses_null_style() -> None:
    model = tiny_synthesizer()
    src, src_length, trg_mel, trg_length, f0, noise = _ragged_inputs([6], [7], 16)
    cond = model.voice_conversion(src, src_length, trg_mel, trg_length, f0, noise=noise)
    uncond = model.voice_conversion(src, src_length, trg_mel, trg_length, f0, uncond=True, noise=noise)
    assert torch.isfinite(uncond).all() and max_diff(cond, uncond) > 0


def test_full_size_ragged_batch_equals_single_items(model) -> None:
    _assert_batch_equals_singles(model, [50, 40], [150, 100, 150, 120], atol=AUDIO_ATOL, noise_control=True)


def test_fused_weight_norm_gives_the_same_audio() -> None:
    model = tiny_synthesizer()
    src, src_length, trg_mel, trg_length, f0, noise = _ragged_inputs([12], [9, 9], 16)
    before = model.voice_conversion_noise_control(src, src_length, trg_mel, trg_length, f0, noise=noise)
    after = model.fuse_weight_norm().voice_conversion_noise_control(
        src, src_length, trg_mel, trg_length, f0, noise=noise
    )
    assert max_diff(before, after) <= 1e-6
    assert set(model.state_dict()) == set(tiny_synthesizer().state_dict())  # still the official layout


def test_vocoder_radius_of_the_released_config(model) -> None:
    """The bucketed vocoder's exact-tail bound at the released layer sizes (kernels, dilations, rates)."""
    assert model.vocoder_radius() == 95


@pytest.mark.slow
def test_full_size_bucketed_vocoder_equals_single_items(model) -> None:
    """Released layer sizes: a padded bucket [240, 195] (195 >= the 190-frame tail) plus the rerun tail
    of the shorter item give each item its single result (~20 s on one CPU thread). Bound: the stage's
    batch-vs-alone 1e-4 (pipeline.tolerances); measured 2.6e-5, as for an equal-length batch of two
    (2.7e-5: CPU conv kernels sum in another order at batch 2)."""
    lengths = [240, 195]
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(2, model.config.inter_channels, max(lengths), generator=gen)
    g = torch.randn(2, model.config.gin_channels, 1, generator=gen)
    hop = model.config.samples_per_frame
    with torch.no_grad():
        audio = model.vocode(z, g, torch.tensor(lengths), bucketed=True)
        for i, n in enumerate(lengths):
            alone = model.vocode(z[i : i + 1, :, :n], g[i : i + 1])
            assert max_diff(audio[i : i + 1, :, : n * hop], alone) <= 1e-4, i
