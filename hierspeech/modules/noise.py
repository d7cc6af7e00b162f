"""The one way the models draw Gaussian noise: on the generator's own device, then moved.

``torch.randn(..., generator=g, device=d)`` requires ``g`` to live on ``d``: a CPU `torch.Generator`
(the usual way to seed one call) fails on a CUDA model. Drawing on the generator's device and moving
the result works everywhere and gives the same numbers on every device for a given seed. Without a
generator the draw uses torch's global RNG on the device asked for, as the official code does (so
``torch.manual_seed`` reproduces the official results).
"""

from __future__ import annotations

import torch


def standard_normal(
    shape: tuple[int, ...] | torch.Size,
    generator: torch.Generator | None,
    device: torch.device | str,
    dtype: torch.dtype,
    *,
    time_major: bool = False,
) -> torch.Tensor:
    """Standard-normal noise of `shape` (B, C, T) on `device`.

    Drawn on ``generator.device`` when a generator is given, else on `device` from the global RNG.
    `time_major` fills a (B, T, C) buffer viewed as (B, C, T): the memory layout of the official TTV's
    prior mean, whose ``randn_like`` gives other values than a contiguous draw of the same shape.
    """
    home = generator.device if generator is not None else torch.device(device)
    if time_major:
        b, c, t = shape
        noise = torch.empty((b, t, c), device=home, dtype=dtype).transpose(1, 2).normal_(generator=generator)
    else:
        noise = torch.randn(tuple(shape), generator=generator, device=home, dtype=dtype)
    return noise.to(device)
