"""TTV: state-dict layout, fidelity to the kit's synthetic goldens, ragged batching, loading."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hierspeech import TTV, TTVConfig, zero_low_log_f0
from hierspeech.checkpoint import CheckpointMismatchError
from hierspeech.testing.synthetic_weights import load_synthetic_weights, synthetic_state_dict
from hierspeech.testing.tiny_ttv import tiny_ttv, tiny_ttv_config

ATOL = 2e-5  # kit: ttv.mid.enc_p.*, flow_reverse, dp.logw, ttv.out.*, ttv_noise.*
ATOL_STYLE = 1e-6  # kit: ttv.mid.emb_g


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The CI box has 2 cores shared with other jobs; one thread avoids oversubscription stalls."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _config(reference_dir) -> TTVConfig:
    configs = reference_dir / "configs"
    return TTVConfig.from_json(configs / "ttv_lt960.config.json", configs / "hierspeechpp_v2.config.json")


@pytest.fixture(scope="module")
def synthetic_ttv(reference_dir) -> TTV:
    torch.manual_seed(0)
    return load_synthetic_weights(TTV.from_config(_config(reference_dir)))


def _golden(reference_dir, name: str) -> torch.Tensor:
    return torch.from_numpy(np.load(reference_dir / "golden" / "synthetic" / f"{name}.npy"))


def _inputs(reference_dir) -> tuple[torch.Tensor, ...]:
    return tuple(
        _golden(reference_dir, f"ttv.in.{n}") for n in ("token", "token_length", "y_mel", "y_length")
    )


def _assert_close(actual: torch.Tensor, reference_dir, name: str, atol: float = ATOL) -> None:
    expected = _golden(reference_dir, name)
    assert tuple(actual.shape) == tuple(expected.shape), name
    diff = (actual - expected).abs().max().item()
    assert diff <= atol, f"{name}: max abs diff {diff:.3g} > {atol:g}"


def test_config_sizes_come_from_the_synthesizer_config(reference_dir) -> None:
    config = _config(reference_dir)
    assert (config.spec_channels, config.segment_size) == (641, 192)
    forked = TTVConfig.from_dict({"model": {"inter_channels": 256, "not_a_key": 1}})
    assert forked == TTVConfig() and forked.unknown_keys == ("model.not_a_key",)


def test_state_dict_equals_official_manifest(reference_dir, synthetic_ttv: TTV) -> None:
    manifest = json.loads((reference_dir / "manifests" / "params_ttv.json").read_text())
    state = synthetic_ttv.state_dict()
    assert list(state) == list(manifest["state_dict"])  # same keys, same order
    for key, entry in manifest["state_dict"].items():
        assert list(state[key].shape) == entry["shape"], key
    assert sum(p.numel() for p in synthetic_ttv.parameters()) == manifest["num_parameters"]


def test_deterministic_call_matches_golden(reference_dir, synthetic_ttv: TTV) -> None:
    token, token_length, y_mel, y_length = _inputs(reference_dir)
    captured: dict[str, object] = {}
    hooks = [
        getattr(synthetic_ttv, name).register_forward_hook(
            lambda _m, _i, out, name=name: captured.__setitem__(name, out)
        )
        for name in ("emb_g", "enc_p", "flow")
    ]
    try:
        g = synthetic_ttv.blended_style(y_mel, y_length, batch_size=1, denoise_ratio=0.8)
        out = synthetic_ttv.infer(
            token, token_length, g, noise_scale=0.0, noise_scale_w=0.0, length_scale=1.0
        )
    finally:
        for hook in hooks:
            hook.remove()
    _assert_close(captured["emb_g"], reference_dir, "ttv.mid.emb_g", ATOL_STYLE)
    x, m_p, logs_p, _ = captured["enc_p"]
    _assert_close(x, reference_dir, "ttv.mid.enc_p.x")
    _assert_close(m_p, reference_dir, "ttv.mid.enc_p.m_p")
    _assert_close(logs_p, reference_dir, "ttv.mid.enc_p.logs_p")
    _assert_close(out.log_durations, reference_dir, "ttv.mid.dp.logw")
    _assert_close(out.durations, reference_dir, "ttv.mid.w_ceil", atol=0.0)
    _assert_close(captured["flow"], reference_dir, "ttv.mid.flow_reverse")
    _assert_close(out.w2v, reference_dir, "ttv.out.w2v_x")
    _assert_close(out.log_f0, reference_dir, "ttv.out.pitch")
    assert out.lengths.tolist() == [37]


def test_official_call_with_injected_noise_matches_golden(reference_dir, synthetic_ttv: TTV) -> None:
    token, token_length, y_mel, y_length = _inputs(reference_dir)
    noise = (_golden(reference_dir, "ttv_noise.draw0"), _golden(reference_dir, "ttv_noise.draw1"))
    captured: dict[str, torch.Tensor] = {}
    hook = synthetic_ttv.dp.register_forward_hook(lambda _m, _i, out: captured.__setitem__("logw", out))
    try:
        w2v, pitch = synthetic_ttv.infer_noise_control(
            token, token_length, y_mel, y_length, 0.333, 1.0, 1.0, 0.8, noise=noise
        )
    finally:
        hook.remove()
    _assert_close(captured["logw"], reference_dir, "ttv_noise.mid.dp.logw")
    _assert_close(w2v, reference_dir, "ttv_noise.out.w2v_x")
    _assert_close(pitch, reference_dir, "ttv_noise.out.pitch")


def test_global_seed_reproduces_the_official_draws(reference_dir, synthetic_ttv: TTV) -> None:
    """Without injected noise or generator, the draws consume torch's global RNG as upstream does."""
    token, token_length, y_mel, y_length = _inputs(reference_dir)
    torch.manual_seed(1234)
    w2v, pitch = synthetic_ttv.infer_noise_control(
        token, token_length, y_mel, y_length, noise_scale=0.333, noise_scale_w=1.0, denoise_ratio=0.8
    )
    _assert_close(w2v, reference_dir, "ttv_noise.out.w2v_x")
    _assert_close(pitch, reference_dir, "ttv_noise.out.pitch")


# ---------------------------------------------------------------- ragged batching (tiny model)

LENGTHS = [7, 12, 4]
MEL_LENGTHS = [20, 15, 9]
SEEDS = [11, 22, 33]


def _ragged_items(model: TTV) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(5)
    vocab, mels = model.config.n_vocab, model.config.mel_channels
    tokens = [torch.randint(1, vocab, (1, n), generator=gen) for n in LENGTHS]
    prompts = [torch.randn(1, mels, n, generator=gen) for n in MEL_LENGTHS]
    return tokens, prompts


def _pad(items: list[torch.Tensor]) -> torch.Tensor:
    longest = max(t.size(-1) for t in items)
    return torch.cat([torch.nn.functional.pad(t, (0, longest - t.size(-1))) for t in items])


def _assert_batch_equals_singles(batched, singles) -> None:
    for b, single in enumerate(singles):
        n = int(single.lengths[0])
        assert int(batched.lengths[b]) == n
        assert torch.equal(batched.durations[b, :, : LENGTHS[b]], single.durations[0])
        assert (batched.durations[b, :, LENGTHS[b] :] == 0).all()
        torch.testing.assert_close(
            batched.log_durations[b, :, : LENGTHS[b]], single.log_durations[0], atol=1e-5, rtol=0
        )
        torch.testing.assert_close(batched.w2v[b, :, :n], single.w2v[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(batched.log_f0[b, :, : 4 * n], single.log_f0[0], atol=1e-5, rtol=0)
        assert (batched.w2v[b, :, n:] == 0).all() and (batched.log_f0[b, :, 4 * n :] == 0).all()


@pytest.mark.parametrize("length_scale", [1.0, 2.5])
def test_ragged_batch_equals_single_items_with_per_item_generators(length_scale: float) -> None:
    model = tiny_ttv(seed=3)
    tokens, prompts = _ragged_items(model)
    singles = []
    for tok, mel in zip(tokens, prompts, strict=True):
        g = model.style(mel, torch.tensor([mel.size(-1)]))
        gen = torch.Generator().manual_seed(SEEDS[len(singles)])
        singles.append(
            model.infer(tok, torch.tensor([tok.size(-1)]), g, 0.5, 1.0, length_scale, generator=gen)
        )
    g = model.style(_pad(prompts), torch.tensor(MEL_LENGTHS))
    gens = [torch.Generator().manual_seed(s) for s in SEEDS]
    batched = model.infer(_pad(tokens), torch.tensor(LENGTHS), g, 0.5, 1.0, length_scale, generator=gens)
    assert len({int(n) for n in batched.lengths}) > 1, "test needs ragged output lengths"
    _assert_batch_equals_singles(batched, singles)


def test_ragged_batch_equals_single_items_with_injected_noise() -> None:
    model = tiny_ttv(seed=4)
    tokens, prompts = _ragged_items(model)
    gen = torch.Generator().manual_seed(9)
    dp_noise = torch.randn(3, 2, max(LENGTHS), generator=gen)
    prior_noise = torch.randn(3, model.config.inter_channels, 200, generator=gen)
    singles = []
    for b, (tok, mel) in enumerate(zip(tokens, prompts, strict=True)):
        g = model.style(mel, torch.tensor([mel.size(-1)]))
        noise = (dp_noise[b : b + 1, :, : LENGTHS[b]], prior_noise[b : b + 1])
        singles.append(model.infer(tok, torch.tensor([LENGTHS[b]]), g, 0.7, 0.8, 1.5, noise=noise))
    g = model.style(_pad(prompts), torch.tensor(MEL_LENGTHS))
    batched = model.infer(
        _pad(tokens), torch.tensor(LENGTHS), g, 0.7, 0.8, 1.5, noise=(dp_noise, prior_noise)
    )
    _assert_batch_equals_singles(batched, singles)


def test_infer_noise_control_batches_prompt_pairs() -> None:
    """2B prompts = B originals then B denoised versions; each item equals its own official-layout call."""
    model = tiny_ttv(seed=5)
    tokens, prompts = _ragged_items(model)
    denoised = [p * 0.5 + 0.1 for p in prompts]
    gen = torch.Generator().manual_seed(1)
    noise = (
        torch.randn(3, 2, max(LENGTHS), generator=gen),
        torch.randn(3, model.config.inter_channels, 200, generator=gen),
    )
    w2v, pitch = model.infer_noise_control(
        _pad(tokens), torch.tensor(LENGTHS), _pad(prompts + denoised), torch.tensor(MEL_LENGTHS * 2),
        0.333, 1.0, 1.0, 0.6, noise=noise,
    )  # fmt: skip
    for b in range(3):
        single_w2v, single_pitch = model.infer_noise_control(
            tokens[b], torch.tensor([LENGTHS[b]]), _pad([prompts[b], denoised[b]]), torch.tensor([MEL_LENGTHS[b]] * 2),
            0.333, 1.0, 1.0, 0.6, noise=(noise[0][b : b + 1, :, : LENGTHS[b]], noise[1][b : b + 1]),
        )  # fmt: skip
        n = single_w2v.size(-1)
        torch.testing.assert_close(w2v[b, :, :n], single_w2v[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(pitch[b, :, : 4 * n], single_pitch[0], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="prompts"):
        model.infer_noise_control(
            tokens[0], torch.tensor([LENGTHS[0]]), prompts[0], torch.tensor([20]), denoise_ratio=0.5
        )


def test_generator_makes_calls_reproducible() -> None:
    model = tiny_ttv(seed=6)
    tokens, prompts = _ragged_items(model)
    g = model.style(prompts[1], torch.tensor([MEL_LENGTHS[1]]))
    runs = [
        model.infer(tokens[1], torch.tensor([LENGTHS[1]]), g, generator=torch.Generator().manual_seed(s))
        for s in (7, 7, 8)
    ]
    assert torch.equal(runs[0].w2v, runs[1].w2v)
    assert runs[0].w2v.shape != runs[2].w2v.shape or not torch.equal(runs[0].w2v, runs[2].w2v)


# ---------------------------------------------------------------- loading


def test_from_pretrained_loads_raw_state_dict_strictly(tmp_path) -> None:
    model = TTV.from_config(tiny_ttv_config())
    state = synthetic_state_dict(model.state_dict())
    path = tmp_path / "ttv_ckpt.pth"
    torch.save(state, path)
    (tmp_path / "config.json").write_text(json.dumps({"model": tiny_ttv_config().to_dict()}))
    loaded = TTV.from_pretrained(path)
    assert not loaded.training
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, state[key]), key

    del state["dp.flows.0.m"]
    torch.save(state, path)
    with pytest.raises(CheckpointMismatchError, match=r"dp\.flows\.0\.m"):
        TTV.from_pretrained(path, config=tiny_ttv_config())


def test_invalid_inputs_are_named() -> None:
    model = tiny_ttv(seed=7)
    g = torch.zeros(1, model.config.gin_channels, 1)
    tokens = torch.tensor([[1, 2, 3]])
    with pytest.raises(ValueError, match="token ids"):
        model.infer(torch.tensor([[1, model.config.n_vocab]]), torch.tensor([2]), g)
    with pytest.raises(ValueError, match="token_lengths"):
        model.infer(tokens, torch.tensor([4]), g)
    with pytest.raises(ValueError, match="style g"):
        model.infer(tokens, torch.tensor([3]), torch.zeros(1, model.config.gin_channels))


def test_zero_low_log_f0_matches_the_official_clipping() -> None:
    log_f0 = torch.log(torch.tensor([[[30.0, 54.9, 55.0, 200.0]]]))
    expected = torch.tensor(
        [[[0.0, 0.0, float(torch.log(torch.tensor(55.0))), float(torch.log(torch.tensor(200.0)))]]]
    )
    torch.testing.assert_close(zero_low_log_f0(log_f0), expected, atol=0, rtol=0)


def test_tiny_ttv_output_feeds_the_tiny_synthesizer() -> None:
    """TTV features, lengths and clipped log-F0 have the layout the synthesizer's VC call expects."""
    from hierspeech.testing.tiny import tiny_synthesizer

    ttv, synthesizer = tiny_ttv(seed=8), tiny_synthesizer()
    tokens, prompts = _ragged_items(ttv)
    mels, mel_lengths = _pad(prompts + prompts), torch.tensor(MEL_LENGTHS * 2)
    g = ttv.blended_style(mels, mel_lengths, batch_size=3, denoise_ratio=0.0)
    out = ttv.infer(
        _pad(tokens), torch.tensor(LENGTHS), g, generator=[torch.Generator().manual_seed(s) for s in SEEDS]
    )
    audio = synthesizer.voice_conversion_noise_control(
        out.w2v, out.lengths, mels, mel_lengths, zero_low_log_f0(out.log_f0), noise_scale=0.0
    )
    assert audio.shape == (3, 1, out.w2v.size(-1) * synthesizer.config.samples_per_frame)
    assert torch.isfinite(audio).all()
