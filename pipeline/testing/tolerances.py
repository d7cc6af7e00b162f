"""The stated numeric tolerances of the model stages' outputs: batched vs alone, CUDA vs CPU.

One source for the tests (`tests/pipeline/stages/test_model_stage_batches.py`, the `gpu` tests in
`tests/gpu/`), the device check's table (`bench/device_table.py`) and the docs. Each entry
says what is compared, the largest absolute difference allowed, in which unit, and why a
difference exists at all.

Batch vs alone (CPU): the models batch exactly (masks, per-item windows); what remains is float
rounding, because a padded or packed batch sums in another order. CUDA vs CPU: other kernels
(cuDNN, cuBLAS, SDPA) in float32, with TF32 off (the gpu tests switch it off, see
docs/benchmarks.md). The CUDA bounds were set before any GPU run, from the CPU batch results and
the float32 rounding of the kernels involved, not measured: the device check prints the measured
maxima beside them, so a first GPU run either confirms them or says by how much they are off.
"""

from __future__ import annotations

from dataclasses import dataclass

INT16_LSB = 1.0 / 32768.0


@dataclass(frozen=True)
class Tolerance:
    """Largest allowed |a - b| of `quantity`, in `unit` ("abs": the values' own unit; "int16 LSB")."""

    quantity: str
    max_abs: float
    unit: str
    why: str

    def describe(self) -> str:
        bound = f"{self.max_abs:g} int16 LSB" if self.unit == "int16 LSB" else f"{self.max_abs:.0e} abs"
        return f"{self.quantity} <= {bound}"


BATCH_VS_ALONE: dict[str, Tolerance] = {
    "w2v": Tolerance("w2v.npy features (float32)", 1e-4, "abs", "padded/packed batches sum in another order"),
    "denoise": Tolerance("denoised.flac samples", 1, "int16 LSB", "batched MP-SENet equals solo to 1e-5 before 16-bit rounding"),
    "vc": Tolerance("generated waveform (before normalisation)", 1e-4, "abs", "padded w2v, prompt and vocoder batches"),
    "tts": Tolerance("generated waveform (before normalisation)", 1e-4, "abs", "padded text, prompt and vocoder batches"),
    "speechsr": Tolerance("SpeechSR output samples", 1e-4, "abs", "windows of several items run as one batch"),
}

CUDA_VS_CPU: dict[str, Tolerance] = {
    "w2v": Tolerance("w2v.npy features (float32)", 2e-3, "abs", "cuDNN convs, SDPA attention vs the CPU packed path"),
    "denoise": Tolerance("denoised.flac samples", 8, "int16 LSB", "cuDNN 2-D convs, SDPA, cuFFT STFT"),
    "vc": Tolerance("generated waveform (before normalisation)", 2e-3, "abs", "w2v, synthesizer and vocoder kernels"),
    "tts": Tolerance("generated waveform (before normalisation)", 2e-3, "abs", "TTV, synthesizer and vocoder kernels"),
    "speechsr": Tolerance("SpeechSR output samples", 1e-3, "abs", "cuDNN 1-D convs and the anti-aliased activations"),
}

SCORERS_CUDA_VS_CPU: dict[str, Tolerance] = {
    "speaker_sim": Tolerance("speaker similarity (cosine of GE2E embeddings)", 1e-3, "abs", "cuDNN LSTM vs the CPU LSTM, float32"),
}
"""The quality scorers a GPU helps, CUDA against CPU (tests/gpu/test_score_cuda.py); the score
stage does not batch across rows, so there is no batch-vs-alone entry for them."""


def max_abs_diff(a, b, unit: str) -> float:
    """max |a - b| of two equal-shape arrays in `unit` (int16 LSB: a and b are floats in [-1, 1])."""
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    return diff / INT16_LSB if unit == "int16 LSB" else diff
