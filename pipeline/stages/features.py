"""Stages of `hsp extract`: HierSpeech++ training features from 16 kHz audio.

CPU stages (stored audio, tokens, F0 + mel) and the model stage (w2v, denoise) are separate Ray
operators, so the GPU actors never wait while a CPU worker runs YAAPT. Every feature is
computed from the samples exactly as stored in the sample's FLAC (16-bit), i.e. what
upstream's data loader reads back from its wav files.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from hierspeech.f0 import DEFAULT_BACKEND as DEFAULT_F0_BACKEND
from pipeline.item import Item
from pipeline.stage import Resources, Stage
from pipeline.stages.encode import EncodeFlacStage

SAMPLE_RATE = 16000
DENOISE_PAD_MULTIPLE = 1600  # upstream pads prompts to a multiple of 1600 before MP-SENet


def npy_bytes(array: np.ndarray) -> bytes:
    """`array` serialised as a .npy file (what webdataset's decoders read)."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _timed(item: Item, stage: str, started: float) -> None:
    """Accumulate per-stage seconds in `item.data` (not written; benchmarks read it)."""
    item.data.setdefault("timings", {})[stage] = time.perf_counter() - started


class StoredAudioStage(EncodeFlacStage):
    """FLAC-encode `data['audio']` and replace it by the decoded FLAC samples.

    The features are then computed on exactly the stored samples (16-bit grid), so they match
    what any reader of the shard, or of upstream's exported wav files, gets.
    """

    name = "stored_audio"

    def process_item(self, item: Item) -> None:
        started = time.perf_counter()
        super().process_item(item)
        stored, rate = sf.read(io.BytesIO(item.members[self.member]), dtype="float32")
        if rate != SAMPLE_RATE:
            raise ValueError(f"extract needs {SAMPLE_RATE} Hz audio, the stored audio is {rate} Hz")
        item.data["audio"] = np.ascontiguousarray(stored)
        item.index.update({"num_samples": int(stored.shape[0]), "denoised": False})
        _timed(item, self.name, started)


class TokensStage(Stage):
    """Transcript -> token ids (english_cleaners2, 178-symbol table, blanks if `add_blank`).

    The espeak voice is the row's `language` column when present, else `default_language`.
    Empty or missing text, unknown characters and overlong texts fail the row with the reason.
    """

    name = "tokens"
    batch_size = 16

    def __init__(self, *, add_blank: bool = True, max_tokens: int | None = 1024, default_language: str = "en-us", resources: Resources | None = None):
        super().__init__(resources)
        self.add_blank = add_blank
        self.max_tokens = max_tokens
        self.default_language = default_language
        self._versions: dict | None = None

    def setup(self) -> None:
        from hierspeech.text import frontend_versions

        self._versions = frontend_versions()

    def process_item(self, item: Item) -> None:
        from hierspeech.text import BLANK_ID, text_to_tokens

        started = time.perf_counter()
        if self._versions is None:
            self.setup()
        text = item.fields.get("text")
        if text is None:
            raise ValueError("the row has no text (column 'text' is missing or null); tokens need a transcript")
        language = item.fields.get("language") or self.default_language
        tokens = np.asarray(text_to_tokens(text, language=language, add_blank=self.add_blank, max_tokens=self.max_tokens), dtype=np.int64)
        phonemes = (tokens.shape[0] - 1) // 2 if self.add_blank else tokens.shape[0]
        if self.add_blank and np.any(tokens[0::2] != BLANK_ID):
            raise AssertionError("blank interspersing broke: even positions must be blanks")
        item.members["tokens.npy"] = npy_bytes(tokens)
        item.meta["tokens"] = {
            "shape": list(tokens.shape),
            "dtype": "int64",
            "cleaners": "english_cleaners2",
            "add_blank": self.add_blank,
            "blank_id": BLANK_ID,
            "language": language,
            "max_tokens": self.max_tokens,
            "versions": self._versions,
        }
        item.index.update({"token_count": int(tokens.shape[0]), "phoneme_count": int(phonemes), "text": text, "language": language})
        _timed(item, self.name, started)


class F0MelStage(Stage):
    """YAAPT F0 (200 Hz) and the synthesizer's log-mel (50 Hz) of the stored audio.

    A stateful stage so its actor pool (`--cpu-actors`) is sized separately from the model
    actors; YAAPT is the slow step, one item per actor at a time.

    F0 failures (YAAPT raised, wrong frame count, no voiced frame at all) fail the row, or with
    ``f0_failure="zeros"`` store zeros and set ``f0.failed`` in the json and the index.
    """

    name = "f0_mel"
    stateful = True
    batch_size = 1
    input_rows_per_block = 1  # one item per actor call, spread over the whole pool

    def __init__(
        self,
        *,
        f0: bool = True,
        mel: bool = True,
        f0_max: float | None = None,
        f0_backend: str = DEFAULT_F0_BACKEND,
        f0_failure: str = "error",
        resources: Resources | None = None,
    ):
        super().__init__(resources)
        if f0_failure not in ("error", "zeros"):
            raise ValueError(f"f0_failure must be 'error' or 'zeros', got {f0_failure!r}")
        self.f0 = f0
        self.mel = mel
        self.f0_max = f0_max
        self.f0_backend = f0_backend
        self.f0_failure = f0_failure
        self._mel = None

    def setup(self) -> None:
        import torch

        from hierspeech.f0 import get_backend
        from hierspeech.mel import MelConfig, MelSpectrogram

        torch.set_num_threads(max(1, int(self.resources.num_cpus)))
        if self.f0:
            get_backend(self.f0_backend)  # an unavailable backend fails here, loudly, not per row
        if self.mel:
            self._mel = MelSpectrogram(MelConfig())

    def process_item(self, item: Item) -> None:
        audio = item.data["audio"]
        if self.f0:
            started = time.perf_counter()
            self._f0(item, audio)
            _timed(item, "f0", started)
        if self.mel:
            started = time.perf_counter()
            self._log_mel(item, audio)
            _timed(item, "mel", started)

    def _f0(self, item: Item, audio: np.ndarray) -> None:
        from hierspeech.f0 import YAAPT_PARAMS, F0ExtractionError, extract_f0, num_frames

        failure = None
        try:
            f0 = extract_f0(audio, f0_max=self.f0_max, backend=self.f0_backend)
            if not np.any(f0 > 0):
                raise F0ExtractionError(f"YAAPT found no voiced frame in {len(audio) / SAMPLE_RATE:.2f} s of audio (silence or noise?)")
        except F0ExtractionError as exc:
            if self.f0_failure == "error":
                raise
            failure = str(exc)
            f0 = np.zeros(num_frames(len(audio)), dtype=np.float32)
        item.members["f0.npy"] = npy_bytes(f0)
        params = dict(YAAPT_PARAMS)
        if self.f0_max is not None:
            params["f0_max"] = float(self.f0_max)
        item.meta["f0"] = {
            "shape": list(f0.shape),
            "dtype": "float32",
            "unit": "Hz, 0 = unvoiced",
            "frame_rate": 200,
            "backend": self.f0_backend,
            "yaapt": params,
            "padding": "zeros to the next multiple of 1280 (+1280 when already a multiple), 160 each side",
            "failed": failure is not None,
            "failure": failure,
        }
        item.index.update({"f0_frames": int(f0.shape[0]), "f0_voiced_frames": int(np.count_nonzero(f0 > 0)), "f0_failed": failure is not None})

    def _log_mel(self, item: Item, audio: np.ndarray) -> None:
        import torch

        with torch.inference_mode():
            mel = self._mel(torch.from_numpy(audio)).numpy().astype(np.float32)
        item.members["mel.npy"] = npy_bytes(mel)
        item.meta["mel"] = {"shape": list(mel.shape), "dtype": "float32", "log": "natural, log(mel + 1e-3)", **self._mel.config.to_dict()}
        item.index["mel_frames"] = int(mel.shape[-1])


@dataclass(frozen=True)
class W2vOptions:
    model: str = "facebook/mms-300m"
    layer: int = 7
    dtype: str = "float16"
    batch_seconds: float = 120.0
    max_batch_size: int = 16
    backend: str = "auto"


class ModelFeaturesStage(Stage):
    """The model stage: w2v content features and/or the MP-SENet denoised audio, batched.

    Models load once per actor. w2v items are grouped by length within a Ray batch (at most
    `batch_seconds` of padded audio per forward); denoising runs `denoise_batch_items` rows per
    call (0: 1 on CPU, 8 on CUDA), sorted by length. Both write to their items only once the whole
    call succeeded, so a batch that raises is retried in halves on unchanged input.
    """

    name = "model_features"
    stateful = True
    batch_size = 16
    input_rows_per_block = 16  # a block per batch, so several model actors share the input

    def __init__(
        self,
        *,
        w2v: W2vOptions | None = W2vOptions(),
        denoiser_ckpt: str | None = None,
        denoise_chunk_seconds: float | None = 4.0,
        denoise_batch_items: int = 0,
        resources: Resources | None = None,
    ):
        super().__init__(resources)
        self.w2v = w2v
        self.denoiser_ckpt = denoiser_ckpt
        self.denoise_chunk_seconds = denoise_chunk_seconds
        self.denoise_batch_items = denoise_batch_items
        self._w2v_model = None
        self._denoiser = None

    def setup(self) -> None:
        import torch

        if self.device == "cpu":
            torch.set_num_threads(max(1, int(self.resources.num_cpus)))
        if self.w2v is not None:
            import transformers

            from hierspeech.w2v import Wav2Vec2Features

            model = Wav2Vec2Features.from_pretrained(self.w2v.model, layer=self.w2v.layer)
            self._w2v_model = model.to(self.device)
            self._w2v_meta = {
                **model.backend_provenance(self.w2v.backend),
                "model": self.w2v.model,
                "layer": self.w2v.layer,
                "hidden_size": model.hidden_size,
                "storage_dtype": self.w2v.dtype,
                "compute_dtype": "float32",
                "transformers": transformers.__version__,
                "padding": "zeros to the next multiple of 1280 (+1280 when already a multiple), reflect 40 each side",
            }
        if self.denoiser_ckpt is not None:
            from hierspeech.checkpoint import sha256_file
            from hierspeech.denoiser import Denoiser

            self._denoiser = Denoiser.from_pretrained(self.denoiser_ckpt).to(self.device)
            self._denoise_meta = {
                "model": "MP-SENet",
                "checkpoint": str(self.denoiser_ckpt),
                "sha256": sha256_file(self.denoiser_ckpt),
                "chunk_seconds": self.denoise_chunk_seconds,
                "pad_multiple": DENOISE_PAD_MULTIPLE,
            }

    def process(self, items: list[Item]) -> None:
        if self._w2v_model is not None:
            self.process_batch_isolating(items, self._extract_w2v)
        if self._denoiser is not None:
            live = sorted((item for item in items if not item.failed), key=lambda item: len(item.data["audio"]))
            size = self.denoise_batch_items or (8 if self.device == "cuda" else 1)
            for at in range(0, len(live), size):
                self.process_batch_isolating(live[at : at + size], self._denoise)

    def _extract_w2v(self, items: list[Item]) -> None:
        import torch

        started = time.perf_counter()
        dtype = getattr(torch, self.w2v.dtype)
        feats = self._w2v_model.extract(
            [item.data["audio"] for item in items],
            max_batch_size=self.w2v.max_batch_size,
            max_batch_samples=int(self.w2v.batch_seconds * SAMPLE_RATE),
            dtype=dtype,
            backend=self.w2v.backend,
        )
        arrays = [feat.numpy() for feat in feats]
        for item, array in zip(items, arrays, strict=True):
            if not np.all(np.isfinite(array)):
                raise FloatingPointError(f"w2v features of {item.id!r} are not finite (overflow in {self.w2v.dtype}?)")
        members = [npy_bytes(array) for array in arrays]
        share = (time.perf_counter() - started) / max(1, len(items))
        for item, array, member in zip(items, arrays, members, strict=True):  # the whole batch succeeded
            item.members["w2v.npy"] = member
            item.meta["w2v"] = {"shape": list(array.shape), "dtype": self.w2v.dtype, "frame_rate": 50, **self._w2v_meta}
            item.index.update({"w2v_frames": int(array.shape[1]), "w2v_dim": int(array.shape[0])})
            item.data.setdefault("timings", {})["w2v"] = share

    def _denoise(self, items: list[Item]) -> None:
        """Denoise a batch: zero-padded to a multiple of 1600 each, run as one ragged batch (items never
        interact: each equals its solo run), cut back to each item's length."""
        import torch

        from hierspeech.denoiser import denoise
        from pipeline.audio import encode_flac

        started = time.perf_counter()
        lengths = [len(item.data["audio"]) for item in items]
        padded = [length + (-length % DENOISE_PAD_MULTIPLE) for length in lengths]
        batch = torch.zeros(len(items), max(padded))
        for row, item in enumerate(items):
            batch[row, : lengths[row]] = torch.from_numpy(item.data["audio"])
        out = denoise(batch.to(self.device), self._denoiser, padded, chunk_seconds=self.denoise_chunk_seconds)
        cleaned = []
        for row, (item, length) in enumerate(zip(items, lengths, strict=True)):
            clean = out[row, :length]
            if clean.shape[0] < length:
                clean = torch.nn.functional.pad(clean, (0, length - clean.shape[0]))
            clean = clean.float().cpu().numpy()
            if not np.all(np.isfinite(clean)):
                raise FloatingPointError(f"denoised audio of {item.id!r} is not finite")
            cleaned.append(encode_flac(clean, SAMPLE_RATE, 16))
        share = (time.perf_counter() - started) / len(items)
        for item, length, member in zip(items, lengths, cleaned, strict=True):  # the whole batch succeeded
            item.members["denoised.flac"] = member
            item.index["denoised"] = True
            item.meta["denoised"] = {"member": "denoised.flac", "sample_rate": SAMPLE_RATE, "num_samples": int(length), **self._denoise_meta}
            item.data.setdefault("timings", {})["denoise"] = share
