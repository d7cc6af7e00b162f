"""Building blocks shared by the HierSpeech++ generators (SpeechSR, the synthesizer's decoders).

Everything here is generic: no model-specific sizes. Parameter and buffer names follow the official
state dicts (``act.alpha``, ``upsample.filter``, ``downsample.lowpass.filter``, ``weight_g``/``weight_v``).
"""

from hierspeech.modules.alias_free import (
    Activation1d,
    DownSample1d,
    LowPassFilter1d,
    UpSample1d,
    kaiser_sinc_filter1d,
)
from hierspeech.modules.common import WNConv1d, WNConvTranspose1d, get_padding
from hierspeech.modules.snake import Snake, SnakeBeta

__all__ = [
    "Activation1d",
    "DownSample1d",
    "LowPassFilter1d",
    "Snake",
    "SnakeBeta",
    "UpSample1d",
    "WNConv1d",
    "WNConvTranspose1d",
    "get_padding",
    "kaiser_sinc_filter1d",
]
