"""The compiled CPU kernel of the anti-aliased SnakeBeta: its sin^2 and its agreement with the tensor path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hierspeech.modules import Activation1d, SnakeBeta
from hierspeech.modules.alias_free_kernel import _snake_beta


def test_snake_polynomial_matches_float64_sine_over_a_wide_range() -> None:
    """Range reduction + degree-11 polynomial: ``v + sin(a v)^2`` to float32 rounding of the result."""
    values = np.concatenate([
        np.linspace(-50.0, 50.0, 200_001), np.linspace(-1e4, 1e4, 200_001), [0.0, np.pi / 2, -np.pi, 1e-30]
    ]).astype(np.float32)
    for alpha in (np.float32(0.3), np.float32(1.0), np.float32(7.5)):
        got = values.copy()
        _snake_beta(got, alpha, np.float32(1.0))
        expected = values.astype(np.float64) + np.sin((values * alpha).astype(np.float64)) ** 2
        # The float32 result is rounded once (half an ulp of |v|), the sine term is good to ~2e-6.
        allowed = 3e-6 + np.spacing(np.abs(values))
        err = np.abs(got.astype(np.float64) - expected)
        assert (err <= allowed).all(), f"alpha {alpha}: worst excess {(err - allowed).max()}"


@pytest.mark.parametrize("length", [1, 2, 5, 64, 4099])
@pytest.mark.parametrize(("ratio", "kernel"), [(2, 12), (3, 18)])
def test_compiled_path_equals_tensor_path(length: int, ratio: int, kernel: int) -> None:
    """float32 inference runs the compiled kernel; float64 runs the tensor ops: same numbers."""
    torch.manual_seed(length + ratio)
    snake = SnakeBeta(5, alpha_logscale=True)
    with torch.no_grad():
        snake.alpha.normal_(0.0, 0.5)
        snake.beta.normal_(0.0, 0.5)
    act = Activation1d(snake, ratio, ratio, kernel, kernel)
    x = 4 * torch.randn(3, 5, length)
    with torch.inference_mode():
        compiled = act(x)
        tensor_ops = act(x.double())
        strided = act(x.transpose(0, 1).contiguous().transpose(0, 1))  # non-contiguous input
    assert compiled.dtype == torch.float32 and compiled.shape == x.shape
    torch.testing.assert_close(compiled.double(), tensor_ops, atol=1e-5, rtol=0)
    assert torch.equal(strided, compiled)


def test_compiled_path_equals_autograd_path() -> None:
    """Training (autograd, tensor ops) and inference (compiled) give the same activation."""
    torch.manual_seed(0)
    act = Activation1d(SnakeBeta(4, alpha_logscale=True))
    x = 2 * torch.randn(2, 4, 300)
    trained = act(x)
    with torch.no_grad():
        inferred = act(x)
    torch.testing.assert_close(inferred, trained.detach(), atol=1e-5, rtol=0)
