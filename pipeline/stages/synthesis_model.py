"""Synthesis model stage: prompt denoise + mel, w2v (VC) or TTV (TTS), the synthesizer, SpeechSR; batched."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from hierspeech.defaults import PAD_MULTIPLE as PROMPT_PAD_MULTIPLE
from hierspeech.defaults import SAMPLE_RATE
from hierspeech.denoiser import DEFAULT_CHUNK_SECONDS
from pipeline.engine.item import Item
from pipeline.engine.stage import Resources, Stage
from pipeline.stages.model_batching import (
    CUDA_SPEECHSR_SECONDS,
    call_rows,
    denoise_windows,
    longest_first,
    planned_device,
    ray_batch_rows,
    windows_for_seconds,
)
from pipeline.stages.synthesis_params import ModelPaths

F0_CLIP_HZ = 55.0


class SynthesisModelStage(Stage):
    """All model steps of a row, batched: prompt (denoise, mel), w2v or TTV, synthesizer, SpeechSR.

    Items of a Ray batch are grouped by their scalar parameters (denoise_ratio; TTV noise and
    length scales), sorted by length within a group (source samples for VC, tokens for TTS;
    longest first) and run together, `max_batch_items` at a time, so a model call pads little.
    SpeechSR then takes every generated row of one output rate in the Ray batch in one windowed
    call (its memory is bounded by windows per call, not rows), except at one row per call.
    Every random draw comes from the item's own seeded generators, so an item's output does not
    depend on its batch mates beyond float rounding (padded batches sum in another order).
    Bit-identical reruns therefore need a fixed batch composition: the default runs one item at a
    time on CPU, 8 on CUDA. The Ray batch (`batch_size`) holds several model calls' rows
    (`pipeline.stages.model_batching`). Data moves to the device once per call and back once, the
    w2v features of VC staying on the device for the synthesizer. Each batched step writes to its
    items only once the whole batch succeeded (`_commit`), so a failed batch is retried in halves
    on exactly the input it was given.
    """

    name = "synthesis"
    stateful = True
    inputs = ("mode", "params", "prompt")
    optional_inputs = ("source", "log_f0", "tokens")  # by row mode (MODE_INPUTS); an instance keeps its modes'
    outputs = ("raw", "raw_rate", "prompt_peak")
    MODE_INPUTS: ClassVar[dict[str, tuple[str, ...]]] = {"vc": ("source", "log_f0"), "tts": ("tokens",)}
    MIN_RAY_BATCH = 8
    """Rows per Ray batch at least (the CPU default's, one row per model call)."""

    def required_inputs(self, item: Item) -> tuple[str, ...]:
        return self.inputs + self.MODE_INPUTS.get(item.data.get("mode"), ())

    @property
    def batch_size(self) -> int:
        """Rows per Ray batch: CALLS_PER_RAY_BATCH model calls of `max_batch_items` rows (when 0, the
        default of the device the resources ask for), at least MIN_RAY_BATCH; read by the runner after
        it fitted the resources, so `--max-batch-items` above 8 fills its calls."""
        return ray_batch_rows(call_rows(self.max_batch_items, planned_device(self.resources)), self.MIN_RAY_BATCH)

    @property
    def input_rows_per_block(self) -> int:
        """A block per Ray batch, so several model actors share the input."""
        return self.batch_size

    def __init__(
        self,
        models: ModelPaths,
        *,
        modes: tuple[str, ...],
        denoise_chunk_seconds: float | None = DEFAULT_CHUNK_SECONDS,
        max_batch_items: int = 0,
        speechsr_window: int | None = None,
        speechsr_windows_per_call: int | None = None,
        resources: Resources | None = None,
    ):
        super().__init__(resources)
        self.max_batch_items = max_batch_items  # 0: 1 on CPU (bit-reproducible), 8 on CUDA
        self.speechsr_window = speechsr_window  # output samples per SpeechSR window (None: the default)
        self.speechsr_windows_per_call = speechsr_windows_per_call  # windows per SpeechSR call (None: the default)
        self.models = models
        self.modes = modes
        self.optional_inputs = tuple(key for mode in modes for key in self.MODE_INPUTS[mode])
        self.denoise_chunk_seconds = denoise_chunk_seconds
        self.provenance: dict[str, Any] = {}

    def setup(self) -> None:
        import torch

        from hierspeech.checkpoint import sha256_file
        from hierspeech.mel import MelConfig, MelSpectrogram
        from hierspeech.synthesizer import Synthesizer

        if self.device == "cpu":
            torch.set_num_threads(max(1, int(self.resources.num_cpus)))
        m, dev = self.models, self.device
        self.synth = Synthesizer.from_pretrained(m.synthesizer).to(dev).fuse_weight_norm()
        checkpoints = {"synthesizer": {"path": m.synthesizer, "sha256": sha256_file(m.synthesizer)}}
        self.ttv = None
        if "tts" in self.modes:
            from hierspeech.ttv import TTV

            if not m.ttv:
                raise ValueError("TTS rows need the TTV checkpoint (--ttv)")
            self.ttv = TTV.from_pretrained(m.ttv).to(dev).fuse_weight_norm()
            checkpoints["ttv"] = {"path": m.ttv, "sha256": sha256_file(m.ttv)}
        self.w2v = None
        if "vc" in self.modes:
            from hierspeech.w2v import Wav2Vec2Features

            self.w2v = Wav2Vec2Features.from_pretrained(m.w2v_model, layer=m.w2v_layer).to(dev)
            checkpoints["w2v"] = {"model": m.w2v_model, "layer": m.w2v_layer, **self.w2v.backend_provenance()}
        self.denoiser = None
        if m.denoiser:
            from hierspeech.denoiser import Denoiser

            self.denoiser = Denoiser.from_pretrained(m.denoiser).to(dev)
            checkpoints["denoiser"] = {"path": m.denoiser, "sha256": sha256_file(m.denoiser), "chunk_seconds": self.denoise_chunk_seconds}
        self.speechsr = {}
        for rate, path in sorted(m.speechsr.items()):
            from hierspeech.speechsr import SpeechSR

            model = SpeechSR.from_pretrained(path)
            if model.sampling_rate != rate:
                raise ValueError(f"SpeechSR checkpoint {path} outputs {model.sampling_rate} Hz, given for {rate} Hz")
            self.speechsr[rate] = model.to(dev).fuse_weight_norm()
            checkpoints[f"speechsr{rate // 1000}k"] = {"path": path, "sha256": sha256_file(path)}
        self.mel = MelSpectrogram(MelConfig()).to(dev)
        self.provenance = checkpoints

    # ------------------------------------------------------------------ per batch
    def process(self, items: list[Item]) -> None:
        import torch

        with torch.inference_mode():
            self._process(items)

    def _process(self, items: list[Item]) -> None:
        for item in items:
            if not item.failed:
                self.run_guarded(item, self._check_item)
        groups: dict[tuple, list[Item]] = {}
        for item in items:
            if not item.failed:
                p = item.data["params"]
                key = (item.data["mode"], p["denoise_ratio"], p.get("noise_scale_ttv"), p.get("noise_scale_w"), p.get("length_scale"))
                groups.setdefault(key, []).append(item)
        size = call_rows(self.max_batch_items, self.device)
        for key, group in groups.items():
            ordered = longest_first(group, self._length)
            for at in range(0, len(ordered), size):
                self.process_batch_isolating(ordered[at : at + size], self._run_tts if key[0] == "tts" else self._run_vc)
        by_rate: dict[int, list[Item]] = {}
        for item in items:
            if item.failed:
                continue
            rate = item.data["params"]["output_sr"]
            if rate == SAMPLE_RATE:
                item.data["raw_rate"] = SAMPLE_RATE
            else:
                by_rate.setdefault(rate, []).append(item)
        for group in by_rate.values():  # one rate's rows in one call; one row per call keeps CPU reruns bit-identical
            for batch in [group] if size > 1 else [[item] for item in group]:
                self.process_batch_isolating(batch, self._super_resolve)

    @staticmethod
    def _length(item: Item) -> int:
        """What a row's model work grows with: its source samples (VC) or token ids (TTS)."""
        return len(item.data["tokens"] if item.data["mode"] == "tts" else item.data["source"])

    def _check_item(self, item: Item) -> None:
        p = item.data["params"]
        if p["denoise_ratio"] > 0 and self.denoiser is None:
            raise ValueError(f"denoise_ratio={p['denoise_ratio']} needs the denoiser checkpoint (--denoiser)")
        if p["output_sr"] != SAMPLE_RATE and p["output_sr"] not in self.speechsr:
            raise ValueError(f"output_sr={p['output_sr']} needs a SpeechSR checkpoint for that rate (have: {sorted(self.speechsr) or 'none'})")
        item.meta["checkpoints"] = self.provenance

    def _prompt_mels(self, items: list[Item]) -> tuple[Any, Any, list[float]]:
        """(2B, 80, T) mels: the B prompts, then the B denoised prompts (the prompt itself when ratio 0);
        their (2B,) lengths; and each prompt's peak. Prompts to denoise run as one ragged batch."""
        import torch

        from hierspeech.denoiser import denoise

        prompts = [np.ascontiguousarray(item.data["prompt"], dtype=np.float32) for item in items]
        peaks = [float(np.abs(prompt).max()) for prompt in prompts]  # on the host: no device sync per row
        sizes = [prompt.shape[0] for prompt in prompts]
        host = torch.zeros(len(items), max(sizes))
        for b, prompt in enumerate(prompts):
            host[b, : sizes[b]] = torch.from_numpy(prompt)
        on_device = host.to(self.device)  # one copy for the batch's prompts
        originals = [on_device[b, : sizes[b]] for b in range(len(items))]
        cleaned = list(originals)
        noisy = [b for b, item in enumerate(items) if item.data["params"]["denoise_ratio"] > 0]
        if noisy:
            lengths = [sizes[b] for b in noisy]
            padded = [(length // PROMPT_PAD_MULTIPLE + 1) * PROMPT_PAD_MULTIPLE for length in lengths]  # as upstream inference: one more block
            batch = torch.zeros(len(noisy), max(padded))
            for row, b in enumerate(noisy):
                batch[row, : lengths[row]] = host[b, : lengths[row]]
            clean = denoise(batch.to(self.device), self.denoiser, padded, chunk_seconds=self.denoise_chunk_seconds,
                            chunk_batch_size=denoise_windows(self.device))
            for row, b in enumerate(noisy):
                cleaned[b] = clean[row, : lengths[row]]
        mels = [self.mel(w) for w in originals + cleaned]
        mel_lengths = torch.tensor([m.shape[-1] for m in mels], device=self.device)
        batch = torch.zeros(len(mels), mels[0].shape[0], int(mel_lengths.max()), device=self.device)
        for i, mel in enumerate(mels):
            batch[i, :, : mel.shape[-1]] = mel
        return batch, mel_lengths, peaks

    def _synthesize(self, items: list[Item], w2v, frames: list[int], log_f0, mels, mel_lengths, generators) -> list[np.ndarray]:
        """Synthesizer on (B, 1024, T) w2v (`frames[b]` valid) + (B, 1, 4T) log-F0; per-item noise
        scaled by its noise scale, drawn on the host and copied once.

        Returns each item's (T_i,) waveform on the host (one copy for the batch); writes nothing to the items."""
        import torch

        channels = self.synth.config.inter_channels
        noise = torch.zeros(len(items), channels, w2v.shape[-1])
        for b, (item, gen) in enumerate(zip(items, generators, strict=True)):
            scale = item.data["params"].get("noise_scale_vc", item.data["params"].get("noise_scale"))
            noise[b, :, : frames[b]] = torch.randn(channels, frames[b], generator=gen) * scale
        w2v_lengths = torch.tensor(frames, device=self.device)
        audio = self.synth.voice_conversion_noise_control(
            w2v, w2v_lengths, mels, mel_lengths, log_f0, noise_scale=1.0, denoise_ratio=items[0].data["params"]["denoise_ratio"],
            noise=noise.to(self.device),
        )
        hop = self.synth.config.samples_per_frame
        host = audio[:, 0].float().cpu().numpy()
        waves = []
        for b, item in enumerate(items):
            wave = host[b, : frames[b] * hop]
            if item.data["mode"] == "vc":  # the source was padded to whole w2v frames: keep the source's length
                wave = wave[: len(item.data["source"])]
            waves.append(wave)
        return waves

    def _commit(self, items: list[Item], waves: list[np.ndarray], peaks: list[float], started: float) -> None:
        """Write a finished batch's results to its items (only once the whole batch succeeded)."""
        share = (time.perf_counter() - started) / len(items)
        for item, wave, peak in zip(items, waves, peaks, strict=True):
            item.data["raw"] = wave
            item.data["prompt_peak"] = peak
            for name in ("source", "prompt", "log_f0", "tokens"):
                item.data.pop(name, None)
            item.timings["synthesis"] = share

    def _run_vc(self, items: list[Item]) -> None:
        import torch

        started = time.perf_counter()
        # the features stay on the device for the synthesizer (no round trip through the host)
        feats = self.w2v.extract([item.data["source"] for item in items], max_batch_size=len(items), dtype=torch.float32, device=self.device)
        frames = [f.shape[-1] for f in feats]
        w2v = feats[0].new_zeros(len(items), feats[0].shape[0], max(frames))
        f0 = torch.zeros(len(items), 1, 4 * max(frames))  # assembled on the host, copied once
        for b, (feat, item) in enumerate(zip(feats, items, strict=True)):
            w2v[b, :, : frames[b]] = feat
            log_f0 = torch.from_numpy(item.data["log_f0"])[: 4 * frames[b]]
            f0[b, 0, : log_f0.shape[0]] = log_f0
        mels, mel_lengths, peaks = self._prompt_mels(items)
        generators = [torch.Generator().manual_seed(item.data["params"]["seed"]) for item in items]
        waves = self._synthesize(items, w2v, frames, f0.to(self.device), mels, mel_lengths, generators)
        self._commit(items, waves, peaks, started)

    def _run_tts(self, items: list[Item]) -> None:
        import torch

        from hierspeech.ttv import zero_low_log_f0

        started = time.perf_counter()
        p = items[0].data["params"]
        tokens_np = [item.data["tokens"] for item in items]
        counts = [t.shape[0] for t in tokens_np]
        tokens = torch.zeros(len(items), max(counts), dtype=torch.int64)  # assembled on the host, copied once
        for b, t in enumerate(tokens_np):
            tokens[b, : counts[b]] = torch.from_numpy(t)
        mels, mel_lengths, peaks = self._prompt_mels(items)
        generators = [torch.Generator().manual_seed(item.data["params"]["seed"]) for item in items]
        g = self.ttv.blended_style(mels, mel_lengths, len(items), p["denoise_ratio"])
        out = self.ttv.infer(tokens.to(self.device), torch.tensor(counts, device=self.device), g, p["noise_scale_ttv"], p["noise_scale_w"],
                             p["length_scale"], generator=generators)
        log_f0 = zero_low_log_f0(out.log_f0, F0_CLIP_HZ)
        waves = self._synthesize(items, out.w2v, out.lengths.tolist(), log_f0, mels, mel_lengths, generators)
        self._commit(items, waves, peaks, started)

    def _super_resolve(self, items: list[Item]) -> None:
        """SpeechSR on a batch of generated waveforms of one output rate (exact windowed batching).

        The waves stay on the host: `upsample_batch` copies each call's windows to the device and, on
        CUDA, collects the outputs on the host as each call finishes."""
        import torch

        from hierspeech.speechsr_batching import DEFAULT_BATCH_SIZE, DEFAULT_WINDOW, upsample_batch

        rate = items[0].data["params"]["output_sr"]
        window = self.speechsr_window or DEFAULT_WINDOW
        per_call = self.speechsr_windows_per_call
        if per_call is None:  # CPU: as measured; CUDA: CUDA_SPEECHSR_SECONDS of output per call
            per_call = windows_for_seconds(CUDA_SPEECHSR_SECONDS, rate, window) if self.device == "cuda" else DEFAULT_BATCH_SIZE
        waves = [torch.from_numpy(np.ascontiguousarray(item.data["raw"], dtype=np.float32)) for item in items]
        outputs = upsample_batch(self.speechsr[rate], waves, window=window, batch_size=per_call)
        results = [out.float().cpu().numpy() for out in outputs]
        for item, result in zip(items, results, strict=True):  # the whole batch succeeded
            item.data["raw"] = result
            item.data["raw_rate"] = rate

