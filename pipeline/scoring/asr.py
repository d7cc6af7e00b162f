"""WER and CER of an ASR model's transcript against the row's `text`, scored with jiwer.

The user brings the model: a transformers CTC model (Wav2Vec2ForCTC and its kin, with its
processor) or Whisper, as a Hub id or a local folder. ``HF_HUB_OFFLINE=1`` loads only what is
on disk. Both sides are normalised the same simple way before scoring (Unicode NFKC, lower
case, punctuation removed, whitespace collapsed), so "Hello, world." matches "HELLO WORLD";
numbers are not spelled out, so "20" against "twenty" counts as an error. Whisper hears at most
30 s at once: longer clips are transcribed in 30 s pieces and the pieces joined. Inside a batch
clips are sorted by length (less padding), and results are returned in the input order.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable, Sequence

import numpy as np

from pipeline.scoring.base import (
    ScoreInput,
    Scorer,
    ScoringError,
    ScoringInputError,
    at_rate,
    import_for,
    package_version,
)

RATE = 16000
WHISPER_WINDOW_SECONDS = 30


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE asks for local files only."""
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes", "on"}


def normalize_transcript(text: str) -> str:
    """NFKC, lower case, punctuation dropped (apostrophes too, on both sides alike), spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    return re.sub(r"\s+", " ", text).strip()


def error_rates(reference: str, hypothesis: str) -> dict[str, float]:
    """``{"wer", "cer"}`` of `hypothesis` against `reference`, both normalised first (jiwer)."""
    import jiwer

    ref, hyp = normalize_transcript(reference), normalize_transcript(hypothesis)
    if not ref:
        raise ScoringInputError(f"[wer] text {reference!r} is empty after normalisation: nothing to score against")
    return {"wer": float(jiwer.wer(ref, hyp)), "cer": float(jiwer.cer(ref, hyp))}


def ctc_frames(config, samples: int) -> int:
    """Output frames of a wav2vec2-family CTC model for `samples` of input (its conv arithmetic)."""
    frames = samples
    for kernel, stride in zip(config.conv_kernel, config.conv_stride, strict=True):
        frames = (frames - kernel) // stride + 1
    if getattr(config, "add_adapter", False):
        for _ in range(config.num_adapter_layers):
            frames = (frames + 2 - config.adapter_kernel_size) // config.adapter_stride + 1
    return max(0, frames)


class WerScorer(Scorer):
    """`wer` and `cer` of `model`'s transcript of each input against its `text`."""

    name = "wer"
    columns = ("wer", "cer")
    needs = frozenset({"text"})
    modules = ("jiwer",)
    gpu_helps = True

    def __init__(self, model: str, device: str | None = None, *, language: str | None = None) -> None:
        if not model:
            raise ScoringError("metric 'wer' needs an ASR model: a transformers CTC (Wav2Vec2ForCTC) or Whisper hub id or local folder")
        super().__init__(device)
        self.model_id = str(model)
        self.language = language  # Whisper only: None lets the model detect it
        self._transcribe: Callable[[list[np.ndarray]], list[str]] | None = None
        self._revision = "unknown"
        self._kind = "unknown"

    def version(self) -> str:
        return f"transformers {package_version('transformers')} {self._kind} {self.model_id}@{self._revision}, jiwer {package_version('jiwer')}"

    def _load(self) -> None:
        import_for(self.name, "jiwer")
        from transformers import AutoConfig

        offline = hub_offline()
        try:
            config = AutoConfig.from_pretrained(self.model_id, local_files_only=offline)
        except Exception as exc:  # OSError, HTTP errors, bad JSON: all mean "cannot use this model"
            where = " (HF_HUB_OFFLINE is set: only local folders and the Hub cache are looked at)" if offline else ""
            raise ScoringError(f"ASR model {self.model_id!r} cannot be loaded{where} ({type(exc).__name__}: {exc}); pass a hub id or a local folder with config.json") from exc
        self._revision = getattr(config, "_commit_hash", None) or ("local" if os.path.isdir(self.model_id) else "unknown")
        self._kind = config.model_type
        if config.model_type == "whisper":
            self._transcribe = self._load_whisper(offline)
        elif any(name.endswith("ForCTC") for name in (config.architectures or [])):
            self._transcribe = self._load_ctc(offline)
        else:
            raise ScoringError(f"ASR model {self.model_id!r} is a {config.model_type} model with architectures {config.architectures}; WER needs a CTC model (e.g. Wav2Vec2ForCTC) or Whisper")

    def _load_ctc(self, offline: bool) -> Callable[[list[np.ndarray]], list[str]]:
        import torch
        from transformers import AutoModelForCTC, AutoProcessor

        processor = AutoProcessor.from_pretrained(self.model_id, local_files_only=offline)
        model = AutoModelForCTC.from_pretrained(self.model_id, local_files_only=offline).eval().to(self.device)

        def transcribe(waves: list[np.ndarray]) -> list[str]:
            inputs = processor(waves, sampling_rate=RATE, return_tensors="pt", padding=True)
            with torch.inference_mode():
                kwargs = {"attention_mask": inputs["attention_mask"].to(self.device)} if "attention_mask" in inputs else {}
                ids = model(inputs["input_values"].to(self.device), **kwargs).logits.argmax(dim=-1).cpu()
            # frames past a clip's end only saw padding: decode each clip's own frames
            return processor.batch_decode([row[: ctc_frames(model.config, w.shape[0])] for row, w in zip(ids, waves, strict=True)])

        return transcribe

    def _load_whisper(self, offline: bool) -> Callable[[list[np.ndarray]], list[str]]:
        import torch
        from transformers import AutoProcessor, WhisperForConditionalGeneration

        processor = AutoProcessor.from_pretrained(self.model_id, local_files_only=offline)
        model = WhisperForConditionalGeneration.from_pretrained(self.model_id, local_files_only=offline).eval().to(self.device)
        window = WHISPER_WINDOW_SECONDS * RATE
        options = {"language": self.language, "task": "transcribe"} if self.language else {}

        def transcribe(waves: list[np.ndarray]) -> list[str]:
            pieces, owner = [], []
            for index, wave in enumerate(waves):
                for start in range(0, wave.shape[0], window):
                    pieces.append(wave[start : start + window])
                    owner.append(index)
            features = processor.feature_extractor(pieces, sampling_rate=RATE, return_tensors="pt").input_features
            with torch.inference_mode():
                tokens = model.generate(features.to(self.device), **options)
            texts = processor.batch_decode(tokens.cpu(), skip_special_tokens=True)
            joined = [""] * len(waves)
            for index, text in zip(owner, texts, strict=True):
                joined[index] = f"{joined[index]} {text}".strip()
            return joined

        return transcribe

    def transcribe(self, waves: Sequence[np.ndarray]) -> list[str]:
        """Transcripts of 16 kHz mono float32 clips, in order (sorted by length inside)."""
        self.load()
        order = sorted(range(len(waves)), key=lambda i: waves[i].shape[0])
        texts = self._transcribe([waves[i] for i in order])
        out = [""] * len(waves)
        for position, text in zip(order, texts, strict=True):
            out[position] = text
        return out

    def _score(self, batch: list[ScoreInput]) -> list[dict[str, float]]:
        hypotheses = self.transcribe([at_rate(s.audio, s.sample_rate, RATE) for s in batch])
        return [error_rates(s.text or "", h) for s, h in zip(batch, hypotheses, strict=True)]
