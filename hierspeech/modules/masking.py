"""Sequence masks for padded batches."""

from __future__ import annotations

import torch
from torch import Tensor


def sequence_mask(lengths: Tensor, max_length: int | None = None) -> Tensor:
    """Boolean mask (B, T): True on the first `lengths[b]` frames of item b."""
    if max_length is None:
        max_length = int(lengths.max())
    steps = torch.arange(max_length, dtype=lengths.dtype, device=lengths.device)
    return steps.unsqueeze(0) < lengths.unsqueeze(1)


def frame_mask(lengths: Tensor, max_length: int | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """Float mask (B, 1, T) with ones on valid frames, zeros on padding."""
    return sequence_mask(lengths, max_length).unsqueeze(1).to(dtype)
