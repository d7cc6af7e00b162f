"""The one loading door of every model: `from_pretrained(path, config=object or path)` and `check_pretrained`.

Tiny checkpoints from `hierspeech.testing` stand in where the kit has no real weights; SpeechSR is also
loaded from the kit's real weights. Each model must load the same from a config object, a str path, a
Path and the config.json beside the file; loading inside `torch.inference_mode()` must give ordinary
tensors that later calls outside inference mode can use.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hierspeech.checkpoint import CheckpointMismatchError
from hierspeech.denoiser import Denoiser, DenoiserConfig
from hierspeech.speechsr import SpeechSR, SpeechSRConfig
from hierspeech.synthesizer import Synthesizer, SynthesizerConfig
from hierspeech.testing.tiny_synthesis import write_tiny_checkpoints
from hierspeech.ttv import TTV, TTVConfig

MODELS = {
    "synthesizer": (Synthesizer, lambda p: SynthesizerConfig.from_json(p)),
    "ttv": (TTV, lambda p: TTVConfig.from_json(p)),
    "denoiser": (Denoiser, lambda p: DenoiserConfig.from_json(p)),
    "speechsr24000": (SpeechSR, lambda p: SpeechSRConfig.from_json(p)),
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, str]:
    return write_tiny_checkpoints(tmp_path_factory.mktemp("tiny"))


def _states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("name", list(MODELS))
def test_config_as_object_or_path(tiny, name: str) -> None:
    cls, read_config = MODELS[name]
    path = Path(tiny[name])
    config_path = path.with_name("config.json")
    beside = cls.from_pretrained(path)
    assert not beside.training
    for config in (read_config(config_path), str(config_path)):
        assert _states_equal(cls.from_pretrained(str(path), config=config), beside), type(config)
    cls.check_pretrained(path, config=config_path)


@pytest.mark.parametrize("name", list(MODELS))
def test_loads_inside_inference_mode(tiny, name: str) -> None:
    cls, _ = MODELS[name]
    with torch.inference_mode():
        model = cls.from_pretrained(tiny[name])
    assert not any(torch.is_inference(t) for t in model.state_dict().values())
    assert _states_equal(model, cls.from_pretrained(tiny[name]))


def test_synthesizer_loaded_in_inference_mode_runs_outside_it(tiny) -> None:
    with torch.inference_mode():
        model = Synthesizer.from_pretrained(tiny["synthesizer"])
    g = torch.Generator().manual_seed(0)
    src, f0, mel = torch.randn(1, 1024, 10, generator=g), torch.rand(1, 1, 40, generator=g) * 5, torch.randn(2, 80, 20, generator=g)
    noise = torch.randn(1, model.config.inter_channels, 10, generator=g)
    args = (src, torch.tensor([10]), mel, torch.tensor([20, 20]), f0)
    audio = model.voice_conversion_noise_control(*args, noise=noise)  # raised "Inference tensors do not track version counter"
    with torch.inference_mode():
        again = model.fuse_weight_norm().voice_conversion_noise_control(*args, noise=noise)
    assert audio.shape == (1, 1, 3200) and torch.isfinite(audio).all()
    assert (audio - again).abs().max() <= 1e-5


def test_real_speechsr_loads_in_inference_mode_from_a_config_path(reference_dir: Path) -> None:
    path = reference_dir / "weights" / "speechsr48k" / "G_100000.pth"
    SpeechSR.check_pretrained(path)
    with torch.inference_mode():
        model = SpeechSR.from_pretrained(path, config=str(path.with_name("config.json")))
    x = torch.randn(1, 1, 800, generator=torch.Generator().manual_seed(0)) * 0.1
    reference = SpeechSR.from_pretrained(path, config=SpeechSRConfig.from_json(path.with_name("config.json")))
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


class NotATensor:
    """Pickled into a checkpoint: `weights_only=True` must refuse the file."""


def test_check_pretrained_refuses_what_would_not_load(tiny, tmp_path: Path) -> None:
    with pytest.raises(CheckpointMismatchError, match=r"does not match Synthesizer .*missing"):
        Synthesizer.check_pretrained(tiny["ttv"], config=Path(tiny["synthesizer"]).with_name("config.json"))
    pickled = tmp_path / "ckpt.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "extra": NotATensor()}, pickled)
    with pytest.raises(CheckpointMismatchError, match=r"weights_only.*Unsupported global") as info:
        SpeechSR.check_pretrained(pickled, config=Path(tiny["speechsr24000"]).with_name("config.json"))
    assert "\n" not in str(info.value)
    (tmp_path / "text.pth").write_text("id,audio\nx,y.wav\n")
    with pytest.raises(CheckpointMismatchError, match="could not read checkpoint"):
        Denoiser.check_pretrained(tmp_path / "text.pth")
    with pytest.raises(FileNotFoundError, match="config"):
        TTV.check_pretrained(pickled)  # no config.json beside it
