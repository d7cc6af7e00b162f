"""The report's figures: matplotlib (Agg) rendered to PNG bytes, one function per figure."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

WIDE = (7.2, 3.0)
DPI = 110
SPECTROGRAM_DBFS = (-100.0, 0.0)
"""The colour scale of every spectrogram, in dB relative to full scale (0 dB: the peak bin of a
full-scale sine). One fixed range, so levels compare across samples and a silent file is dark; a
range per image would stretch any file, silence included, to look full-scale."""
COLOR = "#3b6ea8"
COLOR_2 = "#e08a2c"


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    return buffer.getvalue()


def _axes(size=WIDE, integer_y: bool = True):
    fig, ax = plt.subplots(figsize=size)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", alpha=0.3)
    if integer_y:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return fig, ax


def duration_histogram(durations: np.ndarray, source_durations: np.ndarray | None = None) -> bytes:
    """Histogram of output durations (s), with the input durations overlaid when they differ."""
    fig, ax = _axes()
    top = float(np.percentile(durations, 99.5)) if durations.size else 1.0
    if source_durations is not None and source_durations.size:
        top = max(top, float(np.percentile(source_durations, 99.5)))
    low = float(np.percentile(durations, 0.5)) if durations.size else 0.0
    low = 0.0 if low < 0.4 * top else low * 0.95  # a narrow range (e.g. 3-4 s clips) gets the whole width
    bins = np.linspace(low, max(top, low + 1e-3) * 1.02, 40)
    ax.hist(np.clip(durations, bins[0], bins[-1]), bins=bins, color=COLOR, alpha=0.85, label=f"output ({durations.size})")
    differs = False
    if source_durations is not None and source_durations.size:
        same_size = source_durations.size == durations.size
        differs = not (same_size and np.allclose(np.sort(source_durations), np.sort(durations), atol=0.05))
    if differs:
        ax.hist(np.clip(source_durations, bins[0], bins[-1]), bins=bins, histtype="step", color=COLOR_2, linewidth=1.5, label="input")
        ax.legend(frameon=False)
    ax.set_xlabel("duration (s)")
    ax.set_ylabel("samples")
    ax.set_title(f"Durations: median {np.median(durations):.2f} s, total {durations.sum() / 3600:.3f} h", fontsize=10)
    return _png(fig)


def speaker_counts(speakers: Counter, top: int = 20) -> bytes:
    """Horizontal bars: samples per speaker, the `top` largest."""
    common = speakers.most_common(top)
    fig, ax = plt.subplots(figsize=(7.2, max(1.6, 0.28 * len(common) + 0.9)))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.spines[["top", "right"]].set_visible(False)
    names = [str(s) if len(str(s)) <= 24 else str(s)[:23] + "…" for s, _ in common][::-1]
    ax.barh(names, [c for _, c in common][::-1], color=COLOR)
    ax.set_xlabel("samples")
    shown = f"top {len(common)} of {len(speakers)}" if len(speakers) > len(common) else f"all {len(speakers)}"
    ax.set_title(f"Samples per speaker ({shown} speakers)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def input_mix(rates: Counter, channels: Counter) -> bytes:
    """Two bar charts: the inputs' sample rates and channel counts."""
    fig, (left, right) = plt.subplots(1, 2, figsize=WIDE, gridspec_kw={"width_ratios": [3, 1.4]})
    for ax, counter, label, fmt in ((left, rates, "input sample rate", lambda r: f"{r / 1000:g} kHz"), (right, channels, "input channels", lambda c: f"{c} ch")):
        ax.spines[["top", "right"]].set_visible(False)
        keys = sorted(counter)
        ax.bar([fmt(k) for k in keys], [counter[k] for k in keys], color=COLOR, width=0.6)
        if len(keys) < 3:
            ax.set_xlim(-1.0, len(keys))
        ax.set_title(label, fontsize=10)
        ax.set_ylabel("samples")
        ax.grid(axis="y", alpha=0.3)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(axis="x", labelrotation=30 if len(keys) > 4 else 0)
    return _png(fig)


def f0_histogram(voiced: np.ndarray, utterances: int) -> bytes:
    """Distribution of voiced F0 values (Hz) over the sampled utterances."""
    fig, ax = _axes()
    ax.hist(voiced, bins=np.linspace(max(0.0, float(voiced.min()) - 5), float(voiced.max()) + 5, 50), color=COLOR)
    ax.set_xlabel("F0 (Hz), voiced frames")
    ax.set_ylabel("frames")
    ax.set_title(f"F0 of {utterances} sampled utterances: median {np.median(voiced):.0f} Hz", fontsize=10)
    return _png(fig)


def f0_contours(contours: Sequence[tuple[str, np.ndarray]], frame_rate: float = 200.0) -> bytes:
    """A few F0 contours over time; unvoiced frames (0) are gaps."""
    fig, ax = _axes((7.2, 3.2), integer_y=False)
    for label, f0 in contours:
        t = np.arange(f0.size) / frame_rate
        ax.plot(t, np.where(f0 > 0, f0, np.nan), linewidth=1.2, label=label if len(label) <= 30 else label[:29] + "…")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("F0 (Hz)")
    ax.set_title("F0 contours (unvoiced frames left blank)", fontsize=10)
    ax.legend(frameon=False, fontsize=7, loc="upper right")
    return _png(fig)


def w2v_frames(frames: np.ndarray, durations: np.ndarray | None = None, frame_rate: float = 50.0) -> bytes:
    """w2v frame counts: histogram, and frames against duration when durations are known."""
    if durations is None or durations.size != frames.size:
        fig, ax = _axes()
        ax.hist(frames, bins=40, color=COLOR)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("w2v frames per sample")
        ax.set_ylabel("samples")
        ax.set_title("w2v frame counts", fontsize=10)
        return _png(fig)
    fig, (left, right) = plt.subplots(1, 2, figsize=WIDE)
    for ax in (left, right):
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(alpha=0.3)
    left.yaxis.set_major_locator(MaxNLocator(integer=True))
    left.hist(frames, bins=40, color=COLOR)
    left.set_xlabel("w2v frames per sample")
    left.set_ylabel("samples")
    left.set_title("w2v frame counts", fontsize=10)
    right.scatter(durations, frames, s=8, color=COLOR, alpha=0.7)
    top = float(max(durations.max(), 1e-3))
    right.plot([0, top], [0, top * frame_rate], color=COLOR_2, linewidth=1, label=f"{frame_rate:g} frames/s")
    right.set_xlabel("duration (s)")
    right.set_ylabel("frames")
    right.set_title("frames vs duration", fontsize=10)
    right.legend(frameon=False, fontsize=8)
    return _png(fig)


def spectrogram_dbfs(audio: np.ndarray, rate: int) -> tuple[np.ndarray, float]:
    """(freq, time) magnitude in dBFS, clipped to `SPECTROGRAM_DBFS`; and the hop in seconds.

    ~32 ms Hann windows at any rate; magnitudes are scaled by 2 / sum(window), so a full-scale sine's
    bin reads 0 dBFS whatever the rate and window length.
    """
    n_fft = 1 << int(np.ceil(np.log2(max(256, rate * 0.032))))
    hop = n_fft // 4
    audio = np.asarray(audio, dtype=np.float32)
    if audio.size < n_fft:
        audio = np.pad(audio, (0, n_fft - audio.size))
    window = np.hanning(n_fft).astype(np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(audio, n_fft)[::hop] * window
    magnitude = np.abs(np.fft.rfft(frames, axis=1)).T * (2.0 / float(window.sum()))
    floor, top = SPECTROGRAM_DBFS
    db = 20 * np.log10(np.maximum(magnitude, 10 ** (floor / 20)))
    return np.clip(db, floor, top), hop / rate


def spectrograms(panels: Sequence[tuple[str, np.ndarray, int]], max_hz: float | None = None) -> bytes:
    """Spectrograms side by side on one frequency axis and the fixed `SPECTROGRAM_DBFS` colour scale.

    Above a panel's Nyquist frequency there is nothing: it is drawn in the colour of silence.
    """
    top = max_hz or max(rate / 2 for _, _, rate in panels)
    computed = [(title, *spectrogram_dbfs(audio, rate), rate) for title, audio, rate in panels]
    vmin, vmax = SPECTROGRAM_DBFS
    cmap = plt.get_cmap("magma")
    size = (5.2, 2.2) if len(panels) == 1 else (5.2 * len(panels), 2.6)
    fig, axes = plt.subplots(1, len(panels), figsize=size, squeeze=False)
    for ax, (title, db, hop, rate) in zip(axes[0], computed, strict=True):
        ax.set_facecolor(cmap(0.0))
        ax.imshow(db, origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, extent=(0, db.shape[1] * hop, 0, rate / 2 / 1000))
        ax.set_ylim(0, top / 1000)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("time (s)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("kHz", fontsize=8)
    axes[0][-1].set_xlabel(f"time (s); colour {vmin:g} to {vmax:g} dBFS", fontsize=8)
    return _png(fig)


def score_histograms(values: dict[str, np.ndarray], labels: dict[str, str]) -> bytes:
    """One small histogram per quality score, with its median and the count of scored rows."""
    columns = list(values)
    per_row = 3
    rows = (len(columns) + per_row - 1) // per_row
    fig, axes = plt.subplots(rows, per_row, figsize=(WIDE[0], 2.2 * rows), squeeze=False)
    for ax in axes.flat[len(columns):]:
        ax.set_visible(False)
    for ax, column in zip(axes.flat, columns, strict=False):
        data = values[column]
        ax.spines[["top", "right"]].set_visible(False)
        ax.hist(data, bins=30, color=COLOR, alpha=0.85)
        ax.axvline(float(np.median(data)), color=COLOR_2, linewidth=1.2)
        ax.set_title(f"{labels.get(column, column)}\nmedian {np.median(data):.3g}, {data.size} rows", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return _png(fig)
