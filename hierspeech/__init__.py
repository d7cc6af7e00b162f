"""HierSpeech++ models in pure PyTorch, state-dict compatible with the official checkpoints.

This package never imports Ray: it is usable on its own, in notebooks or other pipelines.
Models are imported lazily (``from hierspeech import Synthesizer`` loads only what it needs),
so light users such as the pipeline's CLI do not pay for importing torch up front.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "SpeechSR": "hierspeech.speechsr",
    "SpeechSRConfig": "hierspeech.speechsr",
    "Synthesizer": "hierspeech.synthesizer",
    "SynthesizerConfig": "hierspeech.synthesizer",
    "TTV": "hierspeech.ttv",
    "TTVConfig": "hierspeech.ttv",
    "TTVOutput": "hierspeech.ttv",
    "zero_low_log_f0": "hierspeech.ttv",
    "Denoiser": "hierspeech.denoiser",
    "DenoiserConfig": "hierspeech.denoiser",
    "denoise": "hierspeech.denoiser",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hierspeech' has no attribute {name!r}")
