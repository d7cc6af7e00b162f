"""Snake activations (Liu et al. 2020, "Neural networks fail to learn periodic functions ...").

``Snake(x) = x + 1/a * sin(a x)^2`` and ``SnakeBeta(x) = x + 1/b * sin(a x)^2``, with one ``a`` (and ``b``)
per channel. With ``alpha_logscale=True`` (what HierSpeech++ uses) the stored parameters are
``log a`` / ``log b``. A small epsilon keeps the division finite, as in the official models.
"""

from __future__ import annotations

import torch
from torch import nn

_EPS = 1e-9


def snake_beta(x: torch.Tensor, alpha: torch.Tensor, inv_beta: torch.Tensor) -> torch.Tensor:
    """``x + inv_beta * sin(alpha * x)^2`` with per-channel factors broadcast against `x` (any layout)."""
    if torch.is_grad_enabled():  # autograd needs the intermediates: no in-place updates
        return x + inv_beta * torch.sin(x * alpha).square()
    y = torch.mul(x, alpha)
    y.sin_()
    y.square_()
    y.mul_(inv_beta)
    return y.add_(x)


class _SnakeActivation(nn.Module):
    """What both variants share: the per-channel ``alpha`` (stored as ``log a`` with `alpha_logscale`)
    and the forward; `factors()` gives the per-channel (alpha, 1 / magnitude)."""

    def __init__(self, channels: int, alpha: float, alpha_trainable: bool, alpha_logscale: bool) -> None:
        super().__init__()
        self.channels = channels
        self.alpha_logscale = alpha_logscale
        self.alpha = nn.Parameter(self.initial(alpha), requires_grad=alpha_trainable)

    def initial(self, value: float) -> torch.Tensor:
        """A parameter's initial value: `value` per channel (0 = log 1 with log-scale parameters)."""
        return torch.zeros(self.channels) if self.alpha_logscale else torch.ones(self.channels) * value

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, C, T); any (B, C, ...) layout works (channels on dim 1)."""
        alpha, inverse = self.factors()
        shape = (-1,) + (1,) * (x.dim() - 2)
        return snake_beta(x, alpha.view(shape), inverse.view(shape))


class SnakeBeta(_SnakeActivation):
    """Snake with separate frequency (``alpha``) and magnitude (``beta``) per channel."""

    def __init__(self, channels: int, alpha: float = 1.0, alpha_trainable: bool = True,
                 alpha_logscale: bool = False) -> None:
        super().__init__(channels, alpha, alpha_trainable, alpha_logscale)
        self.beta = nn.Parameter(self.initial(alpha), requires_grad=alpha_trainable)

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel ``(alpha, 1 / (beta + eps))``, both shape (C,), after the log-scale exp."""
        alpha, beta = self.alpha, self.beta
        if self.alpha_logscale:
            alpha, beta = alpha.exp(), beta.exp()
        return alpha, 1.0 / (beta + _EPS)


class Snake(_SnakeActivation):
    """Snake with one parameter per channel: ``x + 1/a * sin(a x)^2``."""

    def __init__(self, channels: int, alpha: float = 1.0, alpha_trainable: bool = True,
                 alpha_logscale: bool = False) -> None:
        super().__init__(channels, alpha, alpha_trainable, alpha_logscale)

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel ``(alpha, 1 / (alpha + eps))``, both shape (C,)."""
        alpha = self.alpha.exp() if self.alpha_logscale else self.alpha
        return alpha, 1.0 / (alpha + _EPS)
