"""The shortest 16 kHz audio each feature and model input takes, derived from their configs, and its check.

Found by running every front end on growing inputs (tests/pipeline/stages/test_min_length.py runs each at
its minimum and one sample below it):

- mel (extract's ``mel``; the synthesizer's prompt): a centred STFT reflect-pads ``n_fft // 2`` = 640
  samples on each side, and a reflection needs more samples than it pads: >= 641 samples (40 ms).
- w2v, F0, denoise (extract) and SpeechSR (upsample): the audio is zero-padded first (to a multiple
  of 1280, of 1600 for the denoiser) or the model takes any length: >= 1 sample.
- F0 of a VC prompt (YAAPT without the end padding): >= 241 samples; a prompt also needs its mel, so
  a prompt needs >= 641 samples.

Without these checks a 10 ms clip fails deep inside torch ("Padding size should be less than the
corresponding input dimension"); with them the error row says what is too short and the minimum.
"""

from __future__ import annotations

from dataclasses import dataclass

from hierspeech.mel_config import MelConfig

SAMPLE_RATE = 16000
MEL_MIN_SAMPLES = MelConfig().n_fft // 2 + 1
YAAPT_UNPADDED_MIN_SAMPLES = 241  # pYAAPT's frames need the 160-sample edges plus 241 samples


@dataclass(frozen=True)
class MinLength:
    """At least `samples` samples at 16 kHz, because of `reason` (names the feature and why)."""

    samples: int
    reason: str

    @property
    def seconds(self) -> float:
        return self.samples / SAMPLE_RATE

    def problem(self, num_samples: int, what: str = "audio") -> str | None:
        """None when `num_samples` is enough, else a one-line message with the length and the minimum."""
        if num_samples >= self.samples:
            return None
        return (
            f"{what} is too short: {num_samples} samples ({num_samples / SAMPLE_RATE * 1000:.1f} ms at 16 kHz); "
            f"{self.reason} needs at least {self.samples} samples ({self.seconds * 1000:.1f} ms)"
        )


ANY = MinLength(1, "every job")
MEL = MinLength(MEL_MIN_SAMPLES, f"the mel feature (centred {MelConfig().n_fft}-point STFT, reflect-padded {MelConfig().n_fft // 2} samples each side)")
EXTRACT_FEATURES: dict[str, MinLength] = {
    "w2v": ANY,  # zero-padded to a multiple of 1280 first
    "f0": ANY,  # zero-padded to a multiple of 1280 first
    "tokens": ANY,  # text only; the stored audio still needs a sample
    "denoise": ANY,  # zero-padded to a multiple of 1600 first
    "mel": MEL,
}
PROMPT = MinLength(
    max(MEL_MIN_SAMPLES, YAAPT_UNPADDED_MIN_SAMPLES),
    f"a voice prompt (its mel: centred {MelConfig().n_fft}-point STFT; its F0: YAAPT without end padding)",
)


def for_extract(features: tuple[str, ...] | list[str]) -> MinLength:
    """The strictest minimum among the extract `features` (the one the error row names)."""
    return max((EXTRACT_FEATURES[f] for f in features), key=lambda m: m.samples, default=ANY)
