"""Random draws with a CPU generator on a model that lives elsewhere (CUDA in production).

CUDA refuses ``torch.randn(..., generator=cpu_generator, device="cuda")``; the meta device does not
check, so these tests install that check (`strict_draws`) and run the drawing code on "meta". Every
model draw goes through `hierspeech.modules.noise.standard_normal`, which draws on the generator's
device and moves the result.
"""

from __future__ import annotations

import pytest
import torch

from hierspeech.modules.noise import standard_normal
from hierspeech.testing.tiny import tiny_synthesizer
from hierspeech.testing.tiny_ttv import tiny_ttv
from hierspeech.ttv import _draw_noise


@pytest.fixture
def strict_draws(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """torch.randn and Tensor.normal_ refuse a generator of another device type, as on CUDA."""
    seen: list[str] = []
    randn, normal_ = torch.randn, torch.Tensor.normal_

    def check(generator: torch.Generator | None, device: torch.device | str | None) -> None:
        target = torch.device(device if device is not None else "cpu")
        if generator is not None:
            seen.append(f"{generator.device.type}->{target.type}")
            if generator.device.type != target.type:
                raise RuntimeError(f"Expected a '{target.type}' device type for generator but found '{generator.device.type}'")

    def strict_randn(*size, generator=None, device=None, **kwargs):
        check(generator, device)
        return randn(*size, generator=generator, device=device, **kwargs)

    def strict_normal(self, *args, generator=None, **kwargs):
        check(generator, self.device)
        return normal_(self, *args, generator=generator, **kwargs)

    monkeypatch.setattr(torch, "randn", strict_randn)
    monkeypatch.setattr(torch.Tensor, "normal_", strict_normal)
    return seen


def test_strict_draws_refuse_what_cuda_refuses(strict_draws) -> None:
    with pytest.raises(RuntimeError, match="device type for generator"):
        torch.randn(2, 3, generator=torch.Generator(), device="meta")


@pytest.mark.parametrize("time_major", [False, True])
def test_standard_normal_draws_on_the_generator_device(strict_draws, time_major: bool) -> None:
    on_meta = standard_normal((2, 3, 5), torch.Generator().manual_seed(1), "meta", torch.float32, time_major=time_major)
    assert on_meta.device.type == "meta" and on_meta.shape == (2, 3, 5)
    on_cpu = standard_normal((2, 3, 5), torch.Generator().manual_seed(1), "cpu", torch.float32, time_major=time_major)
    if time_major:
        expected = torch.empty(2, 5, 3).transpose(1, 2).normal_(generator=torch.Generator().manual_seed(1))
    else:
        expected = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(on_cpu, expected)  # the same numbers as a draw on the generator's device
    assert strict_draws == ["cpu->cpu"] * 3


def test_synthesizer_prior_noise_with_a_cpu_generator(strict_draws) -> None:
    model = tiny_synthesizer().to("meta")
    strict_draws.clear()  # building the tiny model drew its weights
    src, f0 = torch.empty(2, 1024, 10, device="meta"), torch.empty(2, 1, 40, device="meta")
    g = torch.empty(2, model.config.gin_channels, 1, device="meta")
    z, _ = model._prior_latent(src, torch.tensor([10, 8], device="meta"), f0, g, 0.333, None, torch.Generator())
    assert z.device.type == "meta" and z.shape == (2, model.config.inter_channels, 10)
    assert strict_draws == ["cpu->cpu", "cpu->cpu"]  # the official discarded draw, then the noise


def test_duration_noise_with_a_cpu_generator(strict_draws, monkeypatch: pytest.MonkeyPatch) -> None:
    dp = tiny_ttv().dp.to("meta")
    strict_draws.clear()
    monkeypatch.setattr(dp, "inference_flows", lambda: [])  # the spline flows need real values
    x, mask = torch.empty(2, 16, 7, device="meta"), torch.ones(2, 1, 7, device="meta")
    logw = dp(x, mask, g=torch.empty(2, 8, 1, device="meta"), generator=torch.Generator())
    assert logw.device.type == "meta" and logw.shape == (2, 1, 7)
    assert strict_draws == ["cpu->cpu"]


def test_w2v_posterior_noise_with_a_cpu_generator(strict_draws) -> None:
    encoder = tiny_ttv().enc_q.to("meta")
    strict_draws.clear()
    x, mask = torch.empty(1, 1024, 6, device="meta"), torch.ones(1, 1, 6, device="meta")
    z, _, _ = encoder(x, mask, g=torch.empty(1, 8, 1, device="meta"), generator=torch.Generator())
    assert z.device.type == "meta" and strict_draws == ["cpu->cpu"]


@pytest.mark.parametrize("duration", [True, False])
def test_ttv_noise_with_cpu_generators(strict_draws, duration: bool) -> None:
    like = torch.empty(2, 4, 9, device="meta")
    lengths = torch.tensor([9, 5])
    one = _draw_noise((2, 4, 9), lengths, torch.Generator(), like, duration)
    per_item = _draw_noise((2, 4, 9), lengths, [torch.Generator(), torch.Generator()], like, duration)
    assert one.device.type == per_item.device.type == "meta"
    assert strict_draws == ["cpu->cpu"] * 3
