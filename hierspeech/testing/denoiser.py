"""A tiny random MP-SENet for fast tests of code that calls `hierspeech.denoiser`."""

from __future__ import annotations

import torch

from hierspeech.denoiser import Denoiser, DenoiserConfig


def tiny_denoiser_config() -> DenoiserConfig:
    """8 channels, one two-stage conformer, 64-point STFT (33 bins) with hop 16, at 16 kHz."""
    return DenoiserConfig(dense_channel=8, num_tsconformers=1, n_fft=64, hop_size=16, win_size=64)


def tiny_denoiser(seed: int = 0) -> Denoiser:
    """A `Denoiser` of `tiny_denoiser_config()` with seeded random weights (norm affines included), eval mode."""
    torch.manual_seed(seed)
    model = Denoiser.from_config(tiny_denoiser_config())
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and "running" not in name:
                tensor.add_(0.1 * torch.randn_like(tensor))
    return model
