"""Numbers of the official release that front ends and callers share, importable without torch or transformers.

`hierspeech.w2v` (which imports transformers) takes its defaults from here, so a caller that only
needs the default model name or the input rate (a command line, a config dataclass) does not pay
for importing the models.
"""

from __future__ import annotations

DEFAULT_MODEL = "facebook/mms-300m"
"""The w2v model of the released checkpoints (MMS-300m)."""
FEATURE_LAYER = 7
"""The ``hidden_states`` index the synthesizer consumes."""
SAMPLE_RATE = 16000
"""The rate every model input is at (w2v, F0, mel, the synthesizer's prompt, SpeechSR's input)."""
PAD_MULTIPLE = 1600
"""Upstream zero-pads audio to a multiple of this before the denoiser and the prompt mel (the
denoiser's hop 400 and the mel hop 320 both divide it)."""
