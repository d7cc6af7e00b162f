"""What configures the synthesis stages: per-row defaults, input limits, quality gates, checkpoints, seeds.

Row kinds (``data['mode']``): "vc" (source `audio` + voice prompt `target_audio`) and "tts"
(`text` + voice prompt `prompt_audio`). The order of operations follows upstream's
inference_vc.py / inference.py; see docs/synthesize.md for every choice.

    SynthesisInputStage  (CPU tasks)       decode prompt (+ source), length checks, tokens, seed
    VcF0Stage            (CPU actor pool)  YAAPT F0 of source and prompt, source moved to the prompt's range
    SynthesisModelStage  (model actors)    prompt denoise + mel, w2v or TTV, synthesizer, SpeechSR
    SynthesisOutputStage (CPU tasks)       peak normalisation, int16, quality gates, FLAC, provenance
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from hierspeech.defaults import DEFAULT_MODEL as DEFAULT_W2V_MODEL
from hierspeech.defaults import FEATURE_LAYER


def derive_seed(base_seed: int, *parts: str) -> int:
    """A 31-bit seed from a base seed and strings (sha256): stable across runs, machines and row order."""
    digest = hashlib.sha256(":".join([str(base_seed), *parts]).encode("utf-8")).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF


@dataclass(frozen=True)
class SynthesisDefaults:
    """Job-wide values used where a row leaves a parameter null or absent."""

    noise_scale: float = 0.333  # VC rows
    noise_scale_ttv: float = 0.333
    noise_scale_vc: float = 0.333
    noise_scale_w: float = 1.0
    length_scale: float = 1.0
    denoise_ratio: float = 0.0
    output_sr: int = 16000
    seed: int = 0  # base of per-row seeds: derive_seed(seed, id)
    scale_norm: str = "max"  # "max" (0.999 peak) or "prompt" (peak of the prompt), as upstream


@dataclass(frozen=True)
class InputLimits:
    min_prompt_seconds: float = 1.0
    max_prompt_seconds: float = 30.0
    min_source_seconds: float = 0.25
    max_source_seconds: float = 60.0
    max_text_tokens: int = 200  # phoneme ids before blank interspersing
    language: str = "en-us"


@dataclass(frozen=True)
class GateLimits:
    """Quality gates on the raw generated waveform (before peak normalisation)."""

    min_rms_dbfs: float = -60.0
    max_clipped_fraction: float = 0.001  # share of samples with |x| >= 0.999
    min_duration_ratio: float = 0.5
    max_duration_ratio: float = 2.0


@dataclass(frozen=True)
class ModelPaths:
    """Checkpoints (None: not used). speechsr: output rate -> checkpoint."""

    synthesizer: str
    ttv: str | None = None
    denoiser: str | None = None
    speechsr: dict[int, str] = field(default_factory=dict)
    w2v_model: str = DEFAULT_W2V_MODEL
    w2v_layer: int = FEATURE_LAYER

