"""The conformance kit's deterministic synthetic-weight rule (golden/synthetic/README.md).

The kit's synthetic goldens were made by loading these values into the official models; loading the same
values into ours (keyed by the official state-dict names) makes the outputs comparable without the real
checkpoints. Each key has its own generator seeded with the CRC-32 of its name, so order does not matter.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

# Last key components whose values are 1 + 0.02 * randn (norm gains), besides 1-D `weight`.
_UNIT_CENTRED = {"weight_g", "gamma", "slope"}


def rule_value(
    key: str, shape: Sequence[int], dtype: torch.dtype = torch.float32, current: Tensor | None = None
) -> Tensor:
    """The synthetic value of one state-dict entry.

    `current` is the model's own value; it is returned unchanged for `*.filter` buffers (the fixed
    anti-aliasing kernels), and is required for them.
    """
    leaf = key.rsplit(".", 1)[-1]
    shape = tuple(int(s) for s in shape)
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    if leaf == "filter":
        if current is None:
            raise ValueError(f"{key}: the rule keeps the constructed filter, pass `current`")
        return current.detach().clone()
    if leaf == "running_mean":
        return torch.zeros(shape, dtype=dtype)
    if leaf == "running_var":
        return torch.ones(shape, dtype=dtype)
    generator = torch.Generator().manual_seed(zlib.crc32(key.encode("utf-8")))
    r = torch.randn(shape, generator=generator, dtype=torch.float32)
    if leaf in _UNIT_CENTRED or (leaf == "weight" and len(shape) == 1):
        return (1.0 + 0.02 * r).to(dtype)
    return (0.02 * r).to(dtype)


def synthetic_state_dict(reference: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Synthetic values for every key of `reference` (a model's `state_dict()`), on CPU."""
    return {key: rule_value(key, value.shape, value.dtype, value.cpu()) for key, value in reference.items()}


def load_synthetic_weights(model: nn.Module) -> nn.Module:
    """Fill `model` with the synthetic weights (strict), put it in eval mode and return it."""
    values = synthetic_state_dict(model.state_dict())
    model.load_state_dict(values, strict=True)
    return model.eval()
