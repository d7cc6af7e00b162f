"""The one end-padding rule of every feature the checkpoints were trained on (w2v, F0, mel lengths).

Audio is zero-padded at the END to the next multiple of 1280 samples, a full 1280 more when its length
already is a multiple (as the official preprocessing does). 1280 samples are 4 w2v/mel frames of 320
and 16 F0 frames of 80, so every feature of one clip has matching frame counts. Plain Python, no torch:
the CLI reads it without importing torch.
"""

from __future__ import annotations

HOP_MULTIPLE = 1280
"""Audio is end-padded to a multiple of this (= 4 mel/w2v hops of 320 = 16 F0 hops of 80)."""


def padded_length(n_samples: int, *, pad_end: bool = True) -> int:
    """Length after the end padding: ``(n // 1280 + 1) * 1280``; `n_samples` unchanged when not `pad_end`."""
    if not pad_end:
        return n_samples
    return (n_samples // HOP_MULTIPLE + 1) * HOP_MULTIPLE
