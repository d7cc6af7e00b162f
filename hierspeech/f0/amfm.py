"""YAAPT pitch tracking through the reference implementation, amfm_decompy's ``pYAAPT``."""

from __future__ import annotations

import numpy as np


def yaapt_amfm(
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
    """F0 in Hz per frame (0 = unvoiced), YAAPT's ``samp_values`` (no interpolation).

    Args:
        signal: (T,) float64, already padded by the caller.
    Returns:
        (N,) float64, one value every `frame_space` ms.
    """
    import amfm_decompy.basic_tools as basic
    import amfm_decompy.pYAAPT as pyaapt

    pitch = pyaapt.yaapt(
        basic.SignalObj(signal, sample_rate),
        frame_length=frame_length,
        frame_space=frame_space,
        nccf_thresh1=nccf_thresh1,
        tda_frame_length=tda_frame_length,
        f0_min=f0_min,
        f0_max=f0_max,
    )
    return np.asarray(pitch.samp_values, dtype=np.float64)
