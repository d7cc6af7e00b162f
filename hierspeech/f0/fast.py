"""Fast YAAPT F0: amfm_decompy's ``pYAAPT.yaapt`` re-implemented with vectorised numpy and numba kernels.

HierSpeech++ was trained on pYAAPT F0. :func:`yaapt_fast` returns the same frame-level track as
``pYAAPT.yaapt(SignalObj(signal, fs), **params).samp_values`` (float64 Hz, 0 = unvoiced), 11-17x faster
per CPU second on 2-15 s clips (with or without BLAS threads) and ~19x on a 98 s one (bench/bench_f0_speed.py,
docs/f0.md):

* pYAAPT's Python per-frame loops (SHC + peak picking, NCCF + candidate picking, both dynamic programmes)
  run in numba kernels (:mod:`hierspeech.f0._yaapt_kernels`), step for step the same decisions;
* the SHC spectra (8192-point FFTs of the voiced frames) are computed in float32, in cached chunks;
* the NLFER needs ~150 bins of an 8192-point spectrum of 320-sample frames: a compiled float32 product
  with a folded DFT basis instead of 608 full FFTs;
* the band-pass FIR (of the signal and of its square) is one compiled pass of direct sums;
* no BLAS call at all: numpy's OpenBLAS starts a thread per core, and on a small product per call its
  threads spun for longer than the work took (2-3x the CPU time of a 3 s clip; on a loaded machine
  worse). Constants (filter taps, DFT bases, windows) are built once per parameter set and cached;
* the array glue (spectral-track smoothing, candidate refinement, cost matrices) uses the same numpy/scipy
  calls as the reference (median filters compiled, same results), so degenerate inputs behave (and
  raise) as in pYAAPT.

Exactness: reductions that pYAAPT does with numpy (means, SHC row sums, NCCF window energies' inputs)
follow numpy's pairwise order; pYAAPT's BLAS dot products (NCCF, FIR) have a machine-dependent order, so
ours differ from them by ulps, as do the float32 spectra and NLFER energies by ~1e-7 relative. The final
dynamic programme has exact ties (candidates duplicated on purpose) that such differences can break the
other way, so a few frames per thousand can differ (by one NCCF lag or a halving/doubling); see bench/bench_f0_parity.py.

Algorithm: Zahorian & Hu, "A spectral/temporal method for robust fundamental frequency tracking",
JASA 123(6), 2008.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft
import scipy.interpolate
import scipy.signal
from scipy.signal import firwin, lfilter
from scipy.signal.windows import hann, kaiser

from hierspeech.f0 import _yaapt_kernels as K

__all__ = ["YaaptParams", "yaapt_fast", "yaapt_fast_batch"]

# NLFER DFT in float32 (half the cost; energies agree to ~1e-7, no voicing decision changed on the corpus)
_NLFER_DTYPE = np.float32
_FFT_CHUNK = 32  # SHC frames per FFT call: the zero-padded chunk stays in cache


@dataclass(frozen=True)
class YaaptParams:
    """pYAAPT options (names and defaults of amfm_decompy 1.0.12; the first six are the ones we expose)."""

    frame_length: float = 20.0  # ms, analysis frame (pYAAPT default 35)
    frame_space: float = 5.0  # ms, hop (pYAAPT default 10)
    nccf_thresh1: float = 0.25  # NCCF peak threshold (pYAAPT default 0.3)
    tda_frame_length: float = 25.0  # ms, NCCF frame (pYAAPT default 35)
    f0_min: float = 60.0
    f0_max: float = 400.0
    fft_length: int = 8192
    bp_forder: int = 150
    bp_low: float = 50.0
    bp_high: float = 1500.0
    nlfer_thresh1: float = 0.75
    nlfer_thresh2: float = 0.1
    shc_numharms: int = 3
    shc_window: float = 40.0
    shc_maxpeaks: int = 4
    shc_pwidth: float = 50.0
    shc_thresh1: float = 5.0
    shc_thresh2: float = 1.25
    dp5_k1: float = 11.0
    nccf_thresh2: float = 0.9
    nccf_maxcands: int = 3
    nccf_pwidth: int = 5
    merit_boost: float = 0.20
    merit_pivot: float = 0.99
    median_value: int = 7
    dp_w1: float = 0.15
    dp_w2: float = 0.5
    dp_w3: float = 0.1
    dp_w4: float = 0.9
    spec_pitch_min_std: float = 0.05


# ---------------------------------------------------------------------------------------------------
# Cached constants
# ---------------------------------------------------------------------------------------------------


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False  # cached arrays are shared by every later call
    return a


@lru_cache(maxsize=8)
def _bandpass(fs: float, order: int, low: float, high: float) -> np.ndarray:
    return _read_only(firwin(order + 1, [low / (fs / 2), high / (fs / 2)], pass_zero=False))


@lru_cache(maxsize=8)
def _nlfer_basis(frame_size: int, nfft: int, k_lo: int, k_hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Folded Hann-windowed DFT basis for bins [k_lo, k_hi) of an nfft-point transform, bin-major.

    The window is symmetric, so about the frame centre c the spectrum is C - iS (times a phase) with
    C = sum_n<L/2 (x[n] + x[L-1-n]) w[n] cos(w_k (n-c)) (+ the middle sample when L is odd) and
    S = sum_n<L/2 (x[n] - x[L-1-n]) w[n] sin(w_k (n-c)): half the multiply-adds of the plain DFT.
    Returns the cos basis (K4, ceil(L/2)) and the sin basis (K4, L//2), float32, K4 = K rounded up to a
    multiple of 4 with zero rows (the kernel takes four bins per pass; a zero row adds |0| = 0).
    """
    window = hann(frame_size + 2)[1:-1]
    half = frame_size // 2
    n = np.arange((frame_size + 1) // 2)[None, :]
    k = np.arange(k_lo, k_hi)[:, None]
    ang = (2.0 * np.pi / nfft) * k * (n - (frame_size - 1) / 2.0)
    w = window[None, : n.shape[1]]
    rows = -(-(k_hi - k_lo) // 4) * 4
    cos_t = np.zeros((rows, n.shape[1]), dtype=_NLFER_DTYPE)
    sin_t = np.zeros((rows, half), dtype=_NLFER_DTYPE)
    cos_t[: k_hi - k_lo] = w * np.cos(ang)
    sin_t[: k_hi - k_lo] = w[:, :half] * np.sin(ang[:, :half])
    return _read_only(cos_t), _read_only(sin_t)


@lru_cache(maxsize=8)
def _kaiser(n: int) -> np.ndarray:
    return _read_only(kaiser(n, 0.5))


def _bandpass_both(b: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pYAAPT's causal FIR (lfilter(b, 1, .)) of x and of x**2, each (L,), in one compiled pass.

    Equal to lfilter's to ~1e-16 (its sums' order differs from ours anyway) at any length, with no
    FFT block-size choice (scipy's oaconvolve slowed down sharply for some lengths).
    """
    filtered = np.empty_like(x)
    filtered_sq = np.empty_like(x)
    K.fir_pair(b, x, filtered, filtered_sq)
    return filtered, filtered_sq


def _medfilt(x: np.ndarray, size: int) -> np.ndarray:
    """scipy.signal.medfilt(x, size) of a 1-D array, compiled (scipy's own call costs more than the work here);
    scipy's where it would warn, raise or meet a NaN."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    if size % 2 == 0 or size > x.shape[0] or np.isnan(x).any():
        return scipy.signal.medfilt(x, size)
    return K.median_filter(x, size)


def _frames(x: np.ndarray, count: int, length: int, hop: int) -> np.ndarray:
    """Read-only strided view (count, length) of x, frame i starting at i*hop."""
    return np.lib.stride_tricks.as_strided(
        x, shape=(count, length), strides=(x.strides[0] * hop, x.strides[0]), writeable=False
    )


# ---------------------------------------------------------------------------------------------------
# Stages
# ---------------------------------------------------------------------------------------------------


def _nlfer(filtered: np.ndarray, fs: float, frame_size: int, hop: int, p: YaaptParams) -> np.ndarray:
    """Normalised low-frequency energy ratio per frame: (nframes,)."""
    k_lo = int(np.around((p.f0_min * 2 / fs) * p.fft_length)) - 1
    k_hi = int(np.around((p.f0_max / fs) * p.fft_length))
    size = filtered.shape[0]
    nframes = len(range(frame_size // 2, size - frame_size // 2, hop))
    cos_t, sin_t = _nlfer_basis(frame_size, p.fft_length, k_lo, k_hi)
    energy = np.empty(nframes)
    K.nlfer_energy(filtered, nframes, frame_size, hop, cos_t, sin_t, energy)
    return energy / np.mean(energy)


def _spec_track(
    nl_filtered: np.ndarray, vuv: np.ndarray, fs: float, frame_size: int, hop: int, p: YaaptParams
) -> tuple[np.ndarray, float]:
    """Spectral (SHC) pitch track over all frames, smoothed and interpolated, and its spread."""
    nframes = vuv.shape[0]
    nfft = p.fft_length
    long_size = 2 * frame_size
    maxpeaks = p.shc_maxpeaks
    delta = fs / nfft
    win_len = int(np.fix(p.shc_window / delta))
    half_win = win_len // 2
    if win_len % 2 == 0:
        win_len += 1
    max_shc = int(np.fix((p.f0_max + p.shc_pwidth * 2) / delta))
    min_shc = int(np.ceil(p.f0_min / delta))

    tail = long_size + (nframes - 1) * hop - nl_filtered.shape[0]
    data = np.concatenate([nl_filtered, np.zeros(tail)]) if tail > 0 else nl_filtered

    cand_pitch = np.zeros((maxpeaks, nframes))
    cand_merit = np.ones((maxpeaks, nframes))
    voiced = np.flatnonzero(vuv)
    if voiced.size:
        # SHC frames (voiced only): windowed, mean removed, zero padded to nfft, in chunks through one
        # reused buffer. float32 transform: twice as fast, and no F0 decision changed on the parity corpus.
        window = _kaiser(long_size)
        starts = (voiced * hop).astype(np.int64)
        v_pitch = np.zeros((maxpeaks, voiced.size))
        v_merit = np.ones((maxpeaks, voiced.size))
        buf = np.zeros((min(_FFT_CHUNK, voiced.size), nfft), dtype=np.float32)
        for c0 in range(0, voiced.size, _FFT_CHUNK):
            rows = buf[: min(_FFT_CHUNK, voiced.size - c0)]
            K.fill_frames(data, starts[c0 : c0 + rows.shape[0]], window, rows)
            K.shc_peaks(
                scipy.fft.rfft(rows, axis=1), v_pitch, v_merit, c0, half_win, win_len, min_shc, max_shc,
                p.shc_numharms, delta, maxpeaks, p.shc_pwidth, p.f0_min, p.f0_max, p.shc_thresh1, p.shc_thresh2,
            )  # fmt: skip
        cand_pitch[:, voiced] = v_pitch
        cand_merit[:, voiced] = v_merit

    # ---- choose one candidate per voiced frame: weighted pick, median, DP, median ----
    spec_pitch = cand_pitch[0, :]  # a view, as in the reference
    keep = cand_pitch[0, :] > 0
    v_pitch = cand_pitch[:, keep]
    v_merit = cand_merit[:, keep]
    nv = v_pitch.shape[1]
    avg_v = np.mean(v_pitch[0, :])
    std_v = np.std(v_pitch[0, :])
    cols = np.arange(nv)
    pick = (np.abs(v_pitch - 0.8 * avg_v) * (3 - v_merit)).argmin(0)
    picked_merit = v_merit[pick, cols]
    v_pitch[pick, cols] = _medfilt(v_pitch[pick, cols], max(1, p.median_value - 2))
    v_merit[pick, cols] = picked_merit
    k1 = p.dp5_k1 * std_v / avg_v

    if nv > 2:
        trans = np.zeros((maxpeaks, maxpeaks, nv))  # [prev, cur, t]
        trans[:, :, 1:] = np.abs(v_pitch[None, :, 1:] - v_pitch[:, None, :-1]) / p.f0_min
        trans[:, :, 1:] = 0.05 * trans[:, :, 1:] + trans[:, :, 1:] ** 2
        trans = k1 * trans
        path = K.best_path(1 - v_merit, trans)
        voiced_pitch = _medfilt(v_pitch[path, cols], max(1, p.median_value - 2))
    elif nv > 0:
        voiced_pitch = np.ones(nv) * 150.0
    else:
        voiced_pitch = np.array([150.0])
        cand_pitch[0, 0] = 0

    pitch_avg = np.mean(voiced_pitch)
    pitch_std = np.maximum(np.std(voiced_pitch), pitch_avg * p.spec_pitch_min_std)
    spec_pitch[cand_pitch[0, :] > 0] = voiced_pitch[:]
    if spec_pitch[0] < pitch_avg / 2:
        spec_pitch[0] = pitch_avg
    if spec_pitch[-1] < pitch_avg / 2:
        spec_pitch[-1] = pitch_avg
    known = np.nonzero(spec_pitch)[0]
    spec_pitch = scipy.interpolate.pchip(known, spec_pitch[known])(range(nframes))
    spec_pitch = lfilter(np.ones(3) / 3, 1.0, spec_pitch)
    spec_pitch[0] = spec_pitch[2]
    spec_pitch[1] = spec_pitch[3]
    return spec_pitch, float(pitch_std)


def _time_track(
    filtered: np.ndarray, spec_pitch: np.ndarray, pitch_std: float, fs: float, hop: int, p: YaaptParams
) -> tuple[np.ndarray, np.ndarray]:
    """NCCF pitch candidates and merits (maxcands, T<=nframes), merits rescaled by spectral agreement."""
    tda_len = int(p.tda_frame_length * fs / 1000)
    count = int((filtered.shape[0] - (tda_len - hop)) / hop)
    if count < spec_pitch.shape[0]:
        spec_pitch = spec_pitch[:count]
    else:
        count = spec_pitch.shape[0]
    lo_f = np.maximum(spec_pitch - 2.0 * pitch_std, p.f0_min)
    hi_f = np.minimum(spec_pitch + 2.0 * pitch_std, p.f0_max)
    half_w = int(np.fix(p.nccf_pwidth / 2.0))
    lag_min = np.fix(fs / hi_f).astype(np.int64) - half_w
    lag_max = np.fix(fs / lo_f).astype(np.int64) + half_w
    tp, tm = K.nccf_track(
        filtered,
        count,
        tda_len,
        hop,
        lag_min,
        lag_max,
        fs,
        p.nccf_maxcands,
        half_w,
        p.nccf_thresh1,
        p.nccf_thresh2,
    )
    freq_thresh = 5.0 * pitch_std
    diff = np.abs(tp - spec_pitch)
    match = (1 - diff / freq_thresh) * (diff < freq_thresh)
    return tp, ((1 + p.merit_boost) * tm) * match


def _refine(
    tp1: np.ndarray, tm1: np.ndarray, tp2: np.ndarray, tm2: np.ndarray, spec_pitch: np.ndarray,
    energy: np.ndarray, vuv: np.ndarray, p: YaaptParams,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Merge the two NCCF candidate sets with the spectral track and the NLFER: (C, nframes) each."""
    pitch = np.concatenate([tp1, tp2], axis=0)
    merit = np.concatenate([tm1, tm2], axis=0)
    ncand, nframes = pitch.shape
    order = np.argsort(-merit, axis=0)
    merit = np.sort(merit, axis=0)[::-1, :].copy()
    pitch = pitch[order, np.arange(nframes)]

    best = _medfilt(pitch[0, :], p.median_value) * vuv
    low = energy <= p.nlfer_thresh2
    strong = ~low & (pitch[0, :] > 0)
    empty = ~low & (pitch[0, :] <= 0)
    zero_mid = np.zeros_like(pitch, dtype=bool)
    zero_mid[1 : ncand - 1] = (pitch[1 : ncand - 1, :] == 0) & strong

    pitch[:, low] = 0
    merit[:, low] = p.merit_pivot
    pitch[ncand - 1, strong] = 0.0
    merit[ncand - 1, strong] = 1.0 - merit[0, strong]
    merit[zero_mid] = 0.0
    pitch[0, empty] = spec_pitch[empty]
    merit[0, empty] = np.minimum(1, energy[empty] / 2.0)
    pitch[1:, empty] = 0.0
    merit[1:, empty] = 1.0 - merit[0, empty]

    pitch[ncand - 2, :] = best
    voiced = best > 0.0
    merit[ncand - 2, voiced] = merit[0, voiced]
    merit[ncand - 2, ~voiced] = 1.0 - np.minimum(1, energy[~voiced] / 2.0)
    pitch[ncand - 3, :] = spec_pitch
    merit[ncand - 3, :] = energy / 5.0
    return pitch, merit


def _final_dp(pitch: np.ndarray, merit: np.ndarray, energy: np.ndarray, p: YaaptParams) -> np.ndarray:
    """Pick one candidate per frame by dynamic programming: (nframes,) F0, 0 = unvoiced."""
    ncand, nframes = pitch.shape
    best = pitch[ncand - 2, :]
    mean_pitch = np.mean(best[best > 0])
    prev = pitch[:, None, :-1]  # [prev, 1, t]
    cur = pitch[None, :, 1:]  # [1, cur, t]
    both = (cur > 0) & (prev > 0)
    one = ((cur == 0) & (prev > 0)) | ((cur > 0) & (prev == 0))
    none = (cur == 0) & (prev == 0)
    benefit = np.minimum(1, np.abs(energy[:-1] - energy[1:]))[None, None, :]
    trans = np.ones((ncand, ncand, nframes))
    tr = trans[:, :, 1:]
    tr[both] = (p.dp_w1 * (np.abs(cur - prev) / mean_pitch))[both]
    tr[one] = np.broadcast_to(p.dp_w2 * (1 - benefit), tr.shape)[one]
    tr[none] = p.dp_w3
    trans = trans / p.dp_w4
    path = K.best_path(1 - merit, trans)
    return pitch[path, np.arange(nframes)]


# ---------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------


def yaapt_fast(
    signal: np.ndarray,
    sample_rate: int,
    *,
    frame_length: float = 20.0,
    frame_space: float = 5.0,
    nccf_thresh1: float = 0.25,
    tda_frame_length: float = 25.0,
    f0_min: float = 60.0,
    f0_max: float = 400.0,
) -> np.ndarray:
    """Frame-level F0 of an (already padded) mono signal, as pYAAPT's ``samp_values``.

    signal: (L,) float, used as float64. Returns (N,) float64 Hz with 0 for unvoiced frames,
    N = ceil((L - frame_size) / hop) where frame_size/hop are frame_length/frame_space in samples.
    Raises where pYAAPT would raise (e.g. a signal too short for its filters and frames).
    """
    p = YaaptParams(
        frame_length=frame_length, frame_space=frame_space, nccf_thresh1=nccf_thresh1,
        tda_frame_length=tda_frame_length, f0_min=f0_min, f0_max=f0_max,
    )  # fmt: skip
    return _yaapt(np.ascontiguousarray(signal, dtype=np.float64).reshape(-1), float(sample_rate), p)


def yaapt_fast_batch(signals: list[np.ndarray], sample_rate: int, **params: float) -> list[np.ndarray]:
    """:func:`yaapt_fast` over several signals (any lengths): list of (N_i,) arrays, in order.

    Runs them one after another: on one core the work is already in large vectorised/compiled blocks,
    and measured batching across utterances did not speed it up (see bench/bench_f0_speed.py).
    Parallelise across processes instead.
    """
    return [yaapt_fast(s, sample_rate, **params) for s in signals]


def _yaapt(x: np.ndarray, fs: float, p: YaaptParams) -> np.ndarray:
    frame_size = int(np.fix(p.frame_length * fs / 1000))
    hop = int(np.fix(p.frame_space * fs / 1000))
    if not 15 < frame_size < 2048:
        raise ValueError(f"frame length of {frame_size} samples is outside (15, 2048)")
    b = _bandpass(fs, p.bp_forder, p.bp_low, p.bp_high)
    filtered, nl_filtered = _bandpass_both(b, x)

    energy = _nlfer(filtered, fs, frame_size, hop, p)
    vuv = energy > p.nlfer_thresh1
    spec_pitch, pitch_std = _spec_track(nl_filtered, vuv, fs, frame_size, hop, p)
    tp1, tm1 = _time_track(filtered, spec_pitch, pitch_std, fs, hop, p)
    tp2, tm2 = _time_track(nl_filtered, spec_pitch, pitch_std, fs, hop, p)
    short = spec_pitch.shape[0] - tp1.shape[1]
    if short > 0:
        pad = np.zeros((tp1.shape[0], short))
        tp1, tm1, tp2, tm2 = (np.concatenate([a, pad], axis=1) for a in (tp1, tm1, tp2, tm2))
    pitch, merit = _refine(tp1, tm1, tp2, tm2, spec_pitch, energy, vuv, p)
    return _final_dp(pitch, merit, energy, p)
