"""The conformance kit's deterministic synthetic-weight rule (golden/synthetic/README.md).

The rule depends only on each state-dict key, its shape and dtype, so one function serves every model;
it lives in this file (named for the denoiser, whose goldens it was written for) until the lead merges
it with the synthesizer's copy.
"""

from __future__ import annotations

import zlib

import torch
from torch import nn

ONE_CENTRED_LEAVES = frozenset({"weight_g", "gamma", "slope"})


def synthetic_value(key: str, reference: torch.Tensor) -> torch.Tensor:
    """The rule's value for one state-dict entry, given the model's own tensor for that key.

    Integers become zeros, `*.filter` buffers keep their constructed value, BatchNorm running stats
    become 0 / 1, and every other float tensor is drawn from a generator seeded with crc32(key).
    """
    leaf = key.rsplit(".", 1)[-1]
    if not reference.is_floating_point():
        return torch.zeros_like(reference)
    if leaf == "filter":
        return reference.detach().clone()
    if leaf == "running_mean":
        return torch.zeros_like(reference)
    if leaf == "running_var":
        return torch.ones_like(reference)
    generator = torch.Generator().manual_seed(zlib.crc32(key.encode("utf-8")))
    draw = torch.randn(tuple(reference.shape), generator=generator, dtype=torch.float32)
    if leaf in ONE_CENTRED_LEAVES or (leaf == "weight" and reference.dim() == 1):
        return 1.0 + 0.02 * draw
    return 0.02 * draw


def synthetic_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The rule applied to every entry of `model.state_dict()` (keys in the model's order)."""
    return {key: synthetic_value(key, tensor) for key, tensor in model.state_dict().items()}


def load_synthetic_weights(model: nn.Module) -> nn.Module:
    """Load the rule's weights into `model` strictly, switch it to eval mode and return it."""
    model.load_state_dict(synthetic_state_dict(model), strict=True)
    return model.eval()
