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


class SnakeBeta(nn.Module):
    """Snake with separate frequency (``alpha``) and magnitude (``beta``) per channel."""

    def __init__(self, channels: int, alpha: float = 1.0, alpha_trainable: bool = True,
                 alpha_logscale: bool = False) -> None:
        super().__init__()
        self.channels = channels
        self.alpha_logscale = alpha_logscale
        init = torch.zeros(channels) if alpha_logscale else torch.ones(channels) * alpha
        self.alpha = nn.Parameter(init.clone(), requires_grad=alpha_trainable)
        self.beta = nn.Parameter(init.clone(), requires_grad=alpha_trainable)

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel ``(alpha, 1 / (beta + eps))``, both shape (C,), after the log-scale exp."""
        alpha, beta = self.alpha, self.beta
        if self.alpha_logscale:
            alpha, beta = alpha.exp(), beta.exp()
        return alpha, 1.0 / (beta + _EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, C, T); any (B, C, ...) layout works (channels on dim 1)."""
        alpha, inv_beta = self.factors()
        shape = (-1,) + (1,) * (x.dim() - 2)
        return snake_beta(x, alpha.view(shape), inv_beta.view(shape))


class Snake(nn.Module):
    """Snake with one parameter per channel: ``x + 1/a * sin(a x)^2``."""

    def __init__(self, channels: int, alpha: float = 1.0, alpha_trainable: bool = True,
                 alpha_logscale: bool = False) -> None:
        super().__init__()
        self.channels = channels
        self.alpha_logscale = alpha_logscale
        init = torch.zeros(channels) if alpha_logscale else torch.ones(channels) * alpha
        self.alpha = nn.Parameter(init.clone(), requires_grad=alpha_trainable)

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel ``(alpha, 1 / (alpha + eps))``, both shape (C,)."""
        alpha = self.alpha.exp() if self.alpha_logscale else self.alpha
        return alpha, 1.0 / (alpha + _EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, C, T); any (B, C, ...) layout works (channels on dim 1)."""
        alpha, inv_alpha = self.factors()
        shape = (-1,) + (1,) * (x.dim() - 2)
        return snake_beta(x, alpha.view(shape), inv_alpha.view(shape))
