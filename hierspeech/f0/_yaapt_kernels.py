"""Compiled (numba) inner loops of the fast YAAPT port: the per-frame work that pYAAPT runs in Python.

The kernels take the same decisions as amfm_decompy's pYAAPT, step by step (peak rules, tie-breaking,
NaN behaviour, the in-place mean removal on overlapping NCCF frames). Sums that pYAAPT does with numpy
reductions (frame means, SHC row sums) follow numpy's pairwise order exactly (:func:`pairwise_sum`), so
those values are bit-identical. pYAAPT's BLAS dot products (NCCF numerator and window energies) have a
machine-dependent order; ours are SIMD sums (window energies slide, recomputed every ``_REFRESH`` lags)
that differ from them by ulps.

Compiled code is cached on disk (``cache=True``); the first run in a fresh environment compiles them (15-50 s).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# error_model="numpy": float division by zero gives inf/nan like numpy instead of raising.
_jit = njit(cache=True, error_model="numpy", nogil=True)

_BLOCK = 128  # numpy's PW_BLOCKSIZE
_REFRESH = 16  # NCCF window energies are recomputed exactly every this many lags


@_jit
def _pairwise_block(a: np.ndarray, start: int, n: int) -> float:
    """numpy's pairwise sum of a block of at most 128 values."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[start + i]
        return res
    r0 = a[start]
    r1 = a[start + 1]
    r2 = a[start + 2]
    r3 = a[start + 3]
    r4 = a[start + 4]
    r5 = a[start + 5]
    r6 = a[start + 6]
    r7 = a[start + 7]
    i = 8
    stop = n - (n % 8)
    while i < stop:
        j = start + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[start + i]
        i += 1
    return res


# numba's on-disk cache mishandles recursive functions, so the recursion of numpy's pairwise sum is
# unrolled into levels: level k handles n up to about 128 * 2**k.
def _make_level(lower):
    @_jit
    def level(a: np.ndarray, start: int, n: int) -> float:
        if n <= _BLOCK:
            return _pairwise_block(a, start, n)
        n2 = n // 2
        n2 -= n2 % 8
        return lower(a, start, n2) + lower(a, start + n2, n - n2)

    return level


_pw1 = _make_level(_pairwise_block)
_pw2 = _make_level(_pw1)
_pw3 = _make_level(_pw2)
_pw4 = _make_level(_pw3)
_pw5 = _make_level(_pw4)
_pw6 = _make_level(_pw5)
_PW_MAX = 4096  # every n <= 4096 needs at most 6 levels (checked exhaustively)


@_jit
def pairwise_sum(a: np.ndarray, start: int, n: int) -> float:
    """Sum ``a[start:start+n]`` in exactly the order of numpy's pairwise add-reduction (n <= 4096)."""
    if n > _PW_MAX:
        raise ValueError("pairwise_sum: block too long")
    return _pw6(a, start, n)


# Reassociation lets LLVM vectorise the dot products; NaN/inf semantics are kept (no nnan/ninf).
@njit(cache=True, error_model="numpy", nogil=True, fastmath={"reassoc", "contract", "nsz"})
def _dot(x: np.ndarray, xs: int, y: np.ndarray, ys: int, n: int) -> float:
    """sum(x[xs:xs+n] * y[ys:ys+n]) in SIMD order (pYAAPT uses BLAS here, whose order is unknown)."""
    xv = x[xs : xs + n]
    yv = y[ys : ys + n]
    acc = 0.0
    for i in range(n):
        acc += xv[i] * yv[i]
    return acc


@njit(cache=True, error_model="numpy", nogil=True, fastmath={"contract"})
def _axpy(acc: np.ndarray, a: float, x: np.ndarray, n: int) -> None:
    """acc[:n] += a * x[:n] with fused multiply-adds."""
    for q in range(n):
        acc[q] += a * x[q]


@njit(cache=True, error_model="numpy", nogil=True, fastmath={"contract"})
def _axpy4(acc: np.ndarray, a: np.ndarray, x: np.ndarray, n: int) -> None:
    """acc[q] += a[0] x[q] + a[1] x[q+1] + a[2] x[q+2] + a[3] x[q+3] for q < n (four NCCF terms per pass)."""
    a0 = a[0]
    a1 = a[1]
    a2 = a[2]
    a3 = a[3]
    x1 = x[1:]
    x2 = x[2:]
    x3 = x[3:]
    for q in range(n):
        acc[q] += (a0 * x[q] + a1 * x1[q]) + (a2 * x2[q] + a3 * x3[q])


@_jit
def first_argmax(v: np.ndarray, start: int, stop: int) -> int:
    """np.argmax(v[start:stop]) (offset into the slice): first NaN, else first maximum."""
    best = start
    for i in range(start, stop):
        if v[i] != v[i]:
            return i - start
        if v[i] > v[best]:
            best = i
    return best - start


@_jit
def last_argmin(v: np.ndarray) -> int:
    """len(v) - 1 - np.argmin(v[::-1]): last NaN, else last minimum."""
    n = v.shape[0]
    best = n - 1
    for i in range(n - 1, -1, -1):
        if v[i] != v[i]:
            return i
        if v[i] < v[best]:
            best = i
    return best


# --------------------------------------------------------------------------------------------------
# Band-pass FIR and NLFER: the two dense products, here so that no BLAS (and no BLAS thread pool) is used.
# --------------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy", nogil=True, fastmath={"reassoc", "contract", "nsz"})
def fir_pair(taps: np.ndarray, x: np.ndarray, out: np.ndarray, out_sq: np.ndarray) -> None:
    """Causal FIR of x and of x**2 (``lfilter(taps, 1, .)`` with zero initial state) into out, out_sq (L,).

    Direct sums, four outputs per pass so each tap load serves eight products; they differ from
    lfilter's by ulps (~1e-16 here), independent of length (no FFT, no block-size choice).
    """
    m = taps.shape[0]
    n = x.shape[0]
    pad = np.zeros(n + m + 3)
    pad[m - 1 : m - 1 + n] = x
    sq = pad * pad
    rev = taps[::-1].copy()
    for i in range(0, n, 4):
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        a3 = 0.0
        q0 = 0.0
        q1 = 0.0
        q2 = 0.0
        q3 = 0.0
        p0 = pad[i:]
        p1 = pad[i + 1 :]
        p2 = pad[i + 2 :]
        p3 = pad[i + 3 :]
        s0 = sq[i:]
        s1 = sq[i + 1 :]
        s2 = sq[i + 2 :]
        s3 = sq[i + 3 :]
        for t in range(m):
            c = rev[t]
            a0 += c * p0[t]
            a1 += c * p1[t]
            a2 += c * p2[t]
            a3 += c * p3[t]
            q0 += c * s0[t]
            q1 += c * s1[t]
            q2 += c * s2[t]
            q3 += c * s3[t]
        out[i] = a0
        out_sq[i] = q0
        if i + 1 < n:
            out[i + 1] = a1
            out_sq[i + 1] = q1
        if i + 2 < n:
            out[i + 2] = a2
            out_sq[i + 2] = q2
        if i + 3 < n:
            out[i + 3] = a3
            out_sq[i + 3] = q3


@_jit
def _norm(re: float, im: float) -> float:
    a = np.float64(re)
    b = np.float64(im)
    return np.sqrt(a * a + b * b)


@njit(cache=True, error_model="numpy", nogil=True, fastmath={"reassoc", "contract", "nsz"})
def nlfer_energy(
    x: np.ndarray, nframes: int, frame_size: int, hop: int, cos_t: np.ndarray, sin_t: np.ndarray, out: np.ndarray
) -> None:
    """out[f] = sum_k |X_f(k)|: the magnitude sum of frame f's windowed DFT over the NLFER band.

    Frame f is x[f*hop : f*hop + frame_size]. cos_t / sin_t are the folded bases of
    ``fast._nlfer_basis`` transposed to (K4, ceil(L/2)) and (K4, L//2), float32, K4 a multiple of 4 (zero rows give
    zero terms). Products in float32 as the GEMM they replace, two frames by four bins per pass;
    magnitudes and their sum in float64.
    """
    half = frame_size // 2
    nc = cos_t.shape[1]
    nbins = cos_t.shape[0]
    folded_sum = np.zeros((2, nc), dtype=np.float32)
    folded_diff = np.zeros((2, nc), dtype=np.float32)
    for f in range(0, nframes, 2):
        rows = min(2, nframes - f)
        for r in range(rows):
            base = (f + r) * hop
            for i in range(half):
                a = x[base + i]
                b = x[base + frame_size - 1 - i]
                folded_sum[r, i] = a + b
                folded_diff[r, i] = a - b
            if frame_size % 2:
                folded_sum[r, half] = x[base + half]
        u = folded_sum[0]
        v = folded_sum[1]
        du = folded_diff[0]
        dv = folded_diff[1]
        e0 = 0.0
        e1 = 0.0
        for k in range(0, nbins, 4):
            ca = cos_t[k]
            cb = cos_t[k + 1]
            cc = cos_t[k + 2]
            cd = cos_t[k + 3]
            c00 = c01 = c02 = c03 = c10 = c11 = c12 = c13 = np.float32(0.0)
            for i in range(nc):
                c00 += u[i] * ca[i]
                c01 += u[i] * cb[i]
                c02 += u[i] * cc[i]
                c03 += u[i] * cd[i]
                c10 += v[i] * ca[i]
                c11 += v[i] * cb[i]
                c12 += v[i] * cc[i]
                c13 += v[i] * cd[i]
            sa = sin_t[k]
            sb = sin_t[k + 1]
            sc = sin_t[k + 2]
            sd = sin_t[k + 3]
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = np.float32(0.0)
            for i in range(half):
                s00 += du[i] * sa[i]
                s01 += du[i] * sb[i]
                s02 += du[i] * sc[i]
                s03 += du[i] * sd[i]
                s10 += dv[i] * sa[i]
                s11 += dv[i] * sb[i]
                s12 += dv[i] * sc[i]
                s13 += dv[i] * sd[i]
            e0 += (_norm(c00, s00) + _norm(c01, s01)) + (_norm(c02, s02) + _norm(c03, s03))
            e1 += (_norm(c10, s10) + _norm(c11, s11)) + (_norm(c12, s12) + _norm(c13, s13))
        out[f] = e0
        if rows == 2:
            out[f + 1] = e1


# --------------------------------------------------------------------------------------------------
# Spectral harmonics correlation (SHC) and its peak picking.
# --------------------------------------------------------------------------------------------------


@_jit
def fill_frames(data: np.ndarray, starts: np.ndarray, window: np.ndarray, out: np.ndarray) -> None:
    """out[r, :len(window)] = w * frame - mean(w * frame), frame = data[starts[r]:][:len(window)], in float32
    (the zero padding beyond len(window) is left as it is)."""
    length = window.shape[0]
    tmp = np.empty(length)
    for r in range(starts.shape[0]):
        seg = data[starts[r] : starts[r] + length]
        for i in range(length):
            tmp[i] = seg[i] * window[i]
        m = pairwise_sum(tmp, 0, length) / length
        row = out[r]
        for i in range(length):
            row[i] = tmp[i] - m


@_jit
def _shc_rows(
    mag: np.ndarray, poly: np.ndarray, acc: np.ndarray, res: np.ndarray, min_shc: int, nrows: int, win_len: int,
    num_harm: int,
) -> None:  # fmt: skip
    """res[i] = sum_j prod_h mag[h*(min_shc+i) + j] for all SHC rows i at once (win_len <= 128).

    Same operations and order as pYAAPT's per-row product and numpy's pairwise row sum, but vectorised over
    rows: for harmonic h the row-i term mag[h*(min_shc+i) + j] lives at poly[h-2, j % h, min_shc+i + j//h].
    """
    size = mag.shape[0]
    for h in range(2, num_harm + 2):
        for r in range(h):
            dst = poly[h - 2, r]
            for u in range(dst.shape[0]):
                k = h * u + r
                dst[u] = mag[k] if k < size else 0.0
    stop = win_len - (win_len % 8)
    term = np.empty(nrows)
    for j in range(win_len):
        base = mag[min_shc + j : min_shc + j + nrows]
        for i in range(nrows):
            term[i] = base[i]
        for h in range(2, num_harm + 2):
            src = poly[h - 2, j % h, min_shc + j // h : min_shc + j // h + nrows]
            for i in range(nrows):
                term[i] = term[i] * src[i]
        if win_len < 8:  # numpy: plain running sum from 0.0
            if j == 0:
                for i in range(nrows):
                    res[i] = 0.0
            for i in range(nrows):
                res[i] += term[i]
            continue
        if j < 8:
            a = acc[j]
            for i in range(nrows):
                a[i] = term[i]
        elif j < stop:
            a = acc[j % 8]
            for i in range(nrows):
                a[i] += term[i]
        else:
            for i in range(nrows):
                res[i] += term[i]
        if j == stop - 1:
            for i in range(nrows):
                res[i] = ((acc[0, i] + acc[1, i]) + (acc[2, i] + acc[3, i])) + (
                    (acc[4, i] + acc[5, i]) + (acc[6, i] + acc[7, i])
                )


@_jit
def shc_peaks(
    spec: np.ndarray,
    out_pitch: np.ndarray,
    out_merit: np.ndarray,
    col0: int,
    half_win: int,
    win_len: int,
    min_shc: int,
    max_shc: int,
    num_harm: int,
    delta: float,
    maxpeaks: int,
    shc_pwidth: float,
    f0_min: float,
    f0_max: float,
    thresh1: float,
    thresh2: float,
) -> None:
    """SHC of each spectrum row and its best ``maxpeaks`` peaks.

    spec: (F, >=nbins) complex spectra of voiced frames; results go to out_pitch/out_merit[:, col0:col0+F]
    (maxpeaks rows), which must hold pYAAPT's unvoiced values (0 / 1) beforehand.
    """
    nfr = spec.shape[0]
    top = min_shc * (num_harm + 1) + (max_shc - min_shc) * (num_harm + 1) + win_len
    nbins = min(spec.shape[1], top - half_win)
    nrows = max_shc - min_shc + 1
    # magnitude, shifted right by half_win with zeros in front (pYAAPT's layout)
    mag = np.zeros(half_win + nbins)
    shc = np.zeros(max_shc)
    prod = np.empty(win_len)
    # polyphase copies of the spectrum: poly[h-2, r, u] = mag[h*u + r] (contiguous over SHC rows)
    poly = np.zeros((num_harm, num_harm + 1, (half_win + nbins) // 2 + 2))
    acc = np.empty((8, nrows))
    res = np.empty(nrows)
    data = np.empty(max_shc)

    width = int(np.trunc(shc_pwidth / delta))
    if not (float(width) % 2):
        width += 1
    center = int(np.ceil(width / 2))
    min_lag = int(np.trunc(f0_min / delta - center))
    max_lag = int(np.trunc(f0_max / delta + center))
    if min_lag < 1:
        min_lag = 1
    if max_lag > max_shc - width:
        max_lag = max_shc - width
    eps = 0.00000000000001
    cand_pitch = np.zeros(max_shc)
    cand_merit = np.zeros(max_shc)

    for f in range(nfr):
        row = spec[f]
        for k in range(nbins):
            re = np.float64(row[k].real)
            im = np.float64(row[k].imag)
            mag[half_win + k] = np.sqrt(re * re + im * im)
        if win_len <= _BLOCK:
            _shc_rows(mag, poly, acc, res, min_shc, nrows, win_len, num_harm)
            for i in range(nrows):
                shc[min_shc - 1 + i] = res[i]
        else:
            for i in range(nrows):
                m = min_shc + i
                for j in range(win_len):
                    prod[j] = mag[m + j]
                for h in range(2, num_harm + 2):  # product order of pYAAPT: ((m1 * m2) * m3) * m4
                    for j in range(win_len):
                        prod[j] = prod[j] * mag[m * h + j]
                shc[min_shc - 1 + i] = pairwise_sum(prod, 0, win_len)

        # ---- peak picking (pYAAPT "peaks") ----
        mx = shc[min_lag]
        for i in range(min_lag, max_lag + 1):
            if shc[i] > mx:
                mx = shc[i]
        if mx > eps:
            for i in range(max_shc):
                data[i] = shc[i] / mx
        else:
            for i in range(max_shc):
                data[i] = shc[i]
        avg = pairwise_sum(data, min_lag, max_lag + 1 - min_lag) / (max_lag + 1 - min_lag)
        if avg > 1.0 / thresh1:
            continue  # zeros / ones already in place
        numpeaks = 0
        best_merit = 0.0
        for n in range(min_lag + center + 1, max_lag - center + 1):
            dn = data[n]
            is_peak = dn > data[n - 1] and dn > data[n + 1] and dn > thresh2 * avg
            if is_peak and first_argmax(data, n - center, n + center + 1) == center:
                cand_pitch[numpeaks] = float(n) * delta
                cand_merit[numpeaks] = dn
                if dn > best_merit:
                    best_merit = dn
                numpeaks += 1
        if best_merit / avg < thresh1:
            continue
        npk = min(numpeaks, maxpeaks)
        if npk == 0 or npk >= maxpeaks:
            continue  # pYAAPT declares such frames unvoiced (zeros / ones)
        order = np.argsort(-cand_merit[:numpeaks], kind="mergesort")
        c = col0 + f
        for r in range(npk):
            out_pitch[r, c] = cand_pitch[order[r]]
            out_merit[r, c] = cand_merit[order[r]]
        for r in range(npk, maxpeaks):
            out_pitch[r, c] = out_pitch[0, c]
            out_merit[r, c] = out_merit[0, c]


# --------------------------------------------------------------------------------------------------
# Time-domain tracking: NCCF per frame and its candidates.
# --------------------------------------------------------------------------------------------------


@_jit
def nccf_track(
    filtered: np.ndarray,
    nframes: int,
    frame_len: int,
    hop: int,
    lag_min: np.ndarray,
    lag_max: np.ndarray,
    fs: float,
    maxcands: int,
    center: int,
    thresh1: float,
    thresh2: float,
) -> tuple[np.ndarray, np.ndarray]:
    """NCCF candidates of every TDA frame. Returns pitch, merit: (maxcands, nframes).

    pYAAPT removes each frame's mean in place on overlapping views of one buffer, so frame ``f`` sees
    the means of the frames before it subtracted from the samples they share; we do the same,
    sequentially, on a private copy.
    """
    data = filtered.copy()
    out_pitch = np.zeros((maxcands, nframes))
    out_merit = np.zeros((maxcands, nframes))
    phi = np.zeros(frame_len + 1)
    num = np.empty(frame_len)
    den = np.empty(frame_len)
    cand_p = np.zeros(frame_len)
    cand_m = np.zeros(frame_len)
    for f in range(nframes):
        s = f * hop
        m = pairwise_sum(data, s, frame_len) / frame_len
        frame = data[s : s + frame_len]
        for i in range(frame_len):
            frame[i] -= m
        lo = lag_min[f]
        hi = lag_max[f]
        n = frame_len - hi
        if n <= 0:
            raise ValueError("negative index in the NCCF: increase tda_frame_length")
        p = _dot(data, s, data, s, n)
        nl = hi - lo
        for q in range(nl):
            num[q] = 0.0
        # lag-parallel accumulation: one running sum per lag, vectorised over lags
        i = 0
        while i + 4 <= n:
            b = s + lo + i
            _axpy4(num, data[s + i : s + i + 4], data[b : b + nl + 3], nl)
            i += 4
        while i < n:
            _axpy(num, data[s + i], data[s + lo + i : s + lo + i + nl], nl)
            i += 1
        # window energies: a sliding sum, recomputed directly every _REFRESH lags to bound drift
        b = s + lo
        for q in range(nl):
            if q % _REFRESH == 0:
                e = _dot(data, b + q, data, b + q, n)
            else:
                e += data[b + q - 1 + n] * data[b + q - 1 + n] - data[b + q - 1] * data[b + q - 1]
            den[q] = e
        phi[hi] = 0.0  # reads stay within [lo, hi]; pYAAPT's phi is zero at hi
        has_nan = False
        for q in range(nl):
            v = num[q] / np.sqrt(den[q] * p)
            phi[lo + q] = v
            if v != v:
                has_nan = True
        phi_max = 0.0
        for lag in range(lo, hi):
            if phi[lag] > phi_max:
                phi_max = phi[lag]

        # ---- candidates (pYAAPT "cmp_rate") ----
        npk = 0
        for k in range(lo + center, hi - center + 1):
            v = phi[k]
            if v > phi[k - 1] and v > phi[k + 1] and v > thresh1:
                cand_p[npk] = k  # lag for now
                cand_m[npk] = v
                npk += 1
        numpeaks = 0
        if (not has_nan) and phi_max > thresh2 and npk > 0:
            best = 0
            for q in range(1, npk):
                if cand_m[q] > cand_m[best]:
                    best = q
            out_pitch[0, f] = fs / (cand_p[best] + 1.0)
            out_merit[0, f] = cand_m[best]
            numpeaks = 1
        else:
            for q in range(npk):
                k = int(cand_p[q])
                if first_argmax(phi, k - center, k + center + 1) == center:
                    cand_p[numpeaks] = fs / float(k + 1)
                    cand_m[numpeaks] = phi[k]
                    numpeaks += 1
            if numpeaks > 0:
                order = np.argsort(-cand_m[:numpeaks], kind="mergesort")
                top = min(numpeaks, maxcands)
                for r in range(top):
                    out_pitch[r, f] = cand_p[order[r]]
                    out_merit[r, f] = cand_m[order[r]]
        mm = 0.0
        for r in range(maxcands):
            if out_merit[r, f] > mm:
                mm = out_merit[r, f]
        if mm > 1.0:
            for r in range(maxcands):
                out_merit[r, f] = out_merit[r, f] / mm
    return out_pitch, out_merit


# --------------------------------------------------------------------------------------------------
# Median filter (scipy.signal.medfilt on 1-D input), without its per-call overhead.
# --------------------------------------------------------------------------------------------------


@_jit
def median_filter(x: np.ndarray, size: int) -> np.ndarray:
    """scipy.signal.medfilt(x, size) for 1-D finite x and odd size: the median of each centred window,
    zeros beyond both ends. A selection, so bit-identical to scipy's result."""
    n = x.shape[0]
    half = size // 2
    out = np.empty(n)
    window = np.empty(size)
    for i in range(n):
        for j in range(size):
            k = i - half + j
            v = x[k] if 0 <= k < n else 0.0
            m = j  # insertion sort of the window so far
            while m > 0 and window[m - 1] > v:
                window[m] = window[m - 1]
                m -= 1
            window[m] = v
        out[i] = window[half]
    return out


# --------------------------------------------------------------------------------------------------
# Dynamic programming (pYAAPT "path1").
# --------------------------------------------------------------------------------------------------


@_jit
def best_path(local: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """Lowest-cost candidate path. local: (C, T) costs; trans: (C, C, T), trans[i, j, t] = cost of
    candidate i at t-1 to candidate j at t. Ties go to the highest candidate index. Returns (T,) int."""
    ncand, ncol = local.shape
    pred = np.zeros((ncand, ncol), dtype=np.int64)
    pcost = local[:, 0].copy()
    ccost = np.empty(ncand)
    aux = np.empty(ncand)
    last = 0
    for t in range(1, ncol):
        for j in range(ncand):
            for i in range(ncand):
                aux[i] = pcost[i] + trans[i, j, t]
            k = last_argmin(aux)
            pred[j, t] = k
            ccost[j] = (pcost[k] + trans[k, j, t]) + local[j, t]
        for j in range(ncand):
            pcost[j] = ccost[j]
        last = last_argmin(ccost)
    path = np.ones(ncol, dtype=np.int64)
    path[ncol - 1] = last
    for t in range(ncol - 2, -1, -1):
        path[t] = pred[path[t + 1], t + 1]
    return path
