"""Monotonic rational-quadratic spline transform (Durkan et al. 2019, "Neural Spline Flows").

Used by the duration predictor's `ConvFlow`. Inside [-tail_bound, tail_bound] each value goes through a
K-bin rational-quadratic spline whose bin widths, heights and knot derivatives are predicted per
element; outside it the map is the identity ("linear" tails, knot derivatives 1 at the bounds).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MIN_BIN_WIDTH = 1e-3
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3


def _knots(
    unnormalized: torch.Tensor, low: float, high: float, min_size: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bin sizes (..., K) and knot positions (..., K+1) spanning [low, high], each bin >= min_size of it."""
    num_bins = unnormalized.size(-1)
    sizes = min_size + (1 - min_size * num_bins) * torch.softmax(unnormalized, dim=-1)
    knots = F.pad(torch.cumsum(sizes, dim=-1), (1, 0), value=0.0)
    knots = (high - low) * knots + low
    knots[..., 0] = low
    knots[..., -1] = high
    return knots[..., 1:] - knots[..., :-1], knots


def _bin_index(knots: torch.Tensor, values: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Index of the bin holding each value (..., 1); a value on the last knot belongs to the last bin."""
    knots = knots.clone()
    knots[..., -1] += eps
    index = torch.searchsorted(knots.contiguous(), values.unsqueeze(-1).contiguous(), right=True) - 1
    return index.clamp(0, knots.size(-1) - 2)


def rational_quadratic_spline(
    inputs: torch.Tensor,
    unnormalized_widths: torch.Tensor,
    unnormalized_heights: torch.Tensor,
    unnormalized_derivatives: torch.Tensor,
    inverse: bool = False,
    bound: float = 1.0,
    min_bin_width: float = MIN_BIN_WIDTH,
    min_bin_height: float = MIN_BIN_HEIGHT,
    min_derivative: float = MIN_DERIVATIVE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spline on [-bound, bound] for inputs (N,) with parameters (N, K), (N, K), (N, K+1).

    Returns outputs (N,) and log|d outputs / d inputs| (N,) (of the direction computed).
    """
    widths, x_knots = _knots(unnormalized_widths, -bound, bound, min_bin_width)
    heights, y_knots = _knots(unnormalized_heights, -bound, bound, min_bin_height)
    derivatives = min_derivative + F.softplus(unnormalized_derivatives)

    index = _bin_index(y_knots if inverse else x_knots, inputs)
    x_k = x_knots.gather(-1, index)[..., 0]
    w_k = widths.gather(-1, index)[..., 0]
    y_k = y_knots.gather(-1, index)[..., 0]
    h_k = heights.gather(-1, index)[..., 0]
    slope = h_k / w_k
    d_k = derivatives.gather(-1, index)[..., 0]
    d_k1 = derivatives[..., 1:].gather(-1, index)[..., 0]
    curvature = d_k + d_k1 - 2 * slope

    if inverse:
        offset = inputs - y_k
        a = offset * curvature + h_k * (slope - d_k)
        b = h_k * d_k - offset * curvature
        c = -slope * offset
        discriminant = b.pow(2) - 4 * a * c
        theta = (2 * c) / (-b - torch.sqrt(discriminant))
        outputs = theta * w_k + x_k
    else:
        theta = (inputs - x_k) / w_k
    theta_1m = theta * (1 - theta)
    denominator = slope + curvature * theta_1m
    if not inverse:
        outputs = y_k + h_k * (slope * theta.pow(2) + d_k * theta_1m) / denominator
    numerator = slope.pow(2) * (d_k1 * theta.pow(2) + 2 * slope * theta_1m + d_k * (1 - theta).pow(2))
    logabsdet = torch.log(numerator) - 2 * torch.log(denominator)
    return outputs, (-logabsdet if inverse else logabsdet)


def piecewise_rational_quadratic(
    inputs: torch.Tensor,
    unnormalized_widths: torch.Tensor,
    unnormalized_heights: torch.Tensor,
    unnormalized_derivatives: torch.Tensor,
    inverse: bool = False,
    tails: str = "linear",
    tail_bound: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spline inside [-tail_bound, tail_bound], identity outside.

    inputs (...), widths/heights (..., K), derivatives (..., K-1) (interior knots; the two boundary
    knots get derivative 1). Returns outputs (...) and log|det| (...) (0 outside the interval).
    """
    if tails != "linear":
        raise ValueError(f"only linear tails are supported, got {tails!r}")
    boundary = math.log(math.expm1(1 - MIN_DERIVATIVE))  # softplus^-1(1 - min): derivative exactly 1
    derivatives = F.pad(unnormalized_derivatives, (1, 1), value=boundary)
    inside = (inputs >= -tail_bound) & (inputs <= tail_bound)
    outputs = inputs.clone()
    logabsdet = torch.zeros_like(inputs)
    if bool(inside.any()):
        outputs[inside], logabsdet[inside] = rational_quadratic_spline(
            inputs[inside],
            unnormalized_widths[inside],
            unnormalized_heights[inside],
            derivatives[inside],
            inverse=inverse,
            bound=tail_bound,
        )
    return outputs, logabsdet
