"""SpeechSR against the conformance kit: real-weight goldens, state-dict layout, strict loading, lengths."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from hierspeech import SpeechSR
from hierspeech.checkpoint import CheckpointMismatchError, read_state_dict
from hierspeech.speechsr import SpeechSRConfig

ATOL = 1e-4  # kit README: SpeechSR outputs, max abs
CHECKPOINTS = {"24k": "speechsr24k/G_340000.pth", "48k": "speechsr48k/G_100000.pth"}
GOLDEN_TAG = {"24k": "sr24", "48k": "sr48"}


@pytest.fixture(scope="module")
def models(reference_dir: Path) -> dict[str, SpeechSR]:
    torch.set_num_threads(2)
    return {v: SpeechSR.from_pretrained(reference_dir / "weights" / p) for v, p in CHECKPOINTS.items()}


def _audio(reference_dir: Path, ref: int, length: int | None = None) -> torch.Tensor:
    wave, rate = sf.read(reference_dir / f"audio/reference_{ref}.wav", dtype="float32")
    assert rate == 16000
    return torch.from_numpy(wave[:length])[None, None]


def _max_diff(model: SpeechSR, x: torch.Tensor, golden: Path) -> float:
    expected = np.load(golden)
    with torch.inference_mode():
        got = model(x).numpy()
    assert got.shape == expected.shape
    return float(np.abs(got - expected).max())


@pytest.mark.parametrize("variant", ["24k", "48k"])
@pytest.mark.parametrize("ref", [1, pytest.param(2, marks=pytest.mark.slow), pytest.param(3, marks=pytest.mark.slow),
                                 pytest.param(4, marks=pytest.mark.slow)])
def test_matches_golden(models, reference_dir: Path, variant: str, ref: int) -> None:
    golden = reference_dir / f"golden/speechsr/reference_{ref}.{GOLDEN_TAG[variant]}.npy"
    assert _max_diff(models[variant], _audio(reference_dir, ref), golden) <= ATOL


@pytest.mark.parametrize("variant", ["24k", "48k"])
def test_matches_golden_odd_length_12345(models, reference_dir: Path, variant: str) -> None:
    golden = reference_dir / f"golden/speechsr/reference_1_first12345.{GOLDEN_TAG[variant]}.npy"
    assert _max_diff(models[variant], _audio(reference_dir, 1, 12345), golden) <= ATOL


@pytest.mark.parametrize("variant", ["24k", "48k"])
def test_fused_weight_norm_keeps_parity(reference_dir: Path, variant: str) -> None:
    model = SpeechSR.from_pretrained(reference_dir / "weights" / CHECKPOINTS[variant]).fuse_weight_norm()
    keys_before = list(read_state_dict(reference_dir / "weights" / CHECKPOINTS[variant], "model"))
    assert list(model.state_dict()) == keys_before
    golden = reference_dir / f"golden/speechsr/reference_1_first12345.{GOLDEN_TAG[variant]}.npy"
    assert _max_diff(model, _audio(reference_dir, 1, 12345), golden) <= ATOL


@pytest.mark.parametrize("variant", ["24k", "48k"])
def test_state_dict_equals_manifest(reference_dir: Path, variant: str) -> None:
    manifest = json.loads((reference_dir / f"manifests/params_speechsr{variant}.json").read_text())
    config = SpeechSRConfig.from_json(reference_dir / f"configs/speechsr{variant}.config.json")
    model = SpeechSR.from_config(config)
    got = {k: (list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()}
    expected = {k: (e["shape"], e["dtype"]) for k, e in manifest["state_dict"].items()}
    assert list(got) == list(expected)  # same keys, same order
    assert got == expected
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"]
    buffers = {k for k, e in manifest["state_dict"].items() if e["kind"] == "buffer"}
    assert buffers == {k for k, _ in model.named_buffers() if k in got}


@pytest.mark.parametrize("variant", ["24k", "48k"])
def test_config_selects_variant(reference_dir: Path, variant: str) -> None:
    config = SpeechSRConfig.from_json(reference_dir / f"weights/{CHECKPOINTS[variant].split('/')[0]}/config.json")
    assert config.variant == variant
    assert config.factor == {"24k": 1.5, "48k": 3.0}[variant]


def _write_checkpoint(directory: Path, state: dict, reference_dir: Path) -> Path:
    directory.mkdir()
    shutil.copy(reference_dir / "weights/speechsr48k/config.json", directory / "config.json")
    path = directory / "G_bad.pth"
    torch.save({"model": state, "iteration": 1}, path)
    return path


def test_strict_loading_names_missing_and_unexpected(reference_dir: Path, tmp_path: Path) -> None:
    state = read_state_dict(reference_dir / "weights" / CHECKPOINTS["48k"], "model")
    del state["dec.resblocks.1.convs2.0.weight_g"]
    state["dec.not_a_layer.weight"] = torch.zeros(3)
    path = _write_checkpoint(tmp_path / "bad", state, reference_dir)
    with pytest.raises(CheckpointMismatchError) as info:
        SpeechSR.from_pretrained(path)
    message = str(info.value)
    assert "1 missing: dec.resblocks.1.convs2.0.weight_g" in message
    assert "1 unexpected: dec.not_a_layer.weight" in message


def test_strict_loading_names_shape_mismatch(reference_dir: Path, tmp_path: Path) -> None:
    state = read_state_dict(reference_dir / "weights" / CHECKPOINTS["48k"], "model")
    state["dec.conv_post.weight"] = torch.zeros(1, 32, 5)
    path = _write_checkpoint(tmp_path / "shape", state, reference_dir)
    with pytest.raises(CheckpointMismatchError, match=r"dec\.conv_post\.weight: checkpoint \(1, 32, 5\)"):
        SpeechSR.from_pretrained(path)


def test_missing_config_beside_checkpoint(reference_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "G_100000.pth"
    shutil.copy(reference_dir / "weights" / CHECKPOINTS["48k"], path)
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        SpeechSR.from_pretrained(path)
    model = SpeechSR.from_pretrained(path, config=reference_dir / "weights/speechsr48k/config.json")
    assert model.sampling_rate == 48000 and not model.training


@pytest.mark.parametrize("variant", ["24k", "48k"])
@pytest.mark.parametrize("length", [1, 3, 7, 12345])
def test_length_rule(models, variant: str, length: int) -> None:
    expected = int(1.5 * length) if variant == "24k" else 3 * length
    model = models[variant]
    assert model.output_length(length) == expected
    if length > 100:
        return  # the forward pass at 12345 samples is test_matches_golden_odd_length_12345
    with torch.inference_mode():
        out = model(torch.randn(2, 1, length) * 0.1)
    assert out.shape == (2, 1, expected)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("variant", ["24k", "48k"])
def test_length_table_of_kit(models, reference_dir: Path, variant: str) -> None:
    checks = json.loads((reference_dir / "golden/speechsr/index.json").read_text())["checks"]
    table = checks[f"{GOLDEN_TAG[variant]}_output_length_by_input_length"]
    assert {int(t): models[variant].output_length(int(t)) for t in table} == {int(t): n for t, n in table.items()}


def test_rejects_wrong_input_shape(models) -> None:
    with pytest.raises(ValueError, match=r"\(B, 1, T\)"):
        models["48k"](torch.zeros(1, 100))
