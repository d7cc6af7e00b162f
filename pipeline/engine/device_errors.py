"""What a failed model call means for the rows in it: their fault, memory, or a broken device.

A batch that raises is retried in smaller pieces (`Stage.process_batch_isolating`), and how the
retry goes depends on the kind of error:

- ``"oom"``: the device ran out of memory (``torch.cuda.OutOfMemoryError``, or a RuntimeError
  saying "CUDA out of memory" / an allocation failure of cuBLAS or cuDNN). Nothing is wrong with
  the rows; smaller batches may fit once the failed batch's tensors are freed and the CUDA cache
  is emptied (`release_device_memory`). A row that still does not fit alone is left for a later
  run, never written as an error.
- ``"sticky"``: a CUDA error that leaves the process's CUDA context unusable (illegal memory
  access, device-side assert, launch failure, ...). Every later call in this process would fail
  too, so retrying here would turn all remaining rows into error rows; the stage raises
  `DeviceContextError` instead and the actor process exits, so Ray starts a fresh one and
  retries the batch there.
- ``"row"``: anything else: the row's own problem, recorded as its error row.
"""

from __future__ import annotations

import gc
from typing import Literal

ErrorKind = Literal["row", "oom", "sticky"]

OOM_MARKERS = (
    "CUDA out of memory",
    "CUDA error: out of memory",
    "CUBLAS_STATUS_ALLOC_FAILED",
    "CUDNN_STATUS_ALLOC_FAILED",
    "cudaErrorMemoryAllocation",
)
STICKY_MARKERS = (
    "CUDA error:",  # what torch prefixes every CUDA runtime error with (after the OOM check above)
    "illegal memory access",
    "device-side assert",
    "unspecified launch failure",
    "CUBLAS_STATUS_EXECUTION_FAILED",
    "CUBLAS_STATUS_INTERNAL_ERROR",
    "cudaErrorIllegalAddress",
    "cudaErrorLaunchFailure",
)


class DeviceContextError(RuntimeError):
    """A sticky CUDA error: this process's device context is broken; restart the process."""


def classify_error(exc: BaseException) -> ErrorKind:
    """The kind of a model call's error (see the module docstring)."""
    oom_types = _oom_types()
    if oom_types and isinstance(exc, oom_types):
        return "oom"
    if not isinstance(exc, RuntimeError):  # torch raises CUDA errors as RuntimeError subclasses
        return "row"
    message = str(exc)
    if any(marker in message for marker in OOM_MARKERS):
        return "oom"
    if any(marker in message for marker in STICKY_MARKERS):
        return "sticky"
    return "row"


def _oom_types() -> tuple[type[BaseException], ...]:
    try:
        import torch
    except ImportError:  # the stage contract does not need torch; CPU-only stages never OOM this way
        return ()
    found = [getattr(torch.cuda, "OutOfMemoryError", None), getattr(torch, "OutOfMemoryError", None)]
    return tuple(t for t in found if isinstance(t, type))


def release_device_memory() -> None:
    """Free what a failed batch held: collect reference cycles (tracebacks, frames), then hand the
    CUDA caching allocator's unused blocks back so a retry can allocate them again."""
    gc.collect()
    import torch

    torch.cuda.empty_cache()  # a no-op while CUDA is not initialised (CPU runs)
