"""Shared sequence modules: padded batches equal single unpadded runs on valid frames; flows invert.

The official attention-based blocks are not all padding-invariant (the DiT attention has no mask, the
style encoder pools padding); these tests are the property our versions add, checked at small sizes.
"""

from __future__ import annotations

import pytest
import torch

from hierspeech.modules.attention import Encoder
from hierspeech.modules.flows import ResidualCouplingLayer, TransformerCouplingBlock
from hierspeech.modules.masking import frame_mask, sequence_mask
from hierspeech.modules.style_encoder import StyleEncoder
from hierspeech.modules.wavenet import WN
from hierspeech.testing.synthetic_weights import load_synthetic_weights

LENGTHS = [19, 11, 4]
ATOL = 1e-5


def _randomise(module: torch.nn.Module) -> torch.nn.Module:
    """Synthetic weights, scaled up so attention and gates are far from uniform (a missing mask shows)."""
    load_synthetic_weights(module)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if not name.endswith(("gamma", "weight_g")):
                p.mul_(10)
    return module


def _padded(channels: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(LENGTHS)
    x = torch.randn(len(LENGTHS), channels, max(LENGTHS), generator=g)
    mask = frame_mask(lengths, max(LENGTHS))
    return x * mask, mask, lengths


def test_sequence_mask() -> None:
    assert sequence_mask(torch.tensor([2, 0, 3])).tolist() == [
        [True, True, False],
        [False, False, False],
        [True, True, True],
    ]
    assert frame_mask(torch.tensor([1, 2]), 4).shape == (2, 1, 4)


def _check_sequence_model(run, channels: int) -> None:
    x, mask, lengths = _padded(channels)
    batched = run(x, mask, slice(None))
    for i, n in enumerate(lengths.tolist()):
        single = run(x[i : i + 1, :, :n], mask[i : i + 1, :, :n], slice(i, i + 1))
        assert (batched[i : i + 1, :, :n] - single).abs().max().item() <= ATOL, i
        assert single.abs().max().item() > 1e-3  # not trivially zero


@torch.no_grad()
def test_relative_attention_encoder_is_padding_invariant() -> None:
    encoder = _randomise(Encoder(16, 32, n_heads=2, n_layers=2, kernel_size=3)).eval()
    _check_sequence_model(lambda x, m, _: encoder(x, m), 16)


@torch.no_grad()
def test_wavenet_is_padding_invariant() -> None:
    wn = _randomise(WN(16, 5, 1, 4, gin_channels=8)).eval()
    cond = torch.randn(len(LENGTHS), 8, 1)
    _check_sequence_model(lambda x, m, items: wn(x, m, g=cond[items]), 16)


@torch.no_grad()
def test_transformer_coupling_block_is_padding_invariant_and_inverts() -> None:
    block = _randomise(TransformerCouplingBlock(8, 16, 5, 1, n_layers=2, n_flows=2, gin_channels=12)).eval()
    cond = torch.randn(len(LENGTHS), 12, 1)
    x, mask, lengths = _padded(8)
    batched = block(x, mask, g=cond, reverse=True)
    for i, n in enumerate(lengths.tolist()):
        single = block(x[i : i + 1, :, :n], mask[i : i + 1, :, :n], g=cond[i : i + 1], reverse=True)
        assert (batched[i : i + 1, :, :n] - single).abs().max().item() <= ATOL, i
    assert (batched - x).abs().max().item() > 1e-2  # the flow does something
    restored = block(batched, mask, g=cond, reverse=False)
    assert (restored - x).abs().max().item() <= 1e-4


@pytest.mark.parametrize("mean_only", [True, False])
@torch.no_grad()
def test_wavenet_coupling_inverts(mean_only: bool) -> None:
    layer = _randomise(ResidualCouplingLayer(8, 16, 5, 1, 3, gin_channels=4, mean_only=mean_only)).eval()
    x, mask, _ = _padded(8)
    g = torch.randn(len(LENGTHS), 4, 1)
    y = layer(x, mask, g=g)
    assert (y - x).abs().max().item() > 1e-2
    assert (layer(y, mask, g=g, reverse=True) - x).abs().max().item() <= 1e-4


@torch.no_grad()
def test_style_encoder_is_padding_invariant() -> None:
    encoder = _randomise(StyleEncoder(in_dim=10, hidden_dim=16, out_dim=8)).eval()
    x, mask, lengths = _padded(10)
    batched = encoder(x, mask)
    for i, n in enumerate(lengths.tolist()):
        single = encoder(x[i : i + 1, :, :n])  # no mask: the whole (unpadded) prompt
        assert (batched[i] - single[0]).abs().max().item() <= ATOL, i
