"""Windowed linear resize: equal to torch's whole-signal F.interpolate, for any window."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from hierspeech.modules.resize import linear_resize, resize_input_span


@pytest.mark.parametrize("n_in", [1, 2, 3, 7, 100, 12345, 48001])
@pytest.mark.parametrize("factor", [1.5, 3.0])
def test_whole_signal_matches_interpolate(n_in: int, factor: float) -> None:
    torch.manual_seed(n_in)
    x = torch.randn(2, 4, n_in)
    n_out = int(n_in * factor)
    expected = F.interpolate(x, size=n_out, mode="linear")
    got = linear_resize(x, n_in, n_out)
    # PyTorch's CPU kernel is reproduced bit for bit on this machine; 1e-6 leaves room for a kernel
    # built without fused multiply-add.
    assert (got - expected).abs().max().item() <= 1e-6


def test_window_equals_slice_of_whole() -> None:
    torch.manual_seed(0)
    n_in = 20001
    n_out = int(n_in * 1.5)
    x = torch.randn(1, 3, n_in)
    whole = linear_resize(x, n_in, n_out)
    for start, stop in [(0, 10), (777, 5000), (n_out - 300, n_out)]:
        first, last = resize_input_span(n_in, n_out, start, stop)
        part = linear_resize(x[..., first : last + 1], n_in, n_out, start, stop, in_start=first)
        assert torch.equal(part, whole[..., start:stop])


def test_window_needing_missing_samples_raises() -> None:
    x = torch.randn(1, 1, 10)
    with pytest.raises(ValueError, match="outside"):
        linear_resize(x, 100, 150, 100, 120, in_start=0)
