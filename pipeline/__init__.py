"""Ray Data stages, audio I/O, WebDataset sink/source and the `hsp` CLI."""

from hierspeech import __version__

__all__ = ["__version__"]
