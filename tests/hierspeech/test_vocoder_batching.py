"""The vocoder's ragged batches: bucketed (padded, tails rerun) and per length both equal single items.

Tiny synthesizer (synthetic weights, 8 samples per frame, vocoder radius 79 frames); lengths longer and
shorter than the 158-frame tail, so that buckets, tails and per-length groups all occur.
"""

from __future__ import annotations

import pytest
import torch

from hierspeech.testing.tiny import tiny_synthesizer
from hierspeech.vocoder_batching import vocoder_buckets

ATOL = 1e-5  # float32 rounding of kernels run on other shapes (measured below 1e-6)


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return tiny_synthesizer()


def _latents(model, lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(len(lengths), model.config.inter_channels, max(lengths), generator=gen)
    g = torch.randn(len(lengths), model.config.gin_channels, 1, generator=gen)
    return z, g


def _single(model, z: torch.Tensor, g: torch.Tensor, n: int) -> torch.Tensor:
    with torch.no_grad():
        return model.vocode(z[None, :, :n], g[None])[0]


def test_radius_bounds_the_influence_of_a_frame(model) -> None:
    radius, hop = model.vocoder_radius(), model.config.samples_per_frame
    assert radius == 79
    z, g = _latents(model, [400])
    bumped = z.clone()
    bumped[..., 200] += 1.0
    with torch.no_grad():
        diff = (model.vocode(bumped, g) - model.vocode(z, g)).abs()[0, 0]
    changed = torch.nonzero(diff > 0).flatten()
    assert (200 - radius) * hop <= int(changed.min()) and int(changed.max()) < (201 + radius) * hop
    assert int(changed.max()) > (201 + 30) * hop  # the bound is not vacuous: the response reaches far


def test_zero_padding_alone_would_change_the_tails(model) -> None:
    """Why tails are rerun: a padded item's last outputs differ from its single result."""
    z, g = _latents(model, [400, 300])
    z[1, :, 300:] = 0
    with torch.no_grad():
        e, _ = model.sn(z, g)
        padded = model.dec(z, e, g)[1, :, : 300 * 8]
    alone = _single(model, z[1], g[1], 300)
    assert float((padded - alone).abs().max()) > 1e-3


def test_buckets() -> None:
    assert vocoder_buckets([400, 350, 150, 100, 100, 390], tail=158, max_padding=0.5) == [[0, 5, 1], [2], [3, 4]]
    assert vocoder_buckets([400, 190], tail=158, max_padding=0.5) == [[0], [1]]  # 190 < 200: too much padding
    assert vocoder_buckets([50, 50, 50], tail=158) == [[0, 1, 2]]


@pytest.mark.parametrize("bucketed", [True, False], ids=["bucketed", "by-length"])
def test_ragged_batch_equals_single_items(model, bucketed: bool) -> None:
    lengths = [400, 350, 390, 160, 100, 100, 37]
    z, g = _latents(model, lengths, seed=1)
    calls = []
    hook = model.sn.register_forward_hook(lambda _m, args, _o: calls.append(tuple(args[0].shape)))
    with torch.no_grad():
        audio = model.vocode(z, g, torch.tensor(lengths), bucketed=bucketed)
    hook.remove()
    hop = model.config.samples_per_frame
    worst = 0.0
    for i, n in enumerate(lengths):
        worst = max(worst, float((audio[i, :, : n * hop] - _single(model, z[i], g[i], n)).abs().max()))
        assert torch.all(audio[i, :, n * hop :] == 0)
    assert worst <= ATOL, worst
    # bucketed: [400, 390, 350] padded, [160], [100, 100], [37], then one batch of the two tails
    assert len(calls) == (5 if bucketed else 6)
    if bucketed:
        assert calls[0] == (3, model.config.inter_channels, 400) and calls[-1][0] == 2
