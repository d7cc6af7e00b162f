"""Extract's model stage: w2v content features (`w2v.npy`) and the MP-SENet denoised audio (`denoised.flac`)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from hierspeech.defaults import DEFAULT_MODEL as DEFAULT_W2V_MODEL
from hierspeech.defaults import FEATURE_LAYER, SAMPLE_RATE
from hierspeech.defaults import PAD_MULTIPLE as DENOISE_PAD_MULTIPLE
from hierspeech.denoiser import DEFAULT_CHUNK_SECONDS
from pipeline.engine.item import Item
from pipeline.engine.stage import Resources, Stage
from pipeline.io.npy import npy_bytes
from pipeline.stages.model_batching import (
    W2V_CPU_BATCH_ITEMS,
    W2V_SHORT_CLIP_SECONDS,
    call_rows,
    denoise_windows,
    longest_first,
    planned_device,
    ray_batch_rows,
)


@dataclass(frozen=True)
class W2vOptions:
    model: str = DEFAULT_W2V_MODEL
    layer: int = FEATURE_LAYER
    dtype: str = "float16"
    batch_seconds: float = 120.0  # padded audio per forward
    max_batch_size: int = 0  # items per forward; 0: W2V_CPU_BATCH_ITEMS on CPU, no cap on CUDA (batch_seconds bounds it)
    backend: str = "auto"


class ModelFeaturesStage(Stage):
    """The model stage: w2v content features and/or the MP-SENet denoised audio, batched.

    Models load once per actor. w2v items are grouped by length within a Ray batch (at most
    `batch_seconds` of padded audio per forward, and on CPU at most W2V_CPU_BATCH_ITEMS items);
    denoising runs `denoise_batch_items` rows per call (0: 1 on CPU, 8 on CUDA), sorted by length,
    long inputs in windows (several per call on CUDA). The Ray batch (`batch_size`) is sized to fill
    those calls. Both write to their items only once the whole call succeeded, so a batch that
    raises is retried in halves on unchanged input.
    """

    name = "model_features"
    stateful = True
    inputs = ("audio",)
    MIN_RAY_BATCH = 16
    """Rows per Ray batch at least (the CPU default's: one w2v forward of W2V_CPU_BATCH_ITEMS)."""

    def __init__(
        self,
        *,
        w2v: W2vOptions | None = W2vOptions(),
        denoiser_ckpt: str | None = None,
        denoise_chunk_seconds: float | None = DEFAULT_CHUNK_SECONDS,
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

    @property
    def batch_size(self) -> int:
        """Rows per Ray batch: enough for a full w2v forward (on CUDA `batch_seconds` of clips down to
        W2V_SHORT_CLIP_SECONDS) and CALLS_PER_RAY_BATCH denoiser calls, at least MIN_RAY_BATCH."""
        device = planned_device(self.resources)
        rows = [self.MIN_RAY_BATCH]
        if self.w2v is not None:
            rows.append(self.w2v.max_batch_size)
            if device == "cuda" and not self.w2v.max_batch_size:
                rows.append(math.ceil(self.w2v.batch_seconds / W2V_SHORT_CLIP_SECONDS))
        if self.denoiser_ckpt is not None:
            rows.append(ray_batch_rows(call_rows(self.denoise_batch_items, device), 0))
        return max(rows)

    @property
    def input_rows_per_block(self) -> int:
        """A block per Ray batch, so several model actors share the input."""
        return self.batch_size

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
            live = longest_first([item for item in items if not item.failed], lambda item: len(item.data["audio"]))
            size = call_rows(self.denoise_batch_items, self.device)
            for at in range(0, len(live), size):
                self.process_batch_isolating(live[at : at + size], self._denoise)

    def _extract_w2v(self, items: list[Item]) -> None:
        import torch

        started = time.perf_counter()
        dtype = getattr(torch, self.w2v.dtype)
        feats = self._w2v_model.extract(
            [item.data["audio"] for item in items],
            max_batch_size=self.w2v.max_batch_size or (W2V_CPU_BATCH_ITEMS if self.device == "cpu" else len(items)),
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
            item.timings["w2v"] = share

    def _denoise(self, items: list[Item]) -> None:
        """Denoise a batch: zero-padded to a multiple of 1600 each, run as one ragged batch (items never
        interact: each equals its solo run), cut back to each item's length."""
        import torch

        from hierspeech.denoiser import denoise
        from pipeline.io.audio import encode_flac

        started = time.perf_counter()
        lengths = [len(item.data["audio"]) for item in items]
        padded = [length + (-length % DENOISE_PAD_MULTIPLE) for length in lengths]
        batch = torch.zeros(len(items), max(padded))
        for row, item in enumerate(items):
            batch[row, : lengths[row]] = torch.from_numpy(item.data["audio"])
        out = denoise(batch.to(self.device), self._denoiser, padded, chunk_seconds=self.denoise_chunk_seconds,
                      chunk_batch_size=denoise_windows(self.device))
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
            item.timings["denoise"] = share

