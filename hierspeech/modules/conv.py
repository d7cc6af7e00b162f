"""Convolution helpers: legacy weight normalisation (the layout of the official checkpoints) and padding.

The released files store `<name>.weight_g` ([out, 1, ...]) and `<name>.weight_v` and no `<name>.weight`,
which is what `torch.nn.utils.weight_norm` (the hook-based API) produces. The newer parametrization API
would name them differently, so the legacy function is used on purpose; its deprecation warning is muted.
"""

from __future__ import annotations

import warnings

from torch import nn


def weight_norm(module: nn.Module) -> nn.Module:
    """Apply legacy weight norm (dim 0) to `module` and return it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return nn.utils.weight_norm(module)


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    """'Same' padding of an odd-sized dilated convolution."""
    return (kernel_size * dilation - dilation) // 2
