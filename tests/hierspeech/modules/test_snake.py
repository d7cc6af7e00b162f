"""Snake activations: the log-scale parameterisation and formula of the official models."""

from __future__ import annotations

import torch

from hierspeech.modules import Snake, SnakeBeta


def test_snake_beta_formula_log_scale() -> None:
    act = SnakeBeta(3, alpha_logscale=True)
    with torch.no_grad():
        act.alpha.copy_(torch.tensor([0.0, 1.0, -0.5]))
        act.beta.copy_(torch.tensor([0.5, 0.0, 2.0]))
    x = torch.randn(2, 3, 11)
    a, b = act.alpha.exp()[:, None], act.beta.exp()[:, None]
    expected = x + 1.0 / (b + 1e-9) * torch.sin(a * x) ** 2
    with torch.no_grad():
        torch.testing.assert_close(act(x), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(act(x), expected, atol=1e-6, rtol=0)  # grad-enabled path too
    assert set(act.state_dict()) == {"alpha", "beta"}


def test_snake_linear_scale_and_4d_layout() -> None:
    act = Snake(2, alpha=2.0)
    x = torch.randn(1, 2, 3, 5)
    expected = x + 1.0 / (2.0 + 1e-9) * torch.sin(2.0 * x) ** 2
    with torch.no_grad():
        torch.testing.assert_close(act(x), expected, atol=1e-6, rtol=0)
