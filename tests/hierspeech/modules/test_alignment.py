"""Length regulation from integer durations: hand-checked path, gather == one-hot matmul."""

from __future__ import annotations

import torch

from hierspeech.modules.alignment import alignment_path, expand_to_frames


def test_path_by_hand() -> None:
    durations = torch.tensor([[2.0, 0.0, 1.0, 3.0]])
    path = alignment_path(durations, 7)
    token_of_frame = [row.nonzero().flatten().tolist() for row in path[0]]
    assert token_of_frame == [[0], [0], [2], [3], [3], [3], []]  # frame 6 is past the total (6)


def test_gather_equals_path_matmul_on_a_ragged_batch() -> None:
    gen = torch.Generator().manual_seed(0)
    durations = torch.tensor([[1.0, 3.0, 0.0, 2.0, 1.0], [4.0, 1.0, 2.0, 0.0, 0.0]])  # totals 7, 7
    durations[1, 2] = 0.0  # second item: total 5, padded tokens have duration 0
    x = torch.randn(2, 6, 5, generator=gen)
    path = alignment_path(durations, 8)  # (B, T_frames, T_text)
    expected = torch.matmul(path, x.transpose(1, 2)).transpose(1, 2)
    assert torch.equal(expand_to_frames(x, durations, 8), expected)
