"""Linear resampling by an arbitrary ratio, equal to ``F.interpolate(mode="linear")`` to float32 rounding.

SpeechSR stretches its hidden features with ``F.interpolate(h, size=n_out, mode="linear")``
(``align_corners=False``). Output sample ``o`` reads input position ``scale * (o + 0.5) - 0.5`` with
``scale = n_in / n_out`` in float32, so every position depends on the *whole* signal's lengths: a
window cut from the signal cannot simply be interpolated on its own. `linear_resize` computes any
window ``[out_start, out_stop)`` of the whole-signal result from the input samples it needs.

The positions copy PyTorch's CPU kernel bit for bit (checked by tests against ``F.interpolate``):
position ``fma(scale, o + 0.5, -0.5)`` rounded to float32 (computed exactly in float64: O(outputs),
not O(outputs x channels)), clamped at 0, left index ``min(floor(pos), n_in - 1)``, weight
``w1 = clamp(pos - left, 0, 1)``, ``w0 = 1 - w1``. The result ``x[left] * w0 + x[right] * w1`` is
computed in float32: equal to the kernel's fused ``fma(x[left], w0, x[right] * w1)`` to float32
rounding.
"""

from __future__ import annotations

import torch


def resize_positions(
    n_in: int, n_out: int, out_start: int, out_stop: int, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices and weights for outputs ``out_start .. out_stop - 1`` of a length-`n_in` signal.

    Returns ``(left, right, w_left, w_right)``: int64 indices into the whole input and float32 weights,
    each of shape ``(out_stop - out_start,)``.
    """
    scale = torch.tensor(n_in, dtype=torch.float32) / torch.tensor(n_out, dtype=torch.float32)
    dst = torch.arange(out_start, out_stop, device=device).to(torch.float32) + 0.5
    pos = (scale.double().to(device) * dst.double() - 0.5).float().clamp_(min=0.0)
    left = pos.floor().long().clamp_(max=n_in - 1)
    w_right = (pos - left.float()).clamp_(0.0, 1.0)
    w_left = 1.0 - w_right
    right = left + (left < n_in - 1).long()
    return left, right, w_left, w_right


def linear_resize(x: torch.Tensor, n_in: int, n_out: int, out_start: int = 0, out_stop: int | None = None,
                  in_start: int = 0) -> torch.Tensor:
    """Window ``[out_start, out_stop)`` of ``F.interpolate(whole, size=n_out, mode="linear")``.

    `x` is ``(B, C, L)`` holding samples ``in_start .. in_start + L - 1`` of the whole length-`n_in`
    input; it must cover every sample the window reads (``ValueError`` otherwise). Returns
    ``(B, C, out_stop - out_start)``.
    """
    out_stop = n_out if out_stop is None else out_stop
    left, right, w_left, w_right = resize_positions(n_in, n_out, out_start, out_stop, x.device)
    left, right = left - in_start, right - in_start
    if out_stop > out_start and (int(left.min()) < 0 or int(right.max()) >= x.shape[-1]):
        raise ValueError(
            f"window [{out_start}, {out_stop}) of a {n_in}->{n_out} resize reads input samples "
            f"[{int(left.min()) + in_start}, {int(right.max()) + in_start}], outside the "
            f"{x.shape[-1]} given from {in_start}"
        )
    return apply_resize(x, left, right, w_left, w_right)


def apply_resize(x: torch.Tensor, left: torch.Tensor, right: torch.Tensor, w_left: torch.Tensor,
                 w_right: torch.Tensor) -> torch.Tensor:
    """``x[left] * w_left + x[right] * w_right`` along the last axis of `x` (B, C, L), in `x`'s dtype.

    PyTorch's CPU kernel fuses the last multiply-add (one rounding); here it is two float32 operations,
    so a result may differ from ``F.interpolate`` in its last bit (< 1e-6 on unit-scale values), and
    no float64 copy of the signal is made (GPUs run float64 at a small fraction of the float32 rate).

    Indices and weights are ``(N,)`` (shared by the batch) or ``(B, N)`` (one row per batch item, for
    windows cut at different places). Returns ``(B, C, N)``.
    """
    if left.dim() == 1:
        a = x.index_select(-1, left)
        b = x.index_select(-1, right)
        w_left, w_right = w_left.view(1, 1, -1), w_right.view(1, 1, -1)
    else:
        shape = (x.shape[0], x.shape[1], left.shape[-1])
        a = x.gather(-1, left[:, None, :].expand(shape))
        b = x.gather(-1, right[:, None, :].expand(shape))
        w_left, w_right = w_left[:, None, :], w_right[:, None, :]
    b.mul_(w_right.to(x.dtype))
    return a.mul_(w_left.to(x.dtype)).add_(b)


def resize_input_span(n_in: int, n_out: int, out_start: int, out_stop: int) -> tuple[int, int]:
    """Input samples ``[first, last]`` (inclusive) read by outputs ``out_start .. out_stop - 1``."""
    left, right, _, _ = resize_positions(n_in, n_out, out_start, out_start + 1)
    first = int(left[0])
    _, right, _, _ = resize_positions(n_in, n_out, out_stop - 1, out_stop)
    return first, int(right[0])
