"""Compiled CPU kernel for the anti-aliased SnakeBeta activation (inference only).

`Activation1d` on CPU spends most of its time in memory passes: every tap of the two short filters and
every step of ``x + 1/b sin(a x)^2`` reads and writes the whole (B, C, T) tensor. This kernel does all of
it per channel row, with the row's upsampled phases held in cache, in one compiled loop nest (numba):

* the polyphase upsampler and the phase-domain decimator as sums of shifted slices (three taps per pass,
  so the loops vectorise);
* ``sin(y)^2`` from a polynomial: ``sin^2`` has period pi, so ``y`` is reduced to ``[-pi/2, pi/2]``
  (Cody-Waite, pi split in three float32 parts) and ``sin`` is its Taylor series to degree 11, whose
  truncation error there is below 6e-8 -- under float32 rounding of the result;
* the decimator's replicate padding (head and tail values) exactly as the tensor path does.

The numbers agree with the tensor path to float32 rounding (sums are taken in another order); the
SpeechSR golden tests hold at 1e-4 either way. Compiled code is cached on disk (``cache=True``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_F32 = np.float32
# pi = _PI_A + _PI_B + _PI_C; _PI_A and _PI_B have few significant bits, so n * _PI_A is exact.
_PI_A = _F32(3.140625)
_PI_B = _F32(9.67502593994140625e-4)
_PI_C = _F32(1.509957990978376432e-7)
_INV_PI = _F32(1.0 / np.pi)
_HALF = _F32(0.5)
# Taylor coefficients of sin: r + r^3 (S1 + r^2 (S2 + ...)).
_S1 = _F32(-1.0 / 6.0)
_S2 = _F32(1.0 / 120.0)
_S3 = _F32(-1.0 / 5040.0)
_S4 = _F32(1.0 / 362880.0)
_S5 = _F32(-1.0 / 39916800.0)

# "contract" allows fused multiply-adds; the other flags let the loops vectorise. No "reassoc": sums
# keep their written order.
_jit = njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract", "nsz", "arcp", "nnan", "ninf"})


@_jit
def _fir(out: np.ndarray, src: np.ndarray, taps: np.ndarray, offsets: np.ndarray) -> None:
    """``out[j] = sum_i taps[i] * src[offsets[i] + j]``, three taps per pass over `out`."""
    n = out.shape[0]
    k = taps.shape[0]
    for g in range(0, k, 3):
        a = src[offsets[g] : offsets[g] + n]
        ta = taps[g]
        left = k - g
        if left >= 3:
            b = src[offsets[g + 1] : offsets[g + 1] + n]
            c = src[offsets[g + 2] : offsets[g + 2] + n]
            tb = taps[g + 1]
            tc = taps[g + 2]
            if g == 0:
                for j in range(n):
                    out[j] = ta * a[j] + tb * b[j] + tc * c[j]
            else:
                for j in range(n):
                    out[j] += ta * a[j] + tb * b[j] + tc * c[j]
        elif left == 2:
            b = src[offsets[g + 1] : offsets[g + 1] + n]
            tb = taps[g + 1]
            if g == 0:
                for j in range(n):
                    out[j] = ta * a[j] + tb * b[j]
            else:
                for j in range(n):
                    out[j] += ta * a[j] + tb * b[j]
        elif g == 0:
            for j in range(n):
                out[j] = ta * a[j]
        else:
            for j in range(n):
                out[j] += ta * a[j]


@_jit
def _snake_beta(row: np.ndarray, alpha: np.float32, inv_beta: np.float32) -> None:
    """In place: ``v + inv_beta * sin(alpha v)^2`` for every ``v`` of `row`."""
    for j in range(row.shape[0]):
        v = row[j]
        y = v * alpha
        n = np.floor(y * _INV_PI + _HALF)
        r = ((y - n * _PI_A) - n * _PI_B) - n * _PI_C
        r2 = r * r
        s = r + r * r2 * (_S1 + r2 * (_S2 + r2 * (_S3 + r2 * (_S4 + r2 * _S5))))
        row[j] = v + inv_beta * (s * s)


@_jit
def snake_activation_rows(
    x: np.ndarray,
    out: np.ndarray,
    alpha: np.ndarray,
    inv_beta: np.ndarray,
    pad_left: int,
    pad_right: int,
    up_taps: np.ndarray,
    up_offsets: np.ndarray,
    n_head: np.ndarray,
    head_at: int,
    first: np.ndarray,
    tail_at: int,
    down_taps: np.ndarray,
    down_phase: np.ndarray,
    down_index: np.ndarray,
    n_taps: int,
) -> None:
    """Anti-aliased SnakeBeta of `x` (B, C, T) into `out` (B, C, T), float32, channel row by row.

    ``up_taps``/``up_offsets`` are (r, n_up): row ``p`` of the upsampled phases is
    ``sum_i up_taps[p, i] * padded[up_offsets[p, i] + j]`` over the replicate-padded input. The
    decimator reads the ``r`` rows laid end to end (row ``p`` at ``p * row_len``, ``row_len = T + n_taps
    - 1``): its nonzero tap ``down_taps[i]`` reads row ``down_phase[i]`` at offset ``down_index[i]``. Row positions before ``n_head[p]``
    and from ``T - first[p]`` on are replaced by the first / last activated sample (row 0 at
    ``head_at``, row r-1 at ``T - 1 + tail_at``): the decimator's replicate padding.
    """
    batch, channels, length = x.shape
    ratio = up_taps.shape[0]
    row_len = length + n_taps - 1
    down_offsets = down_phase * row_len + down_index
    padded = np.empty(pad_left + length + pad_right, np.float32)
    rows = np.empty(ratio * row_len, np.float32)
    for b in range(batch):
        for c in range(channels):
            src = x[b, c]
            padded[pad_left : pad_left + length] = src
            padded[:pad_left] = src[0]
            padded[pad_left + length :] = src[length - 1]
            for p in range(ratio):
                row = rows[p * row_len : (p + 1) * row_len]
                _fir(row, padded, up_taps[p], up_offsets[p])
                _snake_beta(row, alpha[c], inv_beta[c])
            head = rows[head_at]
            tail = rows[(ratio - 1) * row_len + length - 1 + tail_at]
            for p in range(ratio):
                base = p * row_len
                rows[base : base + n_head[p]] = head
                tail_from = length - first[p]
                if tail_from < row_len:
                    rows[base + tail_from : base + row_len] = tail
            _fir(out[b, c], rows, down_taps, down_offsets)
