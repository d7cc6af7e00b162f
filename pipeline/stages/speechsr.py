"""Upsample's model stage: SpeechSR, loaded once per actor, exact windowed batches."""

from __future__ import annotations

import os

import numpy as np

from hierspeech.speechsr import INPUT_SAMPLING_RATE as MODEL_INPUT_RATE
from pipeline.engine.item import Item
from pipeline.engine.stage import Resources, Stage
from pipeline.stages.model_batching import (
    CUDA_SPEECHSR_SECONDS,
    SPEECHSR_CUDA_RAY_BATCH,
    planned_device,
    windows_for_seconds,
)

# Output audio per model call when none is given: on GPUs CUDA_SPEECHSR_SECONDS; on CPU one window per
# call is fastest (24 s at 48k: 1 window RTF 0.45 / 287 MiB, 29 windows RTF 0.83 / 1013 MiB, measured
# with torch 2.13 on one thread).


class SpeechSRStage(Stage):
    """Actor pool stage: the SpeechSR model loaded once per actor; exact windowed batches on `self.device`."""

    name = "speechsr"
    stateful = True
    inputs = ("audio", "sample_rate")
    outputs = ("audio", "sample_rate")
    CPU_RAY_BATCH = 8
    """Rows per Ray batch on CPU (one window per call there: more rows per batch buy nothing)."""

    @property
    def batch_size(self) -> int:
        """Rows per Ray batch: CPU_RAY_BATCH, or SPEECHSR_CUDA_RAY_BATCH for an actor on a GPU, whose
        calls of CUDA_SPEECHSR_SECONDS take equal-length windows of several rows."""
        return SPEECHSR_CUDA_RAY_BATCH if planned_device(self.resources) == "cuda" else self.CPU_RAY_BATCH

    def __init__(self, variant: str, *, checkpoint: str | None = None, expected_sha256: str | None = None,
                 batch_seconds: float | None = None, window: int | None = None,
                 resources: Resources | None = None):
        super().__init__(resources or Resources(num_cpus=1.0, num_gpus=1.0))
        self.variant = variant
        self.checkpoint = checkpoint
        self.expected_sha256 = expected_sha256
        self.batch_seconds = batch_seconds
        self.window = window

    def setup(self) -> None:
        import torch

        from hierspeech.checkpoint import sha256_file
        from hierspeech.speechsr import SpeechSR
        from hierspeech.speechsr_batching import DEFAULT_WINDOW
        from hierspeech.weights import WeightsError, resolve_speechsr_checkpoint

        # the driver's resolved file when this node sees it (shared storage), else this node's own lookup
        here = self.checkpoint if self.checkpoint and os.path.isfile(self.checkpoint) else None
        path = resolve_speechsr_checkpoint(self.variant, here)
        if self.expected_sha256 and sha256_file(path) != self.expected_sha256:
            raise WeightsError(f"{path} on this node is not the checkpoint the job started with "
                               f"(sha256 {self.expected_sha256}); give every node the same weights")
        if self.device == "cpu":
            torch.set_num_threads(max(1, round(self.resources.num_cpus)))
        self.model = SpeechSR.from_pretrained(path).to(self.device).fuse_weight_norm()
        self.window = self.window or DEFAULT_WINDOW
        if self.batch_seconds is None and self.device == "cpu":
            self.windows_per_call = 1
        else:
            self.windows_per_call = windows_for_seconds(self.batch_seconds or CUDA_SPEECHSR_SECONDS, self.model.sampling_rate, self.window)

    def process(self, items: list[Item]) -> None:
        self.process_batch_isolating(items, self._run)

    def _run(self, items: list[Item]) -> None:
        import torch

        from hierspeech.speechsr_batching import upsample_batch

        for item in items:
            if item.data["sample_rate"] != MODEL_INPUT_RATE:
                raise ValueError(f"SpeechSR needs {MODEL_INPUT_RATE} Hz input, got {item.data['sample_rate']}")
        waves = [torch.from_numpy(np.ascontiguousarray(item.data["audio"])).to(self.device) for item in items]
        outputs = upsample_batch(self.model, waves, window=self.window, batch_size=self.windows_per_call)
        results = []
        for item, wave, out in zip(items, waves, outputs, strict=True):
            samples = out.float().cpu().numpy()
            if samples.shape[0] != self.model.output_length(wave.shape[0]) or not np.all(np.isfinite(samples)):
                raise RuntimeError(f"SpeechSR produced an invalid output for id {item.id!r}")
            results.append(samples)
        for item, samples in zip(items, results, strict=True):  # the whole batch succeeded: now write
            item.data["audio"] = samples
            item.data["sample_rate"] = self.model.sampling_rate

