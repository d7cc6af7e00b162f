"""Tiny synthesizer configs with deterministic weights, for fast tests of code built on `hierspeech`."""

from __future__ import annotations

from hierspeech.synthesizer import Synthesizer, SynthesizerConfig
from hierspeech.testing.synthetic_weights import load_synthetic_weights


def tiny_synthesizer_config() -> SynthesizerConfig:
    """A synthesizer config with small channels and 8 output samples per w2v frame (w2v input stays 1024)."""
    return SynthesizerConfig(
        inter_channels=16,
        hidden_channels=16,
        filter_channels=32,
        resblock_kernel_sizes=[3, 5],
        resblock_dilation_sizes=[[1, 3], [1, 3]],
        upsample_rates=[4, 2],
        upsample_initial_channel=32,
        upsample_kernel_sizes=[8, 4],
        gin_channels=32,
        prosody_size=8,
        cfg=True,
        hop_length=8,
    )


def tiny_synthesizer() -> Synthesizer:
    """A tiny synthesizer holding the conformance kit's synthetic weights (deterministic), in eval mode."""
    return load_synthetic_weights(Synthesizer(tiny_synthesizer_config()))
