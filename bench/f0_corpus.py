"""Synthetic speech corpus for F0 parity checks: espeak-ng voices, resampled to 16 kHz, with noise and pauses.

Shared by bench/bench_f0_parity.py, bench/bench_f0_speed.py and tests/hierspeech/test_f0_fast.py.
Every clip is deterministic (fixed texts, voices and noise seeds). Needs the espeak-ng binary.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SR = 16000

TEXTS = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "A rainbow is a division of white light into many beautiful colors.",
    "Wie spät ist es, fragte der alte Mann, bevor er langsam nach Hause ging.",
    "Le soleil brillait sur la mer quand nous sommes arrivés au village.",
    "She sells sea shells by the sea shore, and the shells she sells are surely seashells.",
    "We were away a year ago, when our yellow yacht was lying idle in the harbour.",
    "Numbers like three hundred and forty two are read aloud very differently.",
]

# (espeak voice, pitch 0-99, speed wpm): men, women, low and high, slow and fast
VOICES = [
    ("en-us+m3", 20, 150),
    ("en-us+f3", 70, 170),
    ("en-gb-x-rp+m1", 35, 130),
    ("de+f2", 80, 160),
    ("fr+m2", 45, 190),
    ("en-gb-x-rp+f4", 55, 140),
    ("en-us+m7", 30, 200),
    ("en-us+f1", 60, 120),
]

# (name, noise colour or None, SNR dB)
CONDITIONS = [
    ("clean", None, None),
    ("white30", "white", 30.0),
    ("white20", "white", 20.0),
    ("white10", "white", 10.0),
    ("white5", "white", 5.0),
    ("pink30", "pink", 30.0),
    ("pink20", "pink", 20.0),
    ("pink10", "pink", 10.0),
    ("pink5", "pink", 5.0),
]


@dataclass(frozen=True)
class Clip:
    name: str
    wav: np.ndarray  # (L,) float32 at 16 kHz, as a wav file read with soundfile would give


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(text: str, voice: str, pitch: int, speed: int) -> np.ndarray:
    """espeak-ng speech resampled to 16 kHz (soxr): (L,) float64."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(path), text],
            check=True, capture_output=True,
        )  # fmt: skip
        audio, sr = sf.read(path, dtype="float64")
    return soxr.resample(audio, sr, SR)


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.shape[0], dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spec / np.sqrt(f), n)


def add_noise(x: np.ndarray, colour: str, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """x plus white/pink noise scaled to ``snr_db`` relative to the power of the non-silent part of x."""
    noise = rng.standard_normal(x.shape[0]) if colour == "white" else _pink(x.shape[0], rng)
    active = np.abs(x) > 1e-4
    p_sig = np.mean(x[active] ** 2) if active.any() else 1e-6
    noise *= np.sqrt(p_sig / (10 ** (snr_db / 10)) / np.mean(noise**2))
    return x + noise


def with_pauses(speech: np.ndarray, index: int, rng: np.random.Generator) -> np.ndarray:
    """Speech framed by silence; every other clip also gets a non-speech segment (hum, clicks or a breath-like
    noise burst) in the middle of a pause."""
    lead = np.zeros(int(SR * (0.2 + 0.1 * (index % 4))))
    tail = np.zeros(int(SR * (0.3 + 0.05 * (index % 3))))
    parts = [lead, speech]
    if index % 2 == 0:
        t = np.arange(int(SR * 0.4)) / SR
        kind = (index // 2) % 3
        if kind == 0:
            seg = 0.05 * np.sin(2 * np.pi * 50 * t) + 0.02 * np.sin(2 * np.pi * 150 * t)
        elif kind == 1:
            seg = np.zeros_like(t)
            seg[:: SR // 25] = 0.3
        else:
            seg = 0.03 * rng.standard_normal(t.shape[0]) * np.hanning(t.shape[0])
        parts += [np.zeros(int(SR * 0.15)), seg, np.zeros(int(SR * 0.15))]
    parts.append(tail)
    return np.concatenate(parts)


def make_corpus(n_clips: int = len(TEXTS), conditions: list[tuple] | None = None) -> list[Clip]:
    """Clips named '<condition>/<index>-<voice>', float32 like a 16-bit-free wav read by soundfile."""
    conditions = CONDITIONS if conditions is None else conditions
    clips = []
    for i in range(n_clips):
        voice, pitch, speed = VOICES[i % len(VOICES)]
        rng = np.random.default_rng(1000 + i)
        base = with_pauses(speak(TEXTS[i % len(TEXTS)], voice, pitch, speed), i, rng)
        base *= 0.5 / max(np.abs(base).max(), 1e-9)
        for cname, colour, snr in conditions:
            x = (
                base
                if colour is None
                else add_noise(base, colour, snr, np.random.default_rng(zlib.crc32(f"{i}/{cname}".encode())))
            )
            x = np.clip(x, -1.0, 1.0).astype(np.float32)
            clips.append(Clip(f"{cname}/{i}-{voice}", x))
    return clips


def product_padding(wav: np.ndarray) -> np.ndarray:
    """The product's YAAPT input: zeros at the end to the next multiple of 1280 (a full 1280 when already a
    multiple), then 160 zeros on both sides, as float64."""
    n = wav.shape[0]
    y = np.pad(wav.astype(np.float64), (0, (n // 1280 + 1) * 1280 - n))
    return np.pad(y, (160, 160))
