"""Ragged batches through the synthesizer's vocoder (source network + decoder), each item as alone.

The vocoder's convolutions, transposed convolutions and anti-aliased activations see past the end of
a zero-padded item, so a padded batch changes the last outputs of every shorter item. Two exact ways:

* by length (the CPU default): one call per distinct length, no padding;
* bucketed (the CUDA default): items of similar length are padded to their bucket's longest and run
  in one call; the outputs of a shorter item are then exact up to ``R`` frames before its end, where
  ``R`` (`Synthesizer.vocoder_radius`, from the layers' kernel sizes, dilations and rates: 95 frames
  for the released config) bounds how far an output sees. Each such item's last ``2 R`` frames are run
  once more, cropped from its own latent so that their right edge is the item's real end; the crop's
  artificial left edge moves only outputs closer than ``R`` to it, which are not kept. All these
  tails have one length and run as one batch.

Bucketed costs up to one extra tail of ``2 R`` frames per shorter item in compute but runs a batch in
a few calls instead of one per distinct length; it is meant for GPUs, where small calls leave the
device idle (not yet measured on one), while a CPU is bound by the compute, hence the defaults.
Both give every item its single-item result, to the float rounding of kernels run on other shapes
(tiny config < 1e-6; released sizes 2.6e-5 on CPU, as an equal-length batch of two vs alone).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

DEFAULT_MAX_PADDING = 0.5
"""A bucket holds items down to (1 - this) x its longest (padding wastes at most that fraction)."""

Vocoder = Callable[[Tensor, Tensor], Tensor]
"""(latent (B, C, T), style (B, gin, 1)) -> audio (B, 1, T * hop)."""


def vocoder_buckets(lengths: Sequence[int], tail: int, max_padding: float = DEFAULT_MAX_PADDING) -> list[list[int]]:
    """Indices grouped longest first: a bucket's items are as long as its first, or at least `tail`
    frames (so their tail can be rerun) and ``(1 - max_padding)`` x the first."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    buckets: list[list[int]] = []
    for i in order:
        if buckets:
            longest = lengths[buckets[-1][0]]
            if lengths[i] == longest or (lengths[i] >= tail and lengths[i] >= (1.0 - max_padding) * longest):
                buckets[-1].append(i)
                continue
        buckets.append([i])
    return buckets


def vocode_by_length(vocoder: Vocoder, z: Tensor, g: Tensor, lengths: Tensor, hop: int) -> Tensor:
    """One vocoder call per distinct length. -> (B, 1, T * hop), zero past each length."""
    out = z.new_zeros(z.size(0), 1, z.size(2) * hop)
    for length in torch.unique(lengths).tolist():
        idx = (lengths == length).nonzero(as_tuple=True)[0]
        out[idx, :, : length * hop] = vocoder(z[idx, :, :length], g[idx])
    return out


def vocode_bucketed(
    vocoder: Vocoder, z: Tensor, g: Tensor, lengths: Sequence[int], hop: int, radius: int,
    max_padding: float = DEFAULT_MAX_PADDING,
) -> Tensor:
    """Padded buckets plus one batch of exact tails (see the module docstring). -> (B, 1, T * hop)."""
    tail = 2 * radius
    out = z.new_zeros(z.size(0), 1, z.size(2) * hop)
    tails: list[int] = []
    for bucket in vocoder_buckets(lengths, tail, max_padding):
        longest = lengths[bucket[0]]
        audio = vocoder(z[bucket, :, :longest], g[bucket])
        for row, i in enumerate(bucket):
            out[i, :, : lengths[i] * hop] = audio[row, :, : lengths[i] * hop]
            if lengths[i] < longest:
                tails.append(i)
    if tails:
        crops = torch.stack([z[i, :, lengths[i] - tail : lengths[i]] for i in tails])
        audio = vocoder(crops, g[tails])
        for row, i in enumerate(tails):
            out[i, :, (lengths[i] - radius) * hop : lengths[i] * hop] = audio[row, :, radius * hop :]
    return out
