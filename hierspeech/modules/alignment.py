"""Hard monotonic alignment from integer token durations (length regulation).

A token with duration d covers d consecutive output frames; token k starts where the durations of
tokens 0..k-1 end. This is the path the official `commons.generate_path` builds, here also
available as an index map so frames can be gathered instead of multiplied by a one-hot matrix.
"""

from __future__ import annotations

import torch


def alignment_path(durations: torch.Tensor, num_frames: int) -> torch.Tensor:
    """One-hot path (B, num_frames, T_text) from integer-valued durations (B, T_text).

    path[b, t, k] = 1 when cumsum(d)[k-1] <= t < cumsum(d)[k]; frames past the total duration,
    and tokens of duration 0, get no entry. Same values as the official `generate_path`.
    """
    ends = torch.cumsum(durations, dim=-1)
    starts = ends - durations
    frames = torch.arange(num_frames, device=durations.device, dtype=durations.dtype).view(1, -1, 1)
    inside = (frames >= starts.unsqueeze(1)) & (frames < ends.unsqueeze(1))
    return inside.to(durations.dtype)


def frame_token_index(durations: torch.Tensor, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each output frame, the token it belongs to: (index (B, num_frames) int64, valid (B, num_frames) bool).

    Frames past an item's total duration are not valid (their index is clamped to 0).
    """
    ends = torch.cumsum(durations, dim=-1).contiguous()
    frames = torch.arange(num_frames, device=durations.device, dtype=durations.dtype)
    frames = frames.unsqueeze(0).expand(durations.size(0), -1).contiguous()
    index = torch.searchsorted(ends, frames, right=True)
    valid = index < durations.size(-1)
    return torch.where(valid, index, torch.zeros_like(index)), valid


def expand_to_frames(x: torch.Tensor, durations: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Repeat token features (B, C, T_text) by integer durations (B, T_text) -> (B, C, num_frames).

    Equal to `x @ alignment_path(...)^T` (one-hot rows), computed by gathering; frames with no
    token are zero.
    """
    index, valid = frame_token_index(durations, num_frames)
    gathered = torch.gather(x, 2, index.unsqueeze(1).expand(-1, x.size(1), -1))
    return gathered * valid.unsqueeze(1).to(x.dtype)
