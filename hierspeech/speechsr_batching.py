"""Exact batched and windowed SpeechSR inference for inputs of any length.

Running SpeechSR on zero-padded batches, or on chunks of a long signal, changes the result: the
convolutions zero-pad and the alias-free activations replicate-pad at the *signal's* ends, and the
linear interpolation's positions depend on the whole signal's length (for 24k and odd ``T`` the
scale is ``T / int(1.5 T)``, not 2/3). Here every output sample is computed exactly as in a run on
its whole signal alone:

* The interpolation of any output window is taken from the whole-signal positions
  (`hierspeech.modules.resize`), so it is exact for every length and either variant.
* Everything after the interpolation has a finite receptive field of ``R`` output samples on each side
  (`SpeechSR.receptive_radius`, computed from the kernel sizes, dilations and filter lengths: 98 for
  the released configs). A window's edge is a real signal edge, or lies at least ``R`` samples from
  every output kept from that window. The window edges that are not signal edges change only outputs
  closer than ``R``, which are discarded.
* Before the interpolation, ``conv_pre`` (7 taps) is run "valid" on the input samples the window reads
  plus 3 on each side, zero beyond the signal: exactly the whole-signal padding.

So all windows have one length ``L`` (items shorter than ``L`` form one window of their own length),
windows of different items are batched together, and working memory depends on ``L`` and the batch
size only, not on the input length.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from hierspeech.modules.resize import apply_resize, resize_positions
from hierspeech.modules.scratch import reuse_scratch
from hierspeech.speechsr import SpeechSR

DEFAULT_WINDOW = 16384
DEFAULT_BATCH_SIZE = 8


@dataclass(frozen=True)
class Window:
    """Output samples ``[start, stop)`` of item `item` are computed; ``[keep_start, keep_stop)`` are exact."""

    item: int
    start: int
    stop: int
    keep_start: int
    keep_stop: int


def plan_windows(item: int, n_out: int, window: int, radius: int) -> list[Window]:
    """Cover ``n_out`` output samples with windows of exactly `window` samples (one if the item is shorter).

    Interior window edges stay at least `radius` samples from the kept outputs.
    """
    if n_out <= window:
        return [Window(item, 0, n_out, 0, n_out)]
    if window <= 2 * radius:
        raise ValueError(f"window ({window}) must exceed twice the receptive radius ({radius})")
    plans = [Window(item, 0, window, 0, window - radius)]
    done = window - radius
    while done < n_out:
        if n_out - done <= window - radius:
            plans.append(Window(item, n_out - window, n_out, done, n_out))
            done = n_out
        else:
            start = done - radius
            plans.append(Window(item, start, start + window, done, start + window - radius))
            done = start + window - radius
    return plans


def _run_windows(
    model: SpeechSR, waves: Sequence[torch.Tensor], windows: Sequence[Window], device: torch.device
) -> torch.Tensor:
    """Run equal-length windows as one batch on `device`: returns ``(N, L)`` outputs of the whole windows.

    The window bookkeeping (interpolation positions, input spans) is computed on the host, so nothing
    waits on the device; the windows' inputs and positions go to `device` in one copy each.
    """
    dec = model.dec
    conv = dec.conv_pre
    context = conv.dilation[0] * (conv.kernel_size[0] - 1) // 2
    length = windows[0].stop - windows[0].start
    spans, lefts, rights, w_lefts, w_rights = [], [], [], [], []
    for win in windows:
        n_in = waves[win.item].shape[-1]
        left, right, w_left, w_right = resize_positions(n_in, dec.output_length(n_in), win.start, win.stop)
        first = int(left[0])
        spans.append((first, int(right[-1])))
        lefts.append(left - first)
        rights.append(right - first)
        w_lefts.append(w_left)
        w_rights.append(w_right)
    width = max(last - first + 1 for first, last in spans) + 2 * context
    ref = waves[windows[0].item]
    segments = torch.zeros(len(windows), 1, width, dtype=ref.dtype, device=ref.device)
    for row, (win, (first, last)) in enumerate(zip(windows, spans, strict=True)):
        wave = waves[win.item]
        lo, hi = max(first - context, 0), min(last + context + 1, wave.shape[-1])
        offset = lo - (first - context)
        segments[row, 0, offset : offset + hi - lo] = wave[lo:hi]
    hidden = F.conv1d(segments.to(device), conv.compute_weight(), conv.bias)
    positions = [torch.stack(p).to(device) for p in (lefts, rights, w_lefts, w_rights)]
    z = apply_resize(hidden, *positions)
    assert z.shape[-1] == length
    return dec.decode(z)[:, 0]


def upsample_batch(
    model: SpeechSR,
    waves: Sequence[torch.Tensor],
    window: int = DEFAULT_WINDOW,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    offload: bool | None = None,
) -> list[torch.Tensor]:
    """Super-resolve a list of 1-D 16 kHz waveforms of any lengths; each result equals a solo run.

    `window` is the window length in output samples and `batch_size` the number of windows run at
    once; device memory is bounded by their product. The waves may live on the CPU or on the model's
    device: each batch of windows is copied to the model's device. `offload` collects the outputs on
    the CPU, each batch's kept samples copied there as soon as it is done, so device memory does not
    grow with the items' lengths (about 0.9 GB per hour of 48 kHz output otherwise); default: on when
    the model is on CUDA. Returns 1-D tensors of ``model.output_length(len(w))``, on the CPU when
    offloading, else on each wave's device.
    """
    for i, wave in enumerate(waves):
        if wave.dim() != 1 or wave.shape[0] == 0:
            raise ValueError(f"item {i}: expected a non-empty 1-D waveform, got shape {tuple(wave.shape)}")
    device = next(model.parameters()).device
    if offload is None:
        offload = device.type == "cuda"
    radius = model.receptive_radius()
    outputs = [
        torch.empty(model.output_length(w.shape[0]), dtype=w.dtype, device="cpu" if offload else w.device)
        for w in waves
    ]
    groups: dict[int, list[Window]] = defaultdict(list)
    for i, out in enumerate(outputs):
        for win in plan_windows(i, out.shape[0], window, radius):
            groups[win.stop - win.start].append(win)
    with torch.inference_mode(), reuse_scratch():
        for _, wins in sorted(groups.items()):
            for at in range(0, len(wins), batch_size):
                chunk = wins[at : at + batch_size]
                result = _run_windows(model, waves, chunk, device)
                if offload:
                    result = result.cpu()
                for row, win in enumerate(chunk):
                    lo, hi = win.keep_start - win.start, win.keep_stop - win.start
                    outputs[win.item][win.keep_start : win.keep_stop] = result[row, lo:hi]
    return outputs


def upsample_long(
    model: SpeechSR, wave: torch.Tensor, window: int = DEFAULT_WINDOW, batch_size: int = DEFAULT_BATCH_SIZE
) -> torch.Tensor:
    """One 1-D waveform of any length, in windows: (T,) -> (T_out,), equal to ``model(wave[None, None])``."""
    return upsample_batch(model, [wave], window=window, batch_size=batch_size)[0]
