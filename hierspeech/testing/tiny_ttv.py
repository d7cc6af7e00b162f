"""A tiny random TTV for fast tests of code that consumes TTV outputs (and of the TTV itself)."""

from __future__ import annotations

import math

import torch

from hierspeech.ttv import TTV, TTVConfig


def tiny_ttv_config() -> TTVConfig:
    """A TTVConfig with small sizes (~0.2M parameters), same structure as the release; it keeps the
    1024-wide w2v output and 80-band mel prompts, so it chains with any synthesizer, tiny ones included."""
    return TTVConfig(
        inter_channels=16,
        hidden_channels=16,
        gin_channels=8,
        n_vocab=20,
        w2v_channels=1024,  # the w2v width every synthesizer (tiny ones included) reads
        mel_channels=80,
        style_hidden_channels=8,
        text_n_heads=2,
        text_n_layers=1,
        text_kernel_size=3,
        posterior_n_layers=2,
        flow_n_layers=1,
        flow_n_heads=2,
        n_flows=2,
        decoder_n_layers=2,
        pitch_channels=8,
    )


def tiny_ttv(seed: int = 0, std: float = 0.2) -> TTV:
    """Tiny TTV with random parameters (N(0, std^2), at most 1/fan_in variance for matrices; norm
    gains around 1), eval mode.

    Non-zero flows and duration predictor, unlike a fresh construction whose flows start as identities.
    """
    model = TTV.from_config(tiny_ttv_config())
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            # at most 1/fan_in variance for matrices keeps activations O(1) through 1024-wide layers
            scale = std if param.dim() < 2 else min(std, 1.0 / math.sqrt(param[0].numel()))
            noise = torch.randn(param.shape, generator=generator) * scale
            leaf = name.rsplit(".", 1)[-1]
            param.copy_(1.0 + noise if leaf in {"weight_g", "gamma"} else noise)
    return model.eval()
