"""F0 front-end: YAAPT pitch at 200 Hz on 16 kHz audio, padded as the checkpoints were trained.

Padding: the end padding of every feature (`hierspeech.framing.padded_length`: zero-pad the END to the
next multiple of 1280 samples, a full 1280 more when the length already is a multiple), then 160 zeros
on both sides, float64.
The result has ``padded_length / 80`` frames, four per w2v/mel frame (hop 320).

Backends (all take the padded float64 signal and return YAAPT's ``samp_values``):
``"amfm"`` (amfm_decompy, the reference) and ``"fast"`` (:mod:`hierspeech.f0.fast`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from hierspeech.framing import HOP_MULTIPLE, padded_length

SAMPLE_RATE = 16000
F0_HOP = 80
"""Samples per F0 frame (5 ms at 16 kHz)."""
EDGE_PAD = 160
"""Zeros added on both sides: half of YAAPT's 20 ms frame."""
VC_F0_MAX = 1100.0
"""``f0_max`` used on the voice-conversion path."""

YAAPT_PARAMS: dict[str, float] = {
    "frame_length": 20.0,
    "frame_space": 5.0,
    "nccf_thresh1": 0.25,
    "tda_frame_length": 25.0,
}
"""YAAPT parameters of the released checkpoints' F0 features."""

DEFAULT_BACKEND = "fast"
"""The F0 backend of every command that computes F0 (`extract`, `synthesize vc`, `augment`), so training
features and synthesis inputs come from one implementation. Our numba YAAPT: ~11x amfm_decompy per core,
within the parity thresholds (voicing >= 99.5 % of frames, |dF0| <= 1 Hz on >= 99 %, median relative
error <= 0.1 %) on the kit and a noisy multi-voice espeak corpus (bench/bench_f0_parity.py, docs/f0.md).
"amfm" is the reference implementation the goldens were made with."""

BACKEND_HELP = (
    f"{DEFAULT_BACKEND} (the default of every command, so training features and synthesis inputs get the "
    "same F0): our YAAPT, ~11x amfm per core, within pYAAPT's parity thresholds (docs/f0.md); amfm: "
    "amfm_decompy's pYAAPT, the reference the goldens were made with (use it to reproduce them)."
)
"""The `--f0-backend` help of every command: one rule, said once."""

_BACKENDS: dict[str, tuple[str, str]] = {
    "amfm": ("hierspeech.f0.amfm", "yaapt_amfm"),
    "fast": ("hierspeech.f0.fast", "yaapt_fast"),
}


class F0ExtractionError(RuntimeError):
    """YAAPT failed or returned an unusable result for this signal (never replaced by zeros)."""


class F0BackendUnavailableError(ImportError):
    """The requested F0 backend is unknown or its module cannot be imported."""


def num_frames(n_samples: int, *, pad_end: bool = True) -> int:
    """Number of F0 frames for `n_samples` of audio: ``padded_length // 80``."""
    return padded_length(n_samples, pad_end=pad_end) // F0_HOP


def pad_for_yaapt(wav_16k: np.ndarray, *, pad_end: bool = True) -> np.ndarray:
    """(T,) audio -> (padded_length + 320,) float64: end padding to 1280 (if `pad_end`), 160 each side."""
    wav = np.asarray(wav_16k)
    n = wav.shape[-1]
    end = padded_length(n, pad_end=pad_end) - n
    return np.pad(wav.astype(np.float64), (EDGE_PAD, EDGE_PAD + end))


def get_backend(name: str) -> Callable[..., np.ndarray]:
    """The YAAPT function of backend `name`, imported on first use."""
    try:
        module_name, attribute = _BACKENDS[name]
    except KeyError:
        raise F0BackendUnavailableError(
            f"unknown F0 backend {name!r}; choose one of {sorted(_BACKENDS)}"
        ) from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise F0BackendUnavailableError(
            f"F0 backend {name!r} is unavailable: cannot import {module_name} ({e})"
        ) from e
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise F0BackendUnavailableError(
            f"F0 backend {name!r}: {module_name} has no function {attribute}"
        ) from None


def yaapt_on_padded(signal: np.ndarray, backend: str = DEFAULT_BACKEND, **params: Any) -> np.ndarray:
    """Run backend `backend` on an already padded signal.

    Args:
        signal: (T,) float64 from :func:`pad_for_yaapt`.
        params: YAAPT parameters overriding :data:`YAAPT_PARAMS` (e.g. ``f0_max``).
    Returns:
        (N,) float64 F0 in Hz, 0 = unvoiced.
    Raises:
        F0ExtractionError: the backend raised, or returned non-finite or negative values.
    """
    function = get_backend(backend)
    options = {**YAAPT_PARAMS, **params}
    try:
        f0 = np.asarray(function(signal, SAMPLE_RATE, **options), dtype=np.float64)
    except Exception as e:
        raise F0ExtractionError(
            f"YAAPT ({backend}) failed on a signal of {signal.shape[-1]} samples: {type(e).__name__}: {e}"
        ) from e
    if f0.ndim != 1 or not np.all(np.isfinite(f0)) or np.any(f0 < 0):
        raise F0ExtractionError(
            f"YAAPT ({backend}) returned an invalid F0 track (shape {f0.shape}, "
            f"finite={bool(np.all(np.isfinite(f0)))}, min={f0.min() if f0.size else None})"
        )
    return f0


def extract_f0(
    wav_16k: np.ndarray,
    *,
    f0_max: float | None = None,
    backend: str = DEFAULT_BACKEND,
    pad_end: bool = True,
    dtype: type[np.floating] = np.float32,
) -> np.ndarray:
    """F0 of 16 kHz mono audio, in Hz (0 = unvoiced), 200 frames per second.

    Args:
        wav_16k: (T,) or (1, T) samples in [-1, 1].
        f0_max: YAAPT's upper F0 bound; None keeps 400 Hz (training features), the VC path uses 1100.
        backend: "amfm" (reference) or "fast".
        pad_end: apply the 1280-multiple end padding (True for every model input; the VC
            target statistics are taken without it).
        dtype: output dtype; float32 as stored for training, float64 for the VC statistics.
    Returns:
        (N,) with N = ``num_frames(T, pad_end=pad_end)``.
    Raises:
        F0ExtractionError: YAAPT failed, or its frame count is not N.
    """
    wav = np.asarray(wav_16k)
    if wav.ndim == 2 and wav.shape[0] == 1:
        wav = wav[0]
    if wav.ndim != 1:
        raise ValueError(f"extract_f0 expects mono audio of shape (T,) or (1, T), got {wav.shape}")
    if wav.shape[0] == 0:
        raise F0ExtractionError("extract_f0 got an empty signal")
    params = {} if f0_max is None else {"f0_max": float(f0_max)}
    f0 = yaapt_on_padded(pad_for_yaapt(wav, pad_end=pad_end), backend, **params)
    expected = num_frames(wav.shape[0], pad_end=pad_end)
    if pad_end and f0.shape[0] != expected:
        raise F0ExtractionError(
            f"YAAPT ({backend}) gave {f0.shape[0]} frames for {wav.shape[0]} samples, expected {expected}"
        )
    return f0.astype(dtype)


def normalize_f0_to_target(source_f0: np.ndarray, target_f0: np.ndarray) -> np.ndarray:
    """Voice-conversion F0: the source contour moved to the target speaker's range, as log(f0 + 1).

    Voiced source frames are standardised (mean/std over voiced frames, ddof 0), rescaled to the
    target's voiced std and mean, clipped at 0; unvoiced frames stay 0. Statistics are computed
    in float64, the result is cast to float32 before the log.

    Args:
        source_f0: (N,) Hz, from ``extract_f0(source, f0_max=1100, dtype=np.float64)`` (padded).
        target_f0: (M,) Hz, from ``extract_f0(target, f0_max=1100, pad_end=False, dtype=np.float64)``.
    Returns:
        (N,) float32 log(f0 + 1).
    Raises:
        F0ExtractionError: the target has no voiced frame, or the source's voiced F0 is constant.
    """
    f0 = np.array(source_f0, dtype=np.float64)
    target = np.asarray(target_f0, dtype=np.float64)
    voiced = f0 != 0
    target_voiced = target[target != 0]
    if target_voiced.size == 0:
        raise F0ExtractionError("the target (prompt) audio has no voiced frame: its F0 range is undefined")
    if voiced.any():
        source_std = f0[voiced].std()
        if source_std == 0:
            raise F0ExtractionError(
                f"the source's voiced F0 is constant over {int(voiced.sum())} frame(s): cannot standardise it"
            )
        standardised = (f0[voiced] - f0[voiced].mean()) / source_std
        f0[voiced] = (standardised * target_voiced.std() + target_voiced.mean()).clip(min=0)
    import torch  # torch's float32 log, as upstream; imported here so `hsp --help` reads the constants without torch

    return torch.log(torch.from_numpy((f0 + 1).astype(np.float32))).numpy()


def vc_log_f0(source_16k: np.ndarray, target_16k: np.ndarray, *, backend: str = DEFAULT_BACKEND) -> np.ndarray:
    """The voice-conversion F0 input for source and target (prompt) audio: (N,) float32 log(f0 + 1)."""
    source = extract_f0(source_16k, f0_max=VC_F0_MAX, backend=backend, dtype=np.float64)
    target = extract_f0(target_16k, f0_max=VC_F0_MAX, backend=backend, pad_end=False, dtype=np.float64)
    return normalize_f0_to_target(source, target)


__all__ = [
    "BACKEND_HELP",
    "DEFAULT_BACKEND",
    "EDGE_PAD",
    "F0_HOP",
    "HOP_MULTIPLE",
    "SAMPLE_RATE",
    "VC_F0_MAX",
    "YAAPT_PARAMS",
    "F0BackendUnavailableError",
    "F0ExtractionError",
    "extract_f0",
    "get_backend",
    "normalize_f0_to_target",
    "num_frames",
    "pad_for_yaapt",
    "padded_length",
    "vc_log_f0",
    "yaapt_on_padded",
]
