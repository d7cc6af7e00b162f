"""One config style for every model: the official configs load, unknown keys are kept and named.

Each official config of the kit is read by its config class; the values the network is built from are
checked, training keys are kept in `unused` without a warning, and a key no field reads (a fork's new
model key) is kept, named in `unknown_keys` and in a logged warning, and never an error.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest
import torch

from hierspeech.denoiser import Denoiser, DenoiserConfig
from hierspeech.mel import MelConfig
from hierspeech.speechsr import SpeechSR, SpeechSRConfig
from hierspeech.synthesizer import Synthesizer, SynthesizerConfig
from hierspeech.testing.denoiser import tiny_denoiser_config
from hierspeech.testing.tiny import tiny_synthesizer_config
from hierspeech.testing.tiny_ttv import tiny_ttv_config
from hierspeech.ttv import TTV, TTVConfig

# (config class, official file, what it must read, a training key it keeps, where a fork adds a key)
OFFICIAL = {
    "synthesizer": (
        SynthesizerConfig, "hierspeechpp_v2",
        {"spec_channels": 641, "segment_size": 192, "cfg": True, "uncond_ratio": 0.1, "upsample_rates": (4, 5, 4, 2, 2)},
        "train.c_mel", "model",
    ),
    "ttv": (TTVConfig, "ttv_lt960", {"inter_channels": 256, "n_heads": 4, "spec_channels": 641}, "train.aug", "model"),
    "ttv_v1": (TTVConfig, "ttv_v1_default", {"filter_channels": 1024}, "train.log_interval", "model"),
    "speechsr24k": (SpeechSRConfig, "speechsr24k", {"sampling_rate": 24000, "factor": 1.5, "resblock": "0"}, "data.n_mel_channels", "model"),
    "speechsr48k": (SpeechSRConfig, "speechsr48k", {"sampling_rate": 48000, "factor": 3.0}, "train.lr_decay", "model"),
    "denoiser": (DenoiserConfig, "denoiser", {"dense_channel": 64, "n_fft": 400, "hop_size": 100}, "dist_config.world_size", None),
    "mel": (MelConfig, "hierspeechpp_v2", {"n_fft": 1280, "f_max": 8000.0, "n_mels": 80}, "data.top_db", "extra_section"),
}


def _content(reference_dir: Path, stem: str) -> dict:
    return json.loads((reference_dir / "configs" / f"{stem}.config.json").read_text())


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_official_config_loads_with_nothing_unknown(reference_dir: Path, name: str, caplog) -> None:
    cls, stem, expected, training_key, _ = OFFICIAL[name]
    path = reference_dir / "configs" / f"{stem}.config.json"
    with caplog.at_level(logging.WARNING, logger="hierspeech.config"):
        config = cls.from_json(path)
    assert {key: getattr(config, key) for key in expected} == expected
    assert config.unknown_keys == () and not caplog.records
    assert training_key in config.unused  # kept, not dropped
    assert cls.from_dict(_content(reference_dir, stem)) == config  # the same door, file or content
    assert cls(**config.to_dict()) == config and json.dumps(config.to_dict())
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.sampling_rate = 1  # type: ignore[misc]
    hash(config)


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_unknown_key_is_kept_named_and_warned(reference_dir: Path, name: str, caplog) -> None:
    cls, stem, _, _, section = OFFICIAL[name]
    content = _content(reference_dir, stem)
    target = content if section is None else content.setdefault(section, {})
    target["n_fancy_layers"] = 12
    with caplog.at_level(logging.WARNING, logger="hierspeech.config"):
        config = cls.from_dict(content, source="forked.json")
    dotted = "n_fancy_layers" if section is None else f"{section}.n_fancy_layers"
    assert config.unknown_keys == (dotted,)
    assert config.unused[dotted] == 12
    assert config == cls.from_dict(_content(reference_dir, stem))
    [record] = caplog.records
    assert "forked.json" in record.getMessage() and dotted in record.getMessage()


@pytest.mark.parametrize(
    ("cls", "content", "message"),
    [
        (SynthesizerConfig, {"model": {}, "data": {"hop_length": 320}}, "missing key 'data.filter_length'"),
        (SpeechSRConfig, {"data": {"sampling_rate": 24000}}, "no 'model' section"),
        (TTVConfig, {"train": {}}, "no 'model' section"),
        (MelConfig, {"model": {}}, "missing key 'data'"),
        (DenoiserConfig, ["not", "an", "object"], "JSON object"),
    ],
)
def test_not_a_config_is_a_clear_error(cls, content, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cls.from_dict(content)


def test_sizes_are_stored_as_tuples() -> None:
    config = dataclasses.replace(tiny_synthesizer_config(), resblock_dilation_sizes=[[1, 3], [1, 3]])
    assert config.resblock_dilation_sizes == ((1, 3), (1, 3)) and config.upsample_rates == (4, 2)


@pytest.mark.parametrize(
    ("cls", "config"),
    [
        (Synthesizer, tiny_synthesizer_config()),
        (TTV, tiny_ttv_config()),
        (SpeechSR, SpeechSRConfig(upsample_initial_channel=8)),
        (Denoiser, tiny_denoiser_config()),
    ],
    ids=["synthesizer", "ttv", "speechsr", "denoiser"],
)
def test_from_config_builds_the_same_way_for_every_model(cls, config) -> None:
    with torch.inference_mode():
        model = cls.from_config(config)
    assert not model.training  # SpeechSR.from_config used to return a model in training mode
    assert model.config is config
    assert {t.device.type for t in model.state_dict().values()} == {"cpu"}
    assert not any(torch.is_inference(t) for t in model.state_dict().values())


def test_fused_weights_follow_the_module_to_its_device() -> None:
    model = SpeechSR.from_config(SpeechSRConfig(upsample_initial_channel=8)).fuse_weight_norm()
    fused = [name for name, _ in model.named_buffers() if name.endswith("_fused_weight")]
    assert len(fused) == 19  # every weight-normed conv of SpeechSR
    model.to("meta")
    assert {buffer.device.type for _, buffer in model.named_buffers()} == {"meta"}
    assert not any(key.endswith("_fused_weight") for key in model.state_dict())
