"""Tiny checkpoints on disk for end-to-end tests of synthesis jobs (TTS, VC, denoise, SpeechSR).

Each model is written as a user would receive it: a state-dict file with an official-layout
``config.json`` beside it, so the code under test loads it through ``from_pretrained``. The
synthesizer keeps the real 320-sample hop (16 kHz, 50 frames/s) so durations are realistic; the
TTV uses the real 178-symbol vocabulary so the text front-end's ids are accepted.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from hierspeech.synthesizer import Synthesizer
from hierspeech.testing.synthetic_weights import load_synthetic_weights
from hierspeech.testing.tiny import tiny_synthesizer_config
from hierspeech.testing.tiny_ttv import tiny_ttv


def tiny_hop320_synthesizer_config():
    """`tiny_synthesizer_config` with the release's upsampling (4*5*4*2*2 = 320 samples per frame)."""
    return dataclasses.replace(
        tiny_synthesizer_config(),
        upsample_rates=[4, 5, 4, 2, 2],
        upsample_kernel_sizes=[8, 11, 8, 4, 4],
        upsample_initial_channel=64,
        hop_length=320,
    )


def _synthesizer_json(config) -> dict:
    model = config.to_dict()
    for name in ("spec_channels", "segment_size", "sampling_rate", "hop_length", "n_mel_channels"):
        model.pop(name)
    data = {
        "filter_length": (config.spec_channels - 1) * 2,
        "hop_length": config.hop_length,
        "sampling_rate": config.sampling_rate,
        "n_mel_channels": config.n_mel_channels,
    }
    return {"data": data, "train": {"segment_size": config.segment_size * config.hop_length}, "model": model}


def write_tiny_checkpoints(root: str | Path, *, speechsr_rates: tuple[int, ...] = (24000,)) -> dict[str, str]:
    """Write tiny synthesizer, TTV, denoiser and SpeechSR checkpoints under `root`.

    Returns {"synthesizer", "ttv", "denoiser", "speechsr<rate>"...: checkpoint path}.
    """
    from hierspeech.speechsr import SpeechSR, SpeechSRConfig
    from hierspeech.testing.denoiser import tiny_denoiser

    root = Path(root)
    paths: dict[str, str] = {}

    synth_config = tiny_hop320_synthesizer_config()
    synth = load_synthetic_weights(Synthesizer(synth_config))
    (root / "synthesizer").mkdir(parents=True, exist_ok=True)
    torch.save(synth.state_dict(), root / "synthesizer" / "ckpt.pth")
    (root / "synthesizer" / "config.json").write_text(json.dumps(_synthesizer_json(synth_config)))
    paths["synthesizer"] = str(root / "synthesizer" / "ckpt.pth")

    ttv = tiny_ttv_with_vocabulary()
    (root / "ttv").mkdir(exist_ok=True)
    torch.save(ttv.state_dict(), root / "ttv" / "ckpt.pth")
    (root / "ttv" / "config.json").write_text(json.dumps({"model": ttv.config.to_dict()}))
    paths["ttv"] = str(root / "ttv" / "ckpt.pth")

    denoiser = tiny_denoiser()
    (root / "denoiser").mkdir(exist_ok=True)
    torch.save({"generator": denoiser.state_dict()}, root / "denoiser" / "g_best")
    (root / "denoiser" / "config.json").write_text(json.dumps(denoiser.config.to_dict()))
    paths["denoiser"] = str(root / "denoiser" / "g_best")

    for rate in speechsr_rates:
        official = {
            "data": {"sampling_rate": rate},
            "model": {
                "resblock_kernel_sizes": [3],
                "resblock_dilation_sizes": [[1, 3]],
                "upsample_rates": [3],
                "upsample_initial_channel": 8,
            },
        }
        sr = SpeechSR.from_config(SpeechSRConfig.from_dict(official))
        sr = load_synthetic_weights(sr)
        folder = root / f"speechsr{rate // 1000}k"
        folder.mkdir(exist_ok=True)
        torch.save({"model": sr.state_dict()}, folder / "G.pth")
        (folder / "config.json").write_text(json.dumps(official))
        paths[f"speechsr{rate}"] = str(folder / "G.pth")
    return paths


def tiny_ttv_with_vocabulary(seed: int = 0):
    """`tiny_ttv` with the release's 178-symbol vocabulary (the text front-end's ids), eval mode."""
    import hierspeech.testing.tiny_ttv as tiny_ttv_module
    from hierspeech.ttv import TTV

    config = dataclasses.replace(tiny_ttv_module.tiny_ttv_config(), n_vocab=178)
    reference = tiny_ttv(seed)
    model = TTV.from_config(config)
    generator = torch.Generator().manual_seed(seed + 1)
    state = {}
    for name, value in model.state_dict().items():
        ref = reference.state_dict().get(name)
        if ref is not None and ref.shape == value.shape:
            state[name] = ref
        else:  # the larger embedding table
            state[name] = torch.randn(value.shape, generator=generator) * 0.2
    model.load_state_dict(state, strict=True)
    return model.eval()


def write_tiny_w2v(root: str | Path, *, layers: int = 1) -> str:
    """A random wav2vec 2.0 with the synthesizer's 1024-wide features and `layers` layers, saved with
    `save_pretrained` under `root`; returns the folder (pass it as the w2v model, layer <= `layers`)."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    from hierspeech.testing.w2v import tiny_wav2vec2_config

    base = tiny_wav2vec2_config(num_hidden_layers=layers).to_dict()
    base.update(hidden_size=1024, intermediate_size=64, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=16)
    torch.manual_seed(0)
    folder = Path(root) / "tiny-w2v-1024"
    Wav2Vec2Model(Wav2Vec2Config(**base)).save_pretrained(folder)
    return str(folder)
