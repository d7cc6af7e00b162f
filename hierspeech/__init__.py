"""HierSpeech++ models in pure PyTorch, state-dict compatible with the official checkpoints.

This package never imports Ray: it is usable on its own, in notebooks or other pipelines.
"""

__version__ = "0.1.0"

from hierspeech.denoiser import Denoiser, DenoiserConfig, denoise

__all__ = ["Denoiser", "DenoiserConfig", "__version__", "denoise"]
