"""Pitch predictor: a mask of ones changes nothing; with a ragged mask each item equals its own run."""

from __future__ import annotations

import torch

from hierspeech.modules.pitch import PitchPredictor


def _tiny() -> PitchPredictor:
    torch.manual_seed(0)
    model = PitchPredictor(in_channels=6, gin_channels=4, initial_channels=8).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # non-zero biases so padding would leak
    return model


def test_mask_of_ones_is_the_unmasked_computation() -> None:
    model = _tiny()
    x, g = torch.randn(2, 6, 9), torch.randn(2, 4, 1)
    with torch.no_grad():
        assert torch.equal(model(x, g, torch.ones(2, 1, 9)), model(x, g))


def test_ragged_batch_equals_single_items() -> None:
    model = _tiny()
    lengths = [9, 5]
    x, g = torch.randn(2, 6, 9), torch.randn(2, 4, 1)
    x[1, :, 5:] = 0.0
    mask = (torch.arange(9) < torch.tensor(lengths)[:, None]).float().unsqueeze(1)
    with torch.no_grad():
        batched = model(x, g, mask)
        for b, n in enumerate(lengths):
            single = model(x[b : b + 1, :, :n], g[b : b + 1])
            assert single.shape[-1] == 4 * n
            torch.testing.assert_close(batched[b : b + 1, :, : 4 * n], single, atol=1e-6, rtol=0)
            assert (batched[b, :, 4 * n :] == 0).all()
