"""HierSpeech++ models in pure PyTorch, state-dict compatible with the official checkpoints.

This package never imports Ray: it is usable on its own, in notebooks or other pipelines.
"""

__version__ = "0.1.0"

from hierspeech.ttv import TTV, TTVConfig, TTVOutput, zero_low_log_f0

__all__ = ["TTV", "TTVConfig", "TTVOutput", "__version__", "zero_low_log_f0"]
