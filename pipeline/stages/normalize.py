"""Upsample's level: the model output scaled to the source's peak, to upstream's 0.999, or left as it is."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from pipeline.engine.item import Item
from pipeline.engine.stage import Resources, Stage

NormalizeMode = Literal["source", "peak", "none"]
NORMALIZE_MODES: tuple[str, ...] = ("source", "peak", "none")
DEFAULT_NORMALIZE: NormalizeMode = "source"
PEAK_TARGET = 0.999  # upstream's `/ max * 0.999`
SILENCE_PEAK = 1e-3  # -60 dBFS: below this a source is treated as silent


# -- level ----------------------------------------------------------------------------------------
def normalize_output(output: np.ndarray, source_peak: float, mode: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Scale the model output (T_out,) by `mode`; returns the samples and what was done.

    - ``source``: output peak = the source's peak (capped at 0.999), so levels across a corpus stay.
    - ``peak``: output peak = 0.999, as upstream's ``/ max * 0.999``.
    - ``none``: the raw model output (it is within (-1, 1): the model ends in tanh).
    A silent source (peak below -60 dBFS) gives digital silence in ``source`` and ``peak`` modes
    instead of amplifying the model's near-zero output to full scale.
    """
    if mode not in NORMALIZE_MODES:
        raise ValueError(f"unknown normalization {mode!r}; use one of {NORMALIZE_MODES}")
    model_peak = float(np.max(np.abs(output))) if output.size else 0.0
    silent = source_peak < SILENCE_PEAK
    if mode == "none":
        gain = 1.0
    elif silent or model_peak == 0.0:
        gain = 0.0 if silent else 1.0
    else:
        target = PEAK_TARGET if mode == "peak" else min(source_peak, PEAK_TARGET)
        gain = target / model_peak
    scaled = output if gain == 1.0 else (output * np.float32(gain)).astype(np.float32)
    info = {
        "mode": mode,
        "gain": gain,
        "model_peak": model_peak,
        "source_peak": source_peak,
        "peak": model_peak * gain,
        "silent_source": silent,
    }
    return scaled, info


class NormalizeStage(Stage):
    """Level of the model output (see `normalize_output`); records the gain in meta and index."""

    name = "normalize"
    batch_size = 8
    inputs = ("audio", "source_peak")
    outputs = ("audio",)

    def __init__(self, mode: str = DEFAULT_NORMALIZE, resources: Resources | None = None):
        super().__init__(resources)
        if mode not in NORMALIZE_MODES:
            raise ValueError(f"unknown normalization {mode!r}; use one of {NORMALIZE_MODES}")
        self.mode = mode

    def process_item(self, item: Item) -> None:
        samples, info = normalize_output(item.data["audio"], item.data["source_peak"], self.mode)
        item.data["audio"] = samples
        item.meta["normalization"] = info
        item.index.update({"normalize": self.mode, "gain": info["gain"], "peak": info["peak"]})

