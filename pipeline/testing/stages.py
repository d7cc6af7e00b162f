"""Inputs for running the model stages directly, without Ray: tiny checkpoints and ready items.

The model stages (`ModelFeaturesStage`, `SynthesisModelStage`, `SpeechSRStage`) are plain
objects: `setup()` then `stage(items)`. These helpers build the items the CPU stages before them
would hand over (decoded audio, VC F0 contours, TTS token ids), so a test can run a stage at
any batch size on any device, inject a bad row, and compare each row with its solo run. Used by
the CPU suite and by the `gpu` tests of `bench/device_check.sh` (no espeak-ng, YAAPT or Ray
needed there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.engine.item import Item

SAMPLE_RATE = 16000
TTS_VOCABULARY = 178  # the release's symbol table (hierspeech.text.symbols)


def write_model_kit(root: str | Path) -> dict[str, str]:
    """Tiny synthesizer, TTV, denoiser, SpeechSR-24k and a 1024-wide one-layer w2v under `root`.

    Returns {"synthesizer", "ttv", "denoiser", "speechsr24000", "w2v": path}; the w2v layer is 1.
    """
    from hierspeech.testing.tiny_synthesis import write_tiny_checkpoints, write_tiny_w2v

    paths = write_tiny_checkpoints(Path(root), speechsr_rates=(24000,))
    paths["w2v"] = write_tiny_w2v(Path(root))
    return paths


def voice(seconds: float, f0: float, seed: int = 0) -> np.ndarray:
    """(T,) float32 16 kHz "speech": harmonics of a vibrato F0 plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.08 * np.sin(2 * np.pi * 3.0 * t))) / SAMPLE_RATE
    wave = sum(np.sin(k * phase) / k for k in range(1, 6))
    return (0.2 * wave + 0.003 * rng.standard_normal(t.shape)).astype(np.float32)


def audio_item(index: int, seconds: float, *, nan: bool = False) -> Item:
    """A row after decode: 16 kHz `data['audio']` (input of w2v, the denoiser and SpeechSR).

    `nan`: one sample is NaN, so the model's output for this row is not finite and the stage
    fails the row (a bad row that breaks its batch only after the model ran)."""
    audio = voice(seconds, 110.0 + 15.0 * index, seed=index)
    if nan:
        audio[len(audio) // 3] = np.nan
    return Item(f"row{index}", index, {}, data={"audio": audio, "sample_rate": SAMPLE_RATE})


def vc_item(index: int, seconds: float, *, output_sr: int = 16000, denoise_ratio: float = 0.0,
            prompt_seconds: float = 0.6, malformed_f0: bool = False) -> Item:
    """A VC row after `SynthesisInputStage` + `VcF0Stage`: source, prompt, params and a log-F0 contour.

    `malformed_f0`: the contour is 2-D, so the batch fails while it is being assembled."""
    source = voice(seconds, 120.0 + 10.0 * index, seed=index)
    frames = 4 * (len(source) // 320 + 2)  # 200 Hz contour, a little longer than the w2v frames need
    log_f0 = np.log(150.0 + 20.0 * np.sin(np.arange(frames) / 10.0)).astype(np.float32)
    if malformed_f0:
        log_f0 = np.stack([log_f0, log_f0], axis=1)
    params: dict[str, Any] = {"denoise_ratio": denoise_ratio, "output_sr": output_sr, "seed": 1000 + index,
                              "scale_norm": "max", "noise_scale": 0.333}
    data = {"mode": "vc", "params": params, "prompt": voice(prompt_seconds, 200.0, seed=100 + index),
            "source": source, "log_f0": log_f0, "expected_seconds": seconds}
    return Item(f"vc{index}", index, {}, data=data)


def tts_item(index: int, phonemes: int, *, output_sr: int = 16000, denoise_ratio: float = 0.0,
             prompt_seconds: float = 0.6, unknown_token: bool = False) -> Item:
    """A TTS row after `SynthesisInputStage`: blank-interspersed token ids (seeded), prompt and params.

    `unknown_token`: one id lies outside the vocabulary, so the TTV refuses the batch."""
    rng = np.random.default_rng(index)
    tokens = np.zeros(2 * phonemes + 1, dtype=np.int64)  # blank (0) between and around the phonemes
    tokens[1::2] = rng.integers(1, TTS_VOCABULARY, phonemes)
    if unknown_token:
        tokens[1] = TTS_VOCABULARY + 1000
    params: dict[str, Any] = {"denoise_ratio": denoise_ratio, "output_sr": output_sr, "seed": 2000 + index,
                              "scale_norm": "max", "noise_scale_ttv": 0.333, "noise_scale_vc": 0.333,
                              "noise_scale_w": 1.0, "length_scale": 1.0}
    data = {"mode": "tts", "params": params, "prompt": voice(prompt_seconds, 180.0, seed=200 + index),
            "tokens": tokens, "expected_seconds": phonemes * 0.08}
    return Item(f"tts{index}", index, {}, data=data)
