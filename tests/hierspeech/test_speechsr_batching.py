"""Batched and windowed SpeechSR equal solo whole-signal runs (equivalence properties, 1e-4)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from hierspeech import SpeechSR
from hierspeech.modules import Activation1d
from hierspeech.speechsr import activation_radius
from hierspeech.speechsr_batching import plan_windows, upsample_batch, upsample_long

ATOL = 1e-4
CHECKPOINTS = {"24k": "speechsr24k/G_340000.pth", "48k": "speechsr48k/G_100000.pth"}


@pytest.fixture(scope="module")
def models(reference_dir: Path) -> dict[str, SpeechSR]:
    torch.set_num_threads(2)
    return {v: SpeechSR.from_pretrained(reference_dir / "weights" / p) for v, p in CHECKPOINTS.items()}


@pytest.fixture(scope="module")
def speech(reference_dir: Path) -> torch.Tensor:
    """All four kit recordings back to back (12 s at 16 kHz)."""
    waves = [sf.read(reference_dir / f"audio/reference_{i}.wav", dtype="float32")[0] for i in range(1, 5)]
    return torch.from_numpy(np.concatenate(waves))


def _solo(model: SpeechSR, wave: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(wave[None, None])[0, 0]


@pytest.mark.parametrize("n_out", [1, 50, 196, 197, 1000, 12345, 100000])
@pytest.mark.parametrize("window", [197, 1000, 4096])
def test_plan_windows_partition_output(n_out: int, window: int) -> None:
    radius = 98
    plans = plan_windows(0, n_out, window, radius)
    assert plans[0].keep_start == 0 and plans[-1].keep_stop == n_out
    for prev, nxt in itertools.pairwise(plans):
        assert prev.keep_stop == nxt.keep_start
    for p in plans:
        assert p.stop - p.start == min(window, n_out)
        assert 0 <= p.start <= p.keep_start < p.keep_stop <= p.stop <= n_out
        assert p.start == 0 or p.keep_start - p.start >= radius
        assert p.stop == n_out or p.stop - p.keep_stop >= radius


def test_receptive_radius_bounds_the_influence(models) -> None:
    """A change in the hidden signal moves no output farther than R samples away.

    (The far ends of the response are products of many small filter taps and vanish below float
    precision, so only the bound is observable end to end; the per-block radius is exact, below.)
    """
    model = models["48k"]
    radius = model.receptive_radius()
    # kernel-11 block: per dilation d, activation 5 + conv 5d + activation 5 + conv 5; then 5 + 3.
    assert radius == sum(15 + 5 * d for d in (1, 3, 5)) + 5 + 3 == 98
    torch.manual_seed(0)
    z = torch.randn(1, 32, 801) * 0.3
    bumped = z.clone()
    bumped[..., 400] += 1.0
    with torch.inference_mode():
        diff = (model.dec.decode(bumped) - model.dec.decode(z)).abs()[0, 0]
    changed = torch.nonzero(diff > 0).flatten()
    assert 400 - radius <= int(changed.min()) < 400 - 60
    assert 400 + 60 < int(changed.max()) <= 400 + radius


def test_activation_radius_is_tight() -> None:
    act = Activation1d(torch.nn.Identity()).double()
    x = torch.zeros(1, 1, 41, dtype=torch.float64)
    x[..., 20] = 1.0
    response = torch.nonzero(act(x)[0, 0]).flatten()
    assert activation_radius(act) == 5
    assert (int(response.min()), int(response.max())) == (20 - 5, 20 + 5)


@pytest.mark.parametrize("variant", ["24k", "48k"])
def test_batch_equals_solo_runs(models, speech: torch.Tensor, variant: str) -> None:
    model = models[variant]
    # Odd and even lengths, shorter and longer than the window, two of equal length.
    waves = [speech[:1], speech[100:107], speech[:4001], speech[5000:17345], speech[:4001] * 0.5]
    outs = upsample_batch(model, waves, window=3000, batch_size=3)
    worst = 0.0
    for wave, out in zip(waves, outs, strict=True):
        solo = _solo(model, wave)
        assert out.shape == solo.shape
        worst = max(worst, float((out - solo).abs().max()))
    assert worst <= ATOL


@pytest.mark.parametrize("variant", ["24k", "48k"])
def test_windowed_long_input_equals_whole(models, speech: torch.Tensor, variant: str) -> None:
    """2 s with an odd length, cut into 1500-sample windows (dozens of boundaries)."""
    wave = speech[3:32004]
    got = upsample_long(models[variant], wave, window=1500, batch_size=8)
    assert float((got - _solo(models[variant], wave)).abs().max()) <= ATOL


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["24k", "48k"])
def test_windowed_20_seconds_equals_whole(models, speech: torch.Tensor, variant: str) -> None:
    wave = torch.cat([speech, speech[: 8 * 16000 + 1]])  # 20 s + 1 sample (odd)
    got = upsample_long(models[variant], wave, window=2048, batch_size=8)
    assert float((got - _solo(models[variant], wave)).abs().max()) <= ATOL


def test_offloaded_outputs_are_the_same_samples_on_the_cpu(models, speech: torch.Tensor) -> None:
    """`offload` (the CUDA default) collects each batch's kept samples on the CPU: same values."""
    model = models["24k"]
    waves = [speech[:4001], speech[5000:17345], speech[100:107]]
    kept = upsample_batch(model, waves, window=3000, batch_size=2, offload=False)
    offloaded = upsample_batch(model, waves, window=3000, batch_size=2, offload=True)
    for a, b in zip(kept, offloaded, strict=True):
        assert b.device.type == "cpu" and torch.equal(a, b)
