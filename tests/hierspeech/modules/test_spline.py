"""Rational-quadratic spline: an exact bijection with consistent log-determinants, identity outside."""

from __future__ import annotations

import pytest
import torch

from hierspeech.modules.spline import piecewise_rational_quadratic


def _params(
    shape: tuple[int, ...],
    seed: int = 0,
    scale: float = 2.0,
    dtype: torch.dtype = torch.float32,
    bins: int = 10,
) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(*shape, n, generator=gen, dtype=dtype) * scale for n in (bins, bins, bins - 1))


@pytest.mark.parametrize(
    ("dtype", "scale", "atol"),
    [(torch.float64, 2.0, 1e-8), (torch.float32, 0.5, 1e-5)],  # float32 loses digits in very steep bins
)
def test_inverse_undoes_forward_and_logdets_cancel(dtype: torch.dtype, scale: float, atol: float) -> None:
    x = torch.linspace(-6, 6, 241, dtype=dtype).view(1, 1, -1)  # includes both tails
    widths, heights, derivs = _params(tuple(x.shape), scale=scale, dtype=dtype)
    y, logdet = piecewise_rational_quadratic(x, widths, heights, derivs, tail_bound=5.0)
    x_back, logdet_inv = piecewise_rational_quadratic(
        y, widths, heights, derivs, inverse=True, tail_bound=5.0
    )
    assert (y - x).abs().max() > 0.1  # the spline is far from the identity
    torch.testing.assert_close(x_back, x, atol=atol, rtol=0)
    torch.testing.assert_close(logdet + logdet_inv, torch.zeros_like(logdet), atol=atol, rtol=0)


def test_identity_outside_the_interval_and_monotonic_inside() -> None:
    x = torch.linspace(-8, 8, 401).view(1, -1)
    widths, heights, derivs = _params(tuple(x.shape), seed=1)
    y, logdet = piecewise_rational_quadratic(x, widths, heights, derivs, tail_bound=5.0)
    outside = x.abs() > 5.0
    assert torch.equal(y[outside], x[outside]) and (logdet[outside] == 0).all()
    # the same parameters for every element -> y is a monotonic function of x, mapping [-5, 5] onto itself
    shared = tuple(p[:, :1].expand_as(p) for p in (widths, heights, derivs))
    y_shared, _ = piecewise_rational_quadratic(x, *shared, tail_bound=5.0)
    assert (y_shared.diff(dim=-1) > 0).all()
    ends = y_shared[0, [75, 325]]  # x = -5, 5
    torch.testing.assert_close(ends, torch.tensor([-5.0, 5.0]), atol=1e-5, rtol=0)
