"""Alias-free blocks: official buffer names/values, and the phase-domain path equals the plain one."""

from __future__ import annotations

import pytest
import torch

from hierspeech.checkpoint import read_state_dict
from hierspeech.modules import Activation1d, SnakeBeta, UpSample1d, kaiser_sinc_filter1d


def test_state_dict_names_and_shapes() -> None:
    act = Activation1d(SnakeBeta(4, alpha_logscale=True))
    shapes = {k: tuple(v.shape) for k, v in act.state_dict().items()}
    assert shapes == {
        "act.alpha": (4,),
        "act.beta": (4,),
        "upsample.filter": (1, 1, 12),
        "downsample.lowpass.filter": (1, 1, 12),
    }


def test_filters_equal_the_released_checkpoint(reference_dir) -> None:
    """The real SpeechSR checkpoint stores its alias-free filters: ours must be the same numbers."""
    state = read_state_dict(reference_dir / "weights/speechsr48k/G_100000.pth", "model")
    stored_up = state["dec.activation_post.upsample.filter"]
    stored_down = state["dec.activation_post.downsample.lowpass.filter"]
    assert torch.equal(kaiser_sinc_filter1d(0.25, 0.3, 12), stored_up)
    assert torch.equal(kaiser_sinc_filter1d(0.25, 0.3, 12), stored_down)


def _reference_activation(act: Activation1d, x: torch.Tensor) -> torch.Tensor:
    """Zero-stuffing upsampler (transposed conv), activation, padded strided low-pass: the plain path."""
    up = act.upsample
    r, channels, length = up.ratio, x.shape[1], x.shape[-1]
    xp = torch.nn.functional.pad(x, (up.pad, up.pad), mode="replicate")
    u = r * torch.nn.functional.conv_transpose1d(xp, up.filter.expand(channels, -1, -1), stride=r, groups=channels)
    u = u[..., up.crop_left : up.crop_left + r * length]
    return act.downsample(act.act(u))


@pytest.mark.parametrize("length", [1, 2, 3, 8, 97, 1000])
@pytest.mark.parametrize(("ratio", "kernel"), [(2, 12), (3, 18), (2, 8)])
def test_phase_path_equals_plain_path(length: int, ratio: int, kernel: int) -> None:
    torch.manual_seed(length)
    snake = SnakeBeta(6, alpha_logscale=True)
    with torch.no_grad():
        snake.alpha.normal_()
        snake.beta.normal_()
    act = Activation1d(snake, ratio, ratio, kernel, kernel)
    assert act.fused
    x = torch.randn(3, 6, length)
    with torch.no_grad():
        expected = _reference_activation(act, x)
        got = act(x)
        got_up = act.upsample(x)
    assert got.shape == (3, 6, length)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert got_up.shape == (3, 6, ratio * length)


def test_upsample_non_polyphase_kernel_falls_back() -> None:
    up = UpSample1d(2, 11)
    assert not up.polyphase
    assert up(torch.randn(1, 2, 10)).shape == (1, 2, 20)


def test_activation_backpropagates() -> None:
    act = Activation1d(SnakeBeta(2, alpha_logscale=True))
    x = torch.randn(1, 2, 16, requires_grad=True)
    act(x).sum().backward()
    assert x.grad is not None and act.act.alpha.grad is not None
