"""Synthesis inputs: decode the voice prompt (and a VC source), check lengths, tokenize TTS text, fix params."""

from __future__ import annotations

from typing import Any

import numpy as np

from hierspeech.defaults import SAMPLE_RATE
from pipeline.engine.item import Item
from pipeline.engine.stage import Resources, Stage
from pipeline.stages.synthesis_params import InputLimits, SynthesisDefaults, derive_seed

SECONDS_PER_PHONEME = 0.08  # expected-duration estimate of a TTS row for the duration gate


def _row_value(item: Item, name: str, default: Any) -> Any:
    value = item.fields.get(name)
    return default if value is None else value


class SynthesisInputStage(Stage):
    """Decode the voice prompt (and the VC source) at 16 kHz, check lengths, tokenize TTS text, fix params."""

    name = "synth_inputs"
    batch_size = 8
    outputs = ("mode", "params", "prompt", "source", "expected_seconds", "tokens")  # source: VC rows, tokens: TTS rows

    def __init__(self, *, default_mode: str | None, defaults: SynthesisDefaults, limits: InputLimits, resources: Resources | None = None):
        super().__init__(resources)
        self.default_mode = default_mode
        self.defaults = defaults
        self.limits = limits

    def process_item(self, item: Item) -> None:
        from pipeline.io.audio import decode_audio
        from pipeline.stages.decode import truncation_record

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
            "prompt": {"path": prompt_path, "seconds": prompt_seconds, "source_sample_rate": prompt.source_sample_rate,
                       **truncation_record(prompt)},
            "params": params,
        }
        for name in ("text", "speaker", "source_speaker", "variant"):
            if item.fields.get(name) is not None:
                meta[name] = item.fields[name]
        index = {"mode": mode, "source_id": meta["source_id"], "prompt_id": meta["prompt_id"], "seed": seed, "prompt_seconds": prompt_seconds,
                 "truncated": prompt.truncated}  # an input cut short (kept, flagged): the prompt's, or the VC source's below
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
            meta["source"] = {"path": source_path, "seconds": seconds, "source_sample_rate": source.source_sample_rate,
                              **truncation_record(source)}
            index["source_duration"] = seconds
            index["truncated"] = prompt.truncated or source.truncated
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

