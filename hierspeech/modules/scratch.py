"""Reusable scratch tensors for inference loops.

Allocating a fresh multi-megabyte tensor costs page faults on first touch (glibc returns large freed
blocks to the OS), which on CPU can take longer than the arithmetic done in it. Inside
``with reuse_scratch():`` the helpers that ask for `scratch` tensors get the same storage back on every
call (per thread, per name; the storage is kept at the largest size asked for, so differently shaped
requests take turns on it); outside it, both helpers simply allocate.
A scratch tensor is only valid until the next request for the same name: never return one to a caller.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

_local = threading.local()


@contextmanager
def reuse_scratch() -> Iterator[None]:
    """Keep scratch tensors alive for the duration of the block (nested blocks share the pool)."""
    outer = getattr(_local, "pool", None)
    if outer is None:
        _local.pool = {}
    try:
        yield
    finally:
        if outer is None:
            _local.pool = None


def scratch(name: str, shape: tuple[int, ...] | torch.Size, like: torch.Tensor) -> torch.Tensor:
    """An uninitialised tensor of `shape` with `like`'s dtype and device, reused inside `reuse_scratch`."""
    return scratch_elements(name, math.prod(shape), like).view(shape)


def scratch_elements(name: str, numel: int, like: torch.Tensor) -> torch.Tensor:
    """An uninitialised 1-D tensor of `numel` elements, a prefix of one storage per name inside `reuse_scratch`.

    The storage grows to the largest request and is never shrunk while the block lasts, so uses of
    different shapes (view the result as needed) take turns on it without reallocating.
    """
    pool = getattr(_local, "pool", None)
    if pool is None:
        return like.new_empty(numel)
    key = (name, like.dtype, like.device)
    buffer = pool.get(key)
    if buffer is None or buffer.numel() < numel:
        pool.pop(key, None)  # release the smaller storage before allocating the larger one
        buffer = like.new_empty(numel)
        pool[key] = buffer
    return buffer[:numel]
