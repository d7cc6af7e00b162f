"""How the model stages size their batches by device: rows per model call, rows per Ray batch.

Two sizes matter. A model call's rows (`--max-batch-items`, the denoiser's items, w2v's
`--batch-seconds`) decide how full the device is. The Ray batch (`Stage.batch_size`: the rows Ray
Data hands one actor call) caps them, as a model call only takes rows of one Ray batch; so a Ray
batch holds several calls' rows, enough to fill each call and to give sorting by length rows of
similar length to put together (less padding). The Ray batch is sized on the driver, before any
actor sees a device: from the GPUs the stage asks for (`planned_device`), after the runner fitted
them to the cluster. On CPU the defaults stay where CPU outputs and timings were measured (one row
per synthesis call: same command, same bytes).

The CUDA values were chosen without a GPU run (none was lent so far), from working memory and
call counts, not measured: bench/bench_device.py is the place to tune them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from pipeline.engine.stage import Resources

T = TypeVar("T")

CUDA_BATCH_ITEMS = 8
"""Rows per synthesis / denoiser call on CUDA when none is given (0); one row on CPU."""

CALLS_PER_RAY_BATCH = 4
"""Model calls' worth of rows in one Ray batch: room for sorting by length to pair similar rows."""

CUDA_DENOISE_WINDOWS = 8
"""MP-SENet windows of one long input (over `denoise_chunk_seconds`) per model call on CUDA; CPU: 1,
as the CPU outputs and timings were measured (the windows are equal-length: same result either way,
to float rounding)."""

CUDA_SPEECHSR_SECONDS = 10.0
"""SpeechSR output audio per model call on CUDA (working memory ~90 MB per second at 48 kHz)."""

SPEECHSR_CUDA_RAY_BATCH = 32
"""Rows per Ray batch of the upsample job's SpeechSR on CUDA: a call of CUDA_SPEECHSR_SECONDS holds
29 windows at 48 kHz, and a row of a few seconds gives a few; 32 such rows fill several calls."""

W2V_CPU_BATCH_ITEMS = 16
"""Items per w2v forward on CPU when none is given; on CUDA only `--batch-seconds` bounds a forward."""

W2V_SHORT_CLIP_SECONDS = 2.0
"""The Ray batch of a w2v stage on CUDA holds `--batch-seconds` / this rows: one forward's worth of
clips this short (longer clips fill several forwards per Ray batch)."""


def windows_for_seconds(seconds: float, rate: int, window: int) -> int:
    """SpeechSR windows of `window` output samples that make `seconds` of output at `rate` (at least one)."""
    return max(1, int(seconds * rate // window))


def planned_device(resources: Resources) -> str:
    """The device a stage's actors will use, as the driver sees it: "cuda" when it asks for a GPU."""
    return "cuda" if resources.num_gpus > 0 else "cpu"


def call_rows(requested: int, device: str) -> int:
    """Rows per model call: `requested`, or the device's default when it is 0 (CUDA 8, CPU 1)."""
    return requested or (CUDA_BATCH_ITEMS if device == "cuda" else 1)


def ray_batch_rows(rows_per_call: int, floor: int) -> int:
    """Rows per Ray batch for model calls of `rows_per_call`: CALLS_PER_RAY_BATCH calls, at least `floor`."""
    return max(floor, CALLS_PER_RAY_BATCH * rows_per_call)


def denoise_windows(device: str) -> int:
    """`chunk_batch_size` of `hierspeech.denoiser.denoise` on `device` (CUDA_DENOISE_WINDOWS on CUDA, else 1)."""
    return CUDA_DENOISE_WINDOWS if device == "cuda" else 1


def longest_first(items: Sequence[T], length: Callable[[T], int]) -> list[T]:
    """`items` by `length(item)`, longest first; equal lengths keep their order (a stable sort).

    Longest first: a batch's largest buffers are allocated first, and the device's caching
    allocator reuses them for the shorter batches after it.
    """
    return sorted(items, key=lambda item: -length(item))
