"""Stages of `hsp synthesize` / `hsp augment`: zero-shot VC and TTS rows -> generated speech.

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
import io
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soundfile as sf

from hierspeech.f0 import DEFAULT_BACKEND as DEFAULT_F0_BACKEND
from pipeline.item import Item
from pipeline.stage import Resources, Stage

SAMPLE_RATE = 16000
PROMPT_PAD_MULTIPLE = 1600  # upstream pads prompts to a multiple of 1600 (denoiser hop 400 x mel hop 320)
SECONDS_PER_PHONEME = 0.08  # expected-duration estimate of a TTS row for the duration gate
F0_CLIP_HZ = 55.0

VC_DEFAULTS = {"noise_scale": 0.333, "denoise_ratio": 0.0}
TTS_DEFAULTS = {"noise_scale_ttv": 0.333, "noise_scale_vc": 0.333, "noise_scale_w": 1.0, "length_scale": 1.0, "denoise_ratio": 0.0}


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


def _row_value(item: Item, name: str, default: Any) -> Any:
    value = item.fields.get(name)
    return default if value is None else value


class SynthesisInputStage(Stage):
    """Decode the voice prompt (and the VC source) at 16 kHz, check lengths, tokenize TTS text, fix params."""

    name = "synth_inputs"
    batch_size = 8

    def __init__(self, *, default_mode: str | None, defaults: SynthesisDefaults, limits: InputLimits, resources: Resources | None = None):
        super().__init__(resources)
        self.default_mode = default_mode
        self.defaults = defaults
        self.limits = limits

    def process_item(self, item: Item) -> None:
        from pipeline.audio import decode_audio

        mode = item.fields.get("mode") or self.default_mode
        if mode not in ("vc", "tts"):
            raise ValueError(f"row mode must be 'vc' or 'tts', got {mode!r}")
        d, lim = self.defaults, self.limits
        seed = item.fields.get("seed")
        seed = derive_seed(d.seed, item.id) if seed is None else int(seed)
        output_sr = int(_row_value(item, "output_sr", d.output_sr))
        params: dict[str, Any] = {"denoise_ratio": float(_row_value(item, "denoise_ratio", d.denoise_ratio)), "output_sr": output_sr, "seed": seed, "scale_norm": d.scale_norm}
        if mode == "vc":
            params["noise_scale"] = float(_row_value(item, "noise_scale", d.noise_scale))
        else:
            for name in ("noise_scale_ttv", "noise_scale_vc", "noise_scale_w", "length_scale"):
                params[name] = float(_row_value(item, name, getattr(d, name)))
        item.data["mode"] = mode
        item.data["params"] = params

        prompt_column = "target_audio" if mode == "vc" else "prompt_audio"
        prompt_path = item.fields.get(prompt_column)
        if not prompt_path:
            raise ValueError(f"column '{prompt_column}' (the voice prompt) is empty")
        try:
            prompt = decode_audio(prompt_path, target_sample_rate=SAMPLE_RATE, max_seconds=lim.max_prompt_seconds)
        except Exception as exc:
            raise ValueError(f"voice prompt {prompt_path}: {exc}") from exc
        prompt_seconds = len(prompt.samples) / SAMPLE_RATE
        if prompt_seconds < lim.min_prompt_seconds:
            raise ValueError(f"voice prompt {prompt_path} is {prompt_seconds:.2f} s long; prompts need >= {lim.min_prompt_seconds:g} s")
        item.data["prompt"] = prompt.samples
        meta: dict[str, Any] = {
            "mode": mode,
            "source_id": item.fields.get("source_id") or (item.id if mode == "vc" else None),
            "prompt_id": item.fields.get("prompt_id"),
            "prompt": {"path": prompt_path, "seconds": prompt_seconds, "source_sample_rate": prompt.source_sample_rate},
            "params": params,
        }
        for name in ("text", "speaker", "source_speaker", "variant"):
            if item.fields.get(name) is not None:
                meta[name] = item.fields[name]
        index = {"mode": mode, "source_id": meta["source_id"], "prompt_id": meta["prompt_id"], "seed": seed, "prompt_seconds": prompt_seconds}
        for name in ("text", "speaker"):
            index[name] = item.fields.get(name)

        if mode == "vc":
            source_path = item.fields.get("audio")
            if not source_path:
                raise ValueError("column 'audio' (the source speech) is empty")
            source = decode_audio(source_path, target_sample_rate=SAMPLE_RATE, max_seconds=lim.max_source_seconds)
            seconds = len(source.samples) / SAMPLE_RATE
            if seconds < lim.min_source_seconds:
                raise ValueError(f"source {source_path} is {seconds:.2f} s long; VC sources need >= {lim.min_source_seconds:g} s")
            item.data["source"] = source.samples
            item.data["expected_seconds"] = seconds
            meta["source"] = {"path": source_path, "seconds": seconds, "source_sample_rate": source.source_sample_rate}
            index["source_duration"] = seconds
        else:
            from hierspeech.text import BLANK_ID, frontend_versions, text_to_tokens

            text = item.fields.get("text")
            if text is None or not str(text).strip():
                raise ValueError("TTS rows need a non-empty 'text'")
            language = item.fields.get("language") or lim.language
            tokens = text_to_tokens(str(text), language=language, add_blank=True, max_tokens=lim.max_text_tokens)
            phonemes = (len(tokens) - 1) // 2
            item.data["tokens"] = np.asarray(tokens, dtype=np.int64)
            item.data["expected_seconds"] = phonemes * SECONDS_PER_PHONEME
            meta["tokens"] = {"count": len(tokens), "phonemes": phonemes, "language": language, "blank_id": BLANK_ID, "cleaners": "english_cleaners2", "versions": frontend_versions()}
            index["token_count"] = len(tokens)
        item.meta.update(meta)
        item.index.update(index)


class VcF0Stage(Stage):
    """F0 of VC rows: YAAPT (f0_max 1100) on source and prompt, source standardised to the prompt's range."""

    name = "vc_f0"
    stateful = True
    batch_size = 1
    input_rows_per_block = 1

    def __init__(self, *, backend: str = DEFAULT_F0_BACKEND, resources: Resources | None = None):
        super().__init__(resources)
        self.backend = backend

    def setup(self) -> None:
        from hierspeech.f0 import get_backend

        get_backend(self.backend)

    def process_item(self, item: Item) -> None:
        if item.data["mode"] != "vc":
            return
        from hierspeech.f0 import vc_log_f0

        started = time.perf_counter()
        item.data["log_f0"] = vc_log_f0(item.data["source"], item.data["prompt"], backend=self.backend)
        item.meta["f0"] = {"backend": self.backend, "f0_max": 1100.0, "normalised_to": "prompt voiced mean/std", "seconds": time.perf_counter() - started}


@dataclass(frozen=True)
class ModelPaths:
    """Checkpoints (None: not used). speechsr: output rate -> checkpoint."""

    synthesizer: str
    ttv: str | None = None
    denoiser: str | None = None
    speechsr: dict[int, str] = field(default_factory=dict)
    w2v_model: str = "facebook/mms-300m"
    w2v_layer: int = 7


class SynthesisModelStage(Stage):
    """All model steps of a row, batched: prompt (denoise, mel), w2v or TTV, synthesizer, SpeechSR.

    Items of a Ray batch are grouped by their scalar parameters (denoise_ratio; TTV noise and
    length scales) and run together, `max_batch_items` at a time; every random draw comes from
    the item's own seeded generators, so an item's output does not depend on its batch mates
    beyond float rounding (padded batches sum in another order). Bit-identical reruns therefore
    need a fixed batch composition: the default runs one item at a time on CPU, 8 on CUDA.
    Each batched step writes to its items only once the whole batch succeeded (`_commit`), so a
    failed batch is retried in halves on exactly the input it was given.
    """

    name = "synthesis"
    stateful = True
    batch_size = 8
    input_rows_per_block = 8

    def __init__(
        self,
        models: ModelPaths,
        *,
        modes: tuple[str, ...],
        denoise_chunk_seconds: float | None = 4.0,
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
        size = self.max_batch_items or (8 if self.device == "cuda" else 1)
        for key, group in groups.items():
            for at in range(0, len(group), size):
                self.process_batch_isolating(group[at : at + size], self._run_tts if key[0] == "tts" else self._run_vc)
        by_rate: dict[int, list[Item]] = {}
        for item in items:
            if item.failed:
                continue
            rate = item.data["params"]["output_sr"]
            if rate == SAMPLE_RATE:
                item.data["raw_rate"] = SAMPLE_RATE
            else:
                by_rate.setdefault(rate, []).append(item)
        for group in by_rate.values():
            for at in range(0, len(group), size):
                self.process_batch_isolating(group[at : at + size], self._super_resolve)

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

        originals = [torch.from_numpy(np.ascontiguousarray(item.data["prompt"], dtype=np.float32)).to(self.device) for item in items]
        peaks = [float(audio.abs().max()) for audio in originals]
        cleaned = list(originals)
        noisy = [b for b, item in enumerate(items) if item.data["params"]["denoise_ratio"] > 0]
        if noisy:
            lengths = [originals[b].shape[0] for b in noisy]
            padded = [(length // PROMPT_PAD_MULTIPLE + 1) * PROMPT_PAD_MULTIPLE for length in lengths]
            batch = torch.zeros(len(noisy), max(padded), device=self.device)
            for row, b in enumerate(noisy):
                batch[row, : lengths[row]] = originals[b]
            clean = denoise(batch, self.denoiser, padded, chunk_seconds=self.denoise_chunk_seconds)
            for row, b in enumerate(noisy):
                cleaned[b] = clean[row, : lengths[row]]
        mels = [self.mel(w) for w in originals + cleaned]
        mel_lengths = torch.tensor([m.shape[-1] for m in mels], device=self.device)
        batch = torch.zeros(len(mels), mels[0].shape[0], int(mel_lengths.max()), device=self.device)
        for i, mel in enumerate(mels):
            batch[i, :, : mel.shape[-1]] = mel
        return batch, mel_lengths, peaks

    def _synthesize(self, items: list[Item], w2v, w2v_lengths, log_f0, mels, mel_lengths, generators) -> list[np.ndarray]:
        """Synthesizer on (B, 1024, T) w2v + (B, 1, 4T) log-F0; per-item noise scaled by its noise scale.

        Returns each item's (T_i,) waveform; writes nothing to the items."""
        import torch

        channels = self.synth.config.inter_channels
        noise = torch.zeros(len(items), channels, w2v.shape[-1], device=self.device)
        for b, (item, gen) in enumerate(zip(items, generators, strict=True)):
            n = int(w2v_lengths[b])
            scale = item.data["params"].get("noise_scale_vc", item.data["params"].get("noise_scale"))
            noise[b, :, :n] = torch.randn(channels, n, generator=gen).to(self.device) * scale
        audio = self.synth.voice_conversion_noise_control(
            w2v, w2v_lengths, mels, mel_lengths, log_f0, noise_scale=1.0, denoise_ratio=items[0].data["params"]["denoise_ratio"], noise=noise
        )
        hop = self.synth.config.samples_per_frame
        waves = []
        for b, item in enumerate(items):
            wave = audio[b, 0, : int(w2v_lengths[b]) * hop].float().cpu().numpy()
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
            item.data.setdefault("timings", {})["synthesis"] = share

    def _run_vc(self, items: list[Item]) -> None:
        import torch

        started = time.perf_counter()
        feats = self.w2v.extract([item.data["source"] for item in items], max_batch_size=len(items), dtype=torch.float32)
        lengths = torch.tensor([f.shape[-1] for f in feats], device=self.device)
        w2v = torch.zeros(len(items), feats[0].shape[0], int(lengths.max()), device=self.device)
        f0 = torch.zeros(len(items), 1, 4 * int(lengths.max()), device=self.device)
        for b, (feat, item) in enumerate(zip(feats, items, strict=True)):
            w2v[b, :, : feat.shape[-1]] = feat.to(self.device)
            log_f0 = torch.from_numpy(item.data["log_f0"])[: 4 * feat.shape[-1]]
            f0[b, 0, : log_f0.shape[0]] = log_f0.to(self.device)
        mels, mel_lengths, peaks = self._prompt_mels(items)
        generators = [torch.Generator().manual_seed(item.data["params"]["seed"]) for item in items]
        waves = self._synthesize(items, w2v, lengths, f0, mels, mel_lengths, generators)
        self._commit(items, waves, peaks, started)

    def _run_tts(self, items: list[Item]) -> None:
        import torch

        from hierspeech.ttv import zero_low_log_f0

        started = time.perf_counter()
        p = items[0].data["params"]
        tokens_np = [item.data["tokens"] for item in items]
        token_lengths = torch.tensor([t.shape[0] for t in tokens_np], device=self.device)
        tokens = torch.zeros(len(items), int(token_lengths.max()), dtype=torch.int64, device=self.device)
        for b, t in enumerate(tokens_np):
            tokens[b, : t.shape[0]] = torch.from_numpy(t).to(self.device)
        mels, mel_lengths, peaks = self._prompt_mels(items)
        generators = [torch.Generator().manual_seed(item.data["params"]["seed"]) for item in items]
        g = self.ttv.blended_style(mels, mel_lengths, len(items), p["denoise_ratio"])
        out = self.ttv.infer(tokens, token_lengths, g, p["noise_scale_ttv"], p["noise_scale_w"], p["length_scale"], generator=generators)
        log_f0 = zero_low_log_f0(out.log_f0, F0_CLIP_HZ)
        waves = self._synthesize(items, out.w2v, out.lengths, log_f0, mels, mel_lengths, generators)
        self._commit(items, waves, peaks, started)

    def _super_resolve(self, items: list[Item]) -> None:
        """SpeechSR on a batch of generated waveforms of one output rate (exact windowed batching)."""
        import torch

        from hierspeech.speechsr_batching import DEFAULT_BATCH_SIZE, DEFAULT_WINDOW, upsample_batch

        rate = items[0].data["params"]["output_sr"]
        waves = [torch.from_numpy(np.ascontiguousarray(item.data["raw"], dtype=np.float32)).to(self.device) for item in items]
        outputs = upsample_batch(
            self.speechsr[rate], waves, window=self.speechsr_window or DEFAULT_WINDOW, batch_size=self.speechsr_windows_per_call or DEFAULT_BATCH_SIZE
        )
        results = [out.float().cpu().numpy() for out in outputs]
        for item, result in zip(items, results, strict=True):  # the whole batch succeeded
            item.data["raw"] = result
            item.data["raw_rate"] = rate


class SynthesisOutputStage(Stage):
    """Peak normalisation and int16 as upstream, quality gates, FLAC member, provenance and index."""

    name = "synth_output"
    batch_size = 8

    def __init__(self, *, gates: GateLimits, drop_failed_gates: bool = False, resources: Resources | None = None):
        super().__init__(resources)
        self.gates = gates
        self.drop_failed_gates = drop_failed_gates

    def process_item(self, item: Item) -> None:
        raw = np.asarray(item.data.pop("raw"), dtype=np.float32)
        rate = int(item.data["raw_rate"])
        failures = []
        finite = bool(np.all(np.isfinite(raw)))
        if not finite:
            failures.append("non_finite")
            raw = np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0)
        rms = float(np.sqrt(np.mean(np.square(raw, dtype=np.float64)))) if raw.size else 0.0
        rms_dbfs = 20 * math.log10(rms) if rms > 0 else -math.inf
        if rms_dbfs < self.gates.min_rms_dbfs:
            failures.append("near_silence")
        clipped = float(np.mean(np.abs(raw) >= 0.999)) if raw.size else 0.0
        if clipped > self.gates.max_clipped_fraction:
            failures.append("clipping")
        duration = raw.shape[0] / rate
        expected = float(item.data.get("expected_seconds") or 0.0)
        ratio = duration / expected if expected > 0 else math.inf
        if not self.gates.min_duration_ratio <= ratio <= self.gates.max_duration_ratio:
            failures.append("duration_ratio")

        params = item.data["params"]
        peak = float(np.max(np.abs(raw))) if raw.size else 0.0
        target = 32767.0 * item.data["prompt_peak"] if params["scale_norm"] == "prompt" else 32767.0 * 0.999
        pcm = (raw / peak * target).astype(np.int16) if peak > 0 else np.zeros(raw.shape, dtype=np.int16)  # truncation, as upstream
        buffer = io.BytesIO()
        sf.write(buffer, pcm, rate, format="FLAC", subtype="PCM_16")
        gates = {
            "passed": not failures,
            "failed": failures,
            "rms_dbfs": rms_dbfs,
            "clipped_fraction": clipped,
            "duration_ratio": ratio,
            "expected_seconds": expected,
            "limits": self.gates.__dict__,
        }
        if failures and self.drop_failed_gates:
            item.fail(self.name, f"quality gate(s) failed: {', '.join(failures)} (rms {rms_dbfs:.1f} dBFS, clipped {clipped:.4f}, duration ratio {ratio:.2f})", error="QualityGate")
            return
        item.members["flac"] = buffer.getvalue()
        item.meta.update({"sample_rate": rate, "duration": duration, "num_samples": int(raw.shape[0]), "gates": gates, "timings": item.data.get("timings", {})})
        item.index.update({"sample_rate": rate, "duration": duration, "gates_passed": not failures, "gate_failures": ",".join(failures)})
